"""Split-K (flash-decoding) attention of one query token per sequence over a paged KV cache."""

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from .attention_tiles import LOG2E, attend_kv_tiles, check_paged_operands, dot_precision


@triton.jit
def _decode_split_kernel(
    q_ptr, k_cache_ptr, v_cache_ptr, block_tables_ptr, seq_lens_ptr, part_out_ptr, part_lse_ptr,
    scale_log2e, n_q_heads, group, block_size,
    stride_qb, stride_qh, stride_cb, stride_cs, stride_ch, stride_bt,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    """One program per (sequence, kv head, split); the group's query heads share the
    M dimension so each K/V tile is loaded once for all of them."""
    b = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    num_splits = tl.num_programs(2)
    seq_len = tl.load(seq_lens_ptr + b)
    split_len = tl.cdiv(tl.cdiv(seq_len, num_splits), BLOCK_N) * BLOCK_N
    start = split * split_len
    end = tl.minimum(start + split_len, seq_len)

    rows = tl.arange(0, BLOCK_M)
    row_ok = rows < group
    heads = kv_head * group + rows
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + b.to(tl.int64) * stride_qb + heads[:, None] * stride_qh + dims[None, :],
                mask=row_ok[:, None], other=0.0)
    q_pos = tl.full([BLOCK_M], 0, tl.int32) + (seq_len - 1)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, q, q_pos, k_cache_ptr, v_cache_ptr,
        block_tables_ptr + b.to(tl.int64) * stride_bt, kv_head * stride_ch,
        block_size, stride_cb, stride_cs, start, end, scale_log2e,
        MASKED=True, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, DOT_PRECISION=DOT_PRECISION,
    )
    # l_i >= 1 once any key was seen (the max contributes exp2(0)); an empty split
    # (short sequence) has l_i == 0, m_i == -inf, acc == 0 and so gets lse -inf, out 0.
    l_i = tl.maximum(l_i, 1.0)
    lse = m_i + tl.log2(l_i)
    out = acc / l_i[:, None]
    part = (b * n_q_heads + heads) * num_splits + split
    tl.store(part_lse_ptr + part, lse, mask=row_ok)
    tl.store(part_out_ptr + part.to(tl.int64)[:, None] * HEAD_DIM + dims[None, :], out,
             mask=row_ok[:, None])


@triton.jit
def _decode_reduce_kernel(
    part_out_ptr, part_lse_ptr, out_ptr, num_splits, stride_ob, stride_oh,
    BLOCK_S: tl.constexpr, HEAD_DIM: tl.constexpr,
):
    """One program per (sequence, query head): merge the splits by their log-sum-exp."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    splits = tl.arange(0, BLOCK_S)
    s_ok = splits < num_splits
    dims = tl.arange(0, HEAD_DIM)
    part = (b * tl.num_programs(1) + h) * num_splits + splits
    lse = tl.load(part_lse_ptr + part, mask=s_ok, other=float("-inf"))
    w = tl.exp2(lse - tl.max(lse, axis=0))
    w = w / tl.sum(w, axis=0)
    o = tl.load(part_out_ptr + part.to(tl.int64)[:, None] * HEAD_DIM + dims[None, :],
                mask=s_ok[:, None], other=0.0)
    out = tl.sum(o * w[:, None], axis=0)
    tl.store(out_ptr + b.to(tl.int64) * stride_ob + h * stride_oh + dims, out.to(out_ptr.dtype.element_ty))


def paged_decode_attention_ref(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, block_tables: Tensor, seq_lens: Tensor,
    scale: float, num_splits: int | None = None,
) -> Tensor:
    """Torch reference and CPU path (num_splits is ignored): gathers every sequence
    padded to the longest one and masks the tail; softmax in fp32."""
    batch, n_q_heads, head_dim = q.shape
    block_size, n_kv_heads = k_cache.shape[1], k_cache.shape[2]
    n_blocks = -(-int(seq_lens.max()) // block_size)
    blk_idx = torch.arange(n_blocks, device=q.device)
    used = blk_idx[None, :] * block_size < seq_lens[:, None].long()
    blocks = torch.where(used, block_tables[:, :n_blocks].long(), 0)
    pos = torch.arange(n_blocks * block_size, device=q.device)
    visible = pos[None, :] < seq_lens[:, None].long()
    # Slots past a sequence's end may hold anything (even NaN): zero them, not just mask.
    keep = visible[:, :, None, None]
    k = torch.where(keep, k_cache[blocks].reshape(batch, -1, n_kv_heads, head_dim).float(), 0.0)
    v = torch.where(keep, v_cache[blocks].reshape(batch, -1, n_kv_heads, head_dim).float(), 0.0)
    qg = q.float().view(batch, n_kv_heads, n_q_heads // n_kv_heads, head_dim)
    scores = torch.einsum("bhgd,bnhd->bhgn", qg, k) * scale
    scores = scores.masked_fill(~visible[:, None, None, :], float("-inf"))
    out = torch.einsum("bhgn,bnhd->bhgd", scores.softmax(dim=-1), v)
    return out.reshape(batch, n_q_heads, head_dim).to(q.dtype)


@functools.cache
def _sm_count(device: torch.device) -> int:
    """Streaming multiprocessors to fill (a nominal H100 count off-GPU)."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 132


def _pick_num_splits(batch: int, n_kv_heads: int, max_len: int, block_n: int, device: torch.device) -> int:
    """Split only when (batch x kv head) programs leave SMs idle; then aim at ~4 programs
    per SM (latency hiding), with >= 4 KV tiles a split."""
    programs = batch * n_kv_heads
    if programs >= _sm_count(device):
        return 1
    want = triton.cdiv(4 * _sm_count(device), programs)
    return max(1, min(want, triton.cdiv(max_len, 4 * block_n), 64))


def paged_decode_attention(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, block_tables: Tensor, seq_lens: Tensor,
    scale: float, num_splits: int | None = None, *, block_n: int = 64,
) -> Tensor:
    """q [B, Hq, D] attends to the first seq_lens[b] (>= 1) cached tokens of sequence b.

    Without num_splits, the split count comes from the block-table width (an upper bound
    of the longest sequence that needs no device sync) and the batch size."""
    batch, n_q_heads, head_dim = q.shape
    block_size, n_kv_heads, _ = check_paged_operands(q, k_cache, v_cache)
    assert block_tables.dim() == 2 and block_tables.shape[0] == batch and block_tables.stride(1) == 1
    assert block_tables.dtype in (torch.int32, torch.int64)
    assert seq_lens.shape == (batch,) and seq_lens.dtype == torch.int32 and seq_lens.is_contiguous()
    assert block_n >= 16 and triton.next_power_of_2(block_n) == block_n
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if batch == 0:
        return out
    if num_splits is None:
        num_splits = _pick_num_splits(batch, n_kv_heads, block_tables.shape[1] * block_size, block_n, q.device)
    group = n_q_heads // n_kv_heads
    part_out = torch.empty((batch, n_q_heads, num_splits, head_dim), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((batch, n_q_heads, num_splits), dtype=torch.float32, device=q.device)
    _decode_split_kernel[(batch, n_kv_heads, num_splits)](
        q, k_cache, v_cache, block_tables, seq_lens, part_out, part_lse,
        scale * LOG2E, n_q_heads, group, block_size,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        block_tables.stride(0),
        BLOCK_M=max(16, triton.next_power_of_2(group)), BLOCK_N=block_n,
        HEAD_DIM=head_dim, DOT_PRECISION=dot_precision(q.dtype),
    )
    _decode_reduce_kernel[(batch, n_q_heads)](
        part_out, part_lse, out, num_splits, out.stride(0), out.stride(1),
        BLOCK_S=triton.next_power_of_2(num_splits), HEAD_DIM=head_dim,
    )
    return out
