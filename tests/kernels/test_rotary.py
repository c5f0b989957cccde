import pytest
import torch
from pdtune.kernels import apply_rotary_ref, build_cos_sin_cache, rotary_write_kv, rotary_write_kv_ref
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import (
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192}


def _hf_rotary(head_dim: int, base: float, rope_scaling: dict | None) -> LlamaRotaryEmbedding:
    params = {"rope_type": "default", **(rope_scaling or {}), "rope_theta": base}
    params.pop("type", None)
    config = LlamaConfig(head_dim=head_dim, hidden_size=4 * head_dim, num_attention_heads=4,
                         max_position_embeddings=131072, rope_parameters=params)
    return LlamaRotaryEmbedding(config)


@pytest.mark.parametrize(
    ("head_dim", "base", "rope_scaling"),
    [(64, 10000.0, None), (128, 1e6, {"type": "default"}), (128, 500000.0, LLAMA3),
     (64, 10000.0, {"rope_type": "linear", "factor": 4.0})],
)
def test_cos_sin_cache_matches_transformers(head_dim: int, base: float, rope_scaling: dict | None) -> None:
    max_pos = 20000  # past llama3's original context so every frequency band is exercised
    cache = build_cos_sin_cache(head_dim, max_pos, base, rope_scaling)
    assert cache.shape == (max_pos, head_dim) and cache.dtype == torch.float32
    cos, sin = _hf_rotary(head_dim, base, rope_scaling)(torch.zeros(1), torch.arange(max_pos)[None])
    half = head_dim // 2
    torch.testing.assert_close(cache[:, :half], cos[0, :, :half], atol=0, rtol=0)
    torch.testing.assert_close(cache[:, half:], sin[0, :, :half], atol=0, rtol=0)


def test_ref_matches_hf_apply_rotary_pos_emb() -> None:
    cache = build_cos_sin_cache(64, 512, 10000.0, None)
    q, k = torch.randn(9, 4, 64), torch.randn(9, 2, 64)
    positions = torch.tensor([0, 1, 2, 100, 101, 7, 8, 9, 511])
    cos, sin = _hf_rotary(64, 10000.0, None)(q, positions[None])
    hf_q, hf_k = apply_rotary_pos_emb(q.transpose(0, 1)[None], k.transpose(0, 1)[None], cos, sin)
    ref_q, ref_k = apply_rotary_ref(q, k, positions, cache)
    torch.testing.assert_close(ref_q, hf_q[0].transpose(0, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref_k, hf_k[0].transpose(0, 1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("n_q_heads", "n_kv_heads", "head_dim"), [(4, 4, 64), (6, 2, 128), (3, 1, 16)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("slot_dtype", [torch.int64, torch.int32])
def test_rotary_write_kv_matches_ref(n_q_heads: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype,
                                     slot_dtype: torch.dtype) -> None:
    n_tokens, n_blocks, block_size = 11, 6, 16
    cache = build_cos_sin_cache(head_dim, 4096, 10000.0, None)
    qkv = torch.randn(n_tokens, (n_q_heads + 2 * n_kv_heads) * head_dim).to(dtype)  # q/k/v as strided views
    q = qkv[:, : n_q_heads * head_dim].view(n_tokens, n_q_heads, head_dim)
    k = qkv[:, n_q_heads * head_dim : (n_q_heads + n_kv_heads) * head_dim].view(n_tokens, n_kv_heads, head_dim)
    v = qkv[:, (n_q_heads + n_kv_heads) * head_dim :].view(n_tokens, n_kv_heads, head_dim)
    positions = torch.randint(0, 4096, (n_tokens,))
    slots = torch.tensor([0, 15, 16, 17, -1, 95, 40, -1, 63, 64, 2], dtype=slot_dtype)  # -1: padding rows
    caches = [torch.randn(n_blocks, block_size, n_kv_heads, head_dim).to(dtype) for _ in range(2)]
    ref_caches = [c.clone() for c in caches]
    out_q, out_k = rotary_write_kv(q, k, v, positions, cache, *caches, slots)
    ref_q, ref_k = rotary_write_kv_ref(q, k, v, positions, cache, *ref_caches, slots)
    assert out_q.dtype == out_k.dtype == dtype and out_q.is_contiguous() and out_k.is_contiguous()
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out_q, ref_q, atol=tol, rtol=tol)
    torch.testing.assert_close(out_k, ref_k, atol=tol, rtol=tol)
    torch.testing.assert_close(caches, ref_caches, atol=tol, rtol=tol)
    keep = slots >= 0
    s = slots[keep].long()
    torch.testing.assert_close(caches[0].view(-1, n_kv_heads, head_dim)[s], out_k[keep], atol=0, rtol=0)
    torch.testing.assert_close(caches[1].view(-1, n_kv_heads, head_dim)[s], v[keep], atol=0, rtol=0)
    untouched = torch.ones(n_blocks * block_size, dtype=torch.bool)
    untouched[s] = False
    torch.testing.assert_close(caches[0].view(-1, n_kv_heads, head_dim)[untouched],
                               ref_caches[0].view(-1, n_kv_heads, head_dim)[untouched], atol=0, rtol=0)
