"""The same steps through `transformers` (sdpa, dynamic cache) on the same device, as the baseline."""

from __future__ import annotations

import torch

from pdtune.perf.timing import time_ms


def build_hf_model(hf_config: dict, dtype: torch.dtype, device: torch.device, attn: str = "sdpa"):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = {k: v for k, v in hf_config.items() if not k.startswith("pdtune_")}
    model_type = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
                  "Qwen3ForCausalLM": "qwen3"}[cfg["architectures"][0]]
    config = AutoConfig.for_model(model_type, **cfg)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    return model.eval()


@torch.inference_mode()
def hf_prefill_ms(model, tokens: int, device: torch.device) -> float:
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), device=device)
    return time_ms(lambda: model(input_ids=ids, logits_to_keep=1, use_cache=False), device, iters=5, warmup=2)


@torch.inference_mode()
def hf_decode_step_ms(model, batch: int, context: int, device: torch.device) -> float:
    """One decode step over a dynamic cache holding `context` random tokens per sequence."""
    from transformers import DynamicCache

    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    cache = DynamicCache(config=cfg)
    dtype = next(model.parameters()).dtype
    for layer in range(cfg.num_hidden_layers):
        kv = torch.randn(2, batch, cfg.num_key_value_heads, context, head_dim, device=device, dtype=dtype)
        cache.update(kv[0], kv[1], layer)
    ids = torch.randint(0, cfg.vocab_size, (batch, 1), device=device)
    position = torch.full((batch, 1), context, device=device)
    cache_position = torch.tensor([context], device=device)

    def step():
        model(input_ids=ids, position_ids=position, cache_position=cache_position, past_key_values=cache, logits_to_keep=1)
        cache.crop(-1)  # drop the token this step appended (negative counts work across versions)

    return time_ms(step, device, iters=10, warmup=2)
