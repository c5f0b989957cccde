"""Rotary position embedding (NeoX / HF rotate_half style) and its cos/sin cache."""

import math

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _rotate_heads(x_ptr, out_ptr, t, n_heads, stride_t, stride_h, cos, sin,
                  BLOCK_HEADS: tl.constexpr, HALF: tl.constexpr):
    heads = tl.arange(0, BLOCK_HEADS)
    dims = tl.arange(0, HALF)
    mask = (heads < n_heads)[:, None]
    offs = t * stride_t + heads[:, None] * stride_h + dims[None, :]
    x1 = tl.load(x_ptr + offs, mask=mask, other=0.0)
    x2 = tl.load(x_ptr + offs + HALF, mask=mask, other=0.0)
    x1f = x1.to(tl.float32)
    x2f = x2.to(tl.float32)
    out_offs = (t * n_heads + heads[:, None]) * (2 * HALF) + dims[None, :]
    tl.store(out_ptr + out_offs, (x1f * cos - x2f * sin).to(x1.dtype), mask=mask)
    tl.store(out_ptr + out_offs + HALF, (x2f * cos + x1f * sin).to(x1.dtype), mask=mask)


@triton.jit
def _rotary_kernel(
    q_ptr, k_ptr, q_out_ptr, k_out_ptr, pos_ptr, cache_ptr,
    n_q_heads, n_k_heads, stride_qt, stride_qh, stride_kt, stride_kh,
    BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr, HALF: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    dims = tl.arange(0, HALF)
    cos = tl.load(cache_ptr + pos * (2 * HALF) + dims)[None, :]
    sin = tl.load(cache_ptr + pos * (2 * HALF) + HALF + dims)[None, :]
    _rotate_heads(q_ptr, q_out_ptr, t, n_q_heads, stride_qt, stride_qh, cos, sin, BLOCK_HQ, HALF)
    _rotate_heads(k_ptr, k_out_ptr, t, n_k_heads, stride_kt, stride_kh, cos, sin, BLOCK_HK, HALF)


def apply_rotary_ref(
    q: Tensor, k: Tensor, positions: Tensor, cos_sin_cache: Tensor
) -> tuple[Tensor, Tensor]:
    """Torch reference and CPU path; same semantics as `apply_rotary`."""
    half = q.shape[-1] // 2
    cs = cos_sin_cache[positions][:, None, :]
    cos, sin = cs[..., :half], cs[..., half:]

    def rotate(x: Tensor) -> Tensor:
        x1, x2 = x[..., :half].float(), x[..., half:].float()
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)

    return rotate(q), rotate(k)


def apply_rotary(
    q: Tensor, k: Tensor, positions: Tensor, cos_sin_cache: Tensor
) -> tuple[Tensor, Tensor]:
    """Rotate q [T, Hq, D] and k [T, Hk, D] by the angles of `positions`; returns new
    contiguous tensors. q/k may be strided views (e.g. of a fused qkv output)."""
    assert q.dim() == 3 and k.dim() == 3 and q.shape[0] == k.shape[0]
    n_tokens, n_q_heads, head_dim = q.shape
    assert k.shape[2] == head_dim and k.dtype == q.dtype
    assert head_dim % 2 == 0 and triton.next_power_of_2(head_dim) == head_dim
    assert q.stride(2) == 1 and k.stride(2) == 1, "head_dim must be contiguous"
    assert positions.shape == (n_tokens,) and positions.dtype in (torch.int32, torch.int64)
    assert cos_sin_cache.dtype == torch.float32 and cos_sin_cache.is_contiguous()
    assert cos_sin_cache.dim() == 2 and cos_sin_cache.shape[1] == head_dim
    q_out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    k_out = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    if n_tokens == 0:
        return q_out, k_out
    _rotary_kernel[(n_tokens,)](
        q, k, q_out, k_out, positions, cos_sin_cache,
        n_q_heads, k.shape[1], q.stride(0), q.stride(1), k.stride(0), k.stride(1),
        BLOCK_HQ=triton.next_power_of_2(n_q_heads), BLOCK_HK=triton.next_power_of_2(k.shape[1]),
        HALF=head_dim // 2,
    )
    return q_out, k_out


def _llama3_inv_freq(inv_freq: Tensor, scaling: dict) -> Tensor:
    """Llama 3.1 frequency smoothing, op for op as transformers' _compute_llama3_parameters."""
    factor = scaling["factor"]
    low_freq_factor = scaling["low_freq_factor"]
    high_freq_factor = scaling["high_freq_factor"]
    old_context_len = scaling["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def build_cos_sin_cache(
    head_dim: int, max_position: int, base: float, rope_scaling: dict | None
) -> Tensor:
    """[max_position, head_dim] float32 rows concat(cos, sin) of the first head_dim/2
    angles, computed in float32 exactly as transformers does so logits match HF."""
    scaling = rope_scaling or {}
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float) / head_dim))
    if rope_type == "llama3":
        inv_freq = _llama3_inv_freq(inv_freq, scaling)
    elif rope_type == "linear":
        inv_freq = inv_freq / scaling["factor"]  # HF scales inv_freq, not positions
    elif rope_type != "default":
        raise NotImplementedError(f"rope_type {rope_type!r} is not supported")
    freqs = torch.arange(max_position, dtype=torch.int64).float()[:, None] * inv_freq[None, :]
    return torch.cat((freqs.cos(), freqs.sin()), dim=-1)
