"""Rotary position embedding (NeoX / HF rotate_half style) fused with the paged-KV write, and its
cos/sin cache."""

import math

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _rotated(x_ptr, t, n_heads, stride_t, stride_h, cos, sin, BLOCK_HEADS: tl.constexpr, HALF: tl.constexpr):
    """The two rotated halves of token t's heads (in x's dtype) and the head mask."""
    heads = tl.arange(0, BLOCK_HEADS)[:, None]
    dims = tl.arange(0, HALF)[None, :]
    mask = heads < n_heads
    offs = t * stride_t + heads * stride_h + dims
    x1 = tl.load(x_ptr + offs, mask=mask, other=0.0)
    x2 = tl.load(x_ptr + offs + HALF, mask=mask, other=0.0)
    x1f, x2f = x1.to(tl.float32), x2.to(tl.float32)
    return (x1f * cos - x2f * sin).to(x1.dtype), (x2f * cos + x1f * sin).to(x1.dtype), mask


@triton.jit
def _store_heads(out_ptr, t, n_heads, lo, hi, mask, BLOCK_HEADS: tl.constexpr, HALF: tl.constexpr):
    heads = tl.arange(0, BLOCK_HEADS)[:, None]
    dims = tl.arange(0, HALF)[None, :]
    offs = (t * n_heads + heads) * (2 * HALF) + dims
    tl.store(out_ptr + offs, lo, mask=mask)
    tl.store(out_ptr + offs + HALF, hi, mask=mask)


@triton.jit
def _rotary_kv_kernel(
    q_ptr, k_ptr, v_ptr, q_out_ptr, k_out_ptr, pos_ptr, cos_sin_ptr, slot_ptr, k_cache_ptr, v_cache_ptr,
    n_q_heads, n_k_heads, stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh,
    block_size, stride_cb, stride_cs, stride_ch,
    BLOCK_HQ: tl.constexpr, BLOCK_HK: tl.constexpr, HALF: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    dims = tl.arange(0, HALF)[None, :]
    cos = tl.load(cos_sin_ptr + pos * (2 * HALF) + dims)
    sin = tl.load(cos_sin_ptr + pos * (2 * HALF) + HALF + dims)
    q1, q2, q_mask = _rotated(q_ptr, t, n_q_heads, stride_qt, stride_qh, cos, sin, BLOCK_HQ, HALF)
    _store_heads(q_out_ptr, t, n_q_heads, q1, q2, q_mask, BLOCK_HQ, HALF)
    k1, k2, k_mask = _rotated(k_ptr, t, n_k_heads, stride_kt, stride_kh, cos, sin, BLOCK_HK, HALF)
    _store_heads(k_out_ptr, t, n_k_heads, k1, k2, k_mask, BLOCK_HK, HALF)
    slot = tl.load(slot_ptr + t).to(tl.int64)
    if slot >= 0:
        heads = tl.arange(0, BLOCK_HK)[:, None]
        dst = (slot // block_size) * stride_cb + (slot % block_size) * stride_cs + heads * stride_ch + dims
        tl.store(k_cache_ptr + dst, k1, mask=k_mask)
        tl.store(k_cache_ptr + dst + HALF, k2, mask=k_mask)
        src = t * stride_vt + heads * stride_vh + dims
        tl.store(v_cache_ptr + dst, tl.load(v_ptr + src, mask=k_mask), mask=k_mask)
        tl.store(v_cache_ptr + dst + HALF, tl.load(v_ptr + src + HALF, mask=k_mask), mask=k_mask)


def write_kv_ref(
    k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, slot_mapping: Tensor
) -> None:
    """In place: cache[slot // BS, slot % BS] = k/v[t] for slot = slot_mapping[t]; slot -1 marks a
    padding token that is skipped."""
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    block_size = k_cache.shape[1]
    k_cache[slots // block_size, slots % block_size] = k[keep]
    v_cache[slots // block_size, slots % block_size] = v[keep]


def apply_rotary_ref(
    q: Tensor, k: Tensor, positions: Tensor, cos_sin_cache: Tensor
) -> tuple[Tensor, Tensor]:
    """q [T, Hq, D] and k [T, Hk, D] rotated by the angles of `positions` (HF's rotate_half)."""
    half = q.shape[-1] // 2
    cs = cos_sin_cache[positions][:, None, :]
    cos, sin = cs[..., :half], cs[..., half:]

    def rotate(x: Tensor) -> Tensor:
        x1, x2 = x[..., :half].float(), x[..., half:].float()
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)

    return rotate(q), rotate(k)


def rotary_write_kv_ref(
    q: Tensor, k: Tensor, v: Tensor, positions: Tensor, cos_sin_cache: Tensor,
    k_cache: Tensor, v_cache: Tensor, slot_mapping: Tensor,
) -> tuple[Tensor, Tensor]:
    """Torch reference and CPU path; same semantics as `rotary_write_kv`."""
    q_rot, k_rot = apply_rotary_ref(q, k, positions, cos_sin_cache)
    write_kv_ref(k_rot, v, k_cache, v_cache, slot_mapping)
    return q_rot, k_rot


def rotary_write_kv(
    q: Tensor, k: Tensor, v: Tensor, positions: Tensor, cos_sin_cache: Tensor,
    k_cache: Tensor, v_cache: Tensor, slot_mapping: Tensor,
) -> tuple[Tensor, Tensor]:
    """Rotates q [T, Hq, D] and k [T, Hk, D] by the angles of `positions` (returned as new
    contiguous tensors; q/k/v may be strided views of a fused qkv output) and writes the rotated
    k and v into the paged cache [blocks, block_size, Hk, D] at `slot_mapping` (slot -1: a padding
    token, skipped). One kernel where rotary and the KV write were two: a decode step launches
    one fewer per layer, and k is stored from registers rather than read back."""
    assert q.dim() == 3 and k.dim() == 3 and q.shape[0] == k.shape[0] and k.shape == v.shape
    n_tokens, n_q_heads, head_dim = q.shape
    n_k_heads = k.shape[1]
    assert k.shape[2] == head_dim and q.dtype == k.dtype == v.dtype == k_cache.dtype == v_cache.dtype
    assert head_dim % 2 == 0 and triton.next_power_of_2(head_dim) == head_dim
    assert q.stride(2) == 1 and k.stride(2) == 1 and v.stride(2) == 1, "head_dim must be contiguous"
    assert positions.shape == (n_tokens,) and positions.dtype in (torch.int32, torch.int64)
    assert cos_sin_cache.dtype == torch.float32 and cos_sin_cache.is_contiguous()
    assert cos_sin_cache.dim() == 2 and cos_sin_cache.shape[1] == head_dim
    assert k_cache.dim() == 4 and k_cache.shape[2:] == (n_k_heads, head_dim) and k_cache.shape == v_cache.shape
    assert k_cache.stride() == v_cache.stride() and k_cache.stride(3) == 1
    assert slot_mapping.shape == (n_tokens,) and slot_mapping.dtype in (torch.int32, torch.int64)
    q_out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    k_out = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    if n_tokens == 0:
        return q_out, k_out
    _rotary_kv_kernel[(n_tokens,)](
        q, k, v, q_out, k_out, positions, cos_sin_cache, slot_mapping, k_cache, v_cache,
        n_q_heads, n_k_heads, q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        k_cache.shape[1], k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        BLOCK_HQ=triton.next_power_of_2(n_q_heads), BLOCK_HK=triton.next_power_of_2(n_k_heads), HALF=head_dim // 2,
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
