"""Online-softmax accumulation over paged KV tiles, shared by decode and prefill attention."""

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def attend_kv_tiles(
    acc, l_i, m_i, q, q_pos,
    k_cache_ptr, v_cache_ptr, block_table_ptr, kv_head_offset,
    block_size, stride_cb, stride_cs, start, end, scale_log2e,
    MASKED: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """Fold keys/values at positions [start, end) of one sequence into (acc, l_i, m_i).

    Positions are gathered token by token through the block table, so BLOCK_N need not
    match the cache block size. Scores are kept in log2 units (exp2). With MASKED, key n
    is visible to row m only if n < end and n <= q_pos[m]; without it every tile must be
    full and fully visible (the causal interior). Each row must see at least one key in
    the first tile so the running max never stays at -inf."""
    dims = tl.arange(0, HEAD_DIM)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < end
        blk = tl.load(block_table_ptr + offs_n // block_size, mask=n_ok, other=0).to(tl.int64)
        kv_offs = (blk * stride_cb + (offs_n % block_size) * stride_cs + kv_head_offset)[:, None] + dims[None, :]
        k = tl.load(k_cache_ptr + kv_offs, mask=n_ok[:, None], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale_log2e
        if MASKED:
            s = tl.where(n_ok[None, :] & (offs_n[None, :] <= q_pos[:, None]), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_cache_ptr + kv_offs, mask=n_ok[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs get exact products (not TF32) so they match the fp32 references;
    16-bit inputs use tensor cores either way."""
    return "ieee" if dtype == torch.float32 else "tf32"


def check_paged_operands(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> tuple[int, int, int]:
    """The launchers' shared checks on q [*, Hq, D] and the paged caches [NB, BS, Hk, D];
    returns (block_size, n_kv_heads, group)."""
    assert q.dim() == 3 and q.stride(2) == 1
    _, n_q_heads, head_dim = q.shape
    assert k_cache.dim() == 4 and k_cache.shape == v_cache.shape and k_cache.stride() == v_cache.stride()
    _, block_size, n_kv_heads, _ = k_cache.shape
    assert k_cache.shape[3] == head_dim and k_cache.stride(3) == 1
    assert q.dtype == k_cache.dtype == v_cache.dtype
    assert n_q_heads % n_kv_heads == 0
    assert head_dim >= 16 and triton.next_power_of_2(head_dim) == head_dim
    return block_size, n_kv_heads, n_q_heads // n_kv_heads
