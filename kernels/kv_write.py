"""Scatter new tokens' keys and values into the paged KV cache."""

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _write_kv_kernel(
    k_ptr, v_ptr, k_cache_ptr, v_cache_ptr, slot_ptr,
    n_heads, block_size, stride_kt, stride_kh, stride_vt, stride_vh,
    stride_cb, stride_cs, stride_ch,
    BLOCK_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
):
    t = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_ptr + t).to(tl.int64)
    if slot >= 0:
        heads = tl.arange(0, BLOCK_HEADS)[:, None]
        dims = tl.arange(0, HEAD_DIM)[None, :]
        mask = heads < n_heads
        dst = (slot // block_size) * stride_cb + (slot % block_size) * stride_cs + heads * stride_ch + dims
        k = tl.load(k_ptr + t * stride_kt + heads * stride_kh + dims, mask=mask)
        v = tl.load(v_ptr + t * stride_vt + heads * stride_vh + dims, mask=mask)
        tl.store(k_cache_ptr + dst, k, mask=mask)
        tl.store(v_cache_ptr + dst, v, mask=mask)


def write_kv_ref(
    k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, slot_mapping: Tensor
) -> None:
    """Torch reference and CPU path; same semantics as `write_kv`."""
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    block_size = k_cache.shape[1]
    k_cache[slots // block_size, slots % block_size] = k[keep]
    v_cache[slots // block_size, slots % block_size] = v[keep]


def write_kv(
    k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, slot_mapping: Tensor
) -> None:
    """In place: cache[slot // BS, slot % BS] = k/v[t] for slot = slot_mapping[t];
    slot -1 marks a padding token that is skipped."""
    assert k.dim() == 3 and k.shape == v.shape and k_cache.dim() == 4
    n_tokens, n_heads, head_dim = k.shape
    assert k_cache.shape[2:] == (n_heads, head_dim) and k_cache.shape == v_cache.shape
    assert k.dtype == v.dtype == k_cache.dtype == v_cache.dtype
    assert k.stride(2) == 1 and v.stride(2) == 1, "head_dim must be contiguous"
    assert k_cache.stride() == v_cache.stride() and k_cache.stride(3) == 1
    assert triton.next_power_of_2(head_dim) == head_dim
    assert slot_mapping.shape == (n_tokens,) and slot_mapping.dtype in (torch.int32, torch.int64)
    if n_tokens == 0:
        return
    _write_kv_kernel[(n_tokens,)](
        k, v, k_cache, v_cache, slot_mapping, n_heads, k_cache.shape[1],
        k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        BLOCK_HEADS=triton.next_power_of_2(n_heads), HEAD_DIM=head_dim,
    )
