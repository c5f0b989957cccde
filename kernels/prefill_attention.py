"""Causal flash attention of variable-length query chunks over a paged KV cache."""

import torch
import triton
import triton.language as tl
from torch import Tensor

from .attention_tiles import LOG2E, attend_kv_tiles, check_paged_operands, dot_precision


@triton.jit
def _find_sequence(cu_seqlens_q_ptr, tile, num_seqs, block_q):
    """Binary search for the sequence owning query tile `tile`; sequence b's tiles
    start at cu_seqlens_q[b] // block_q + b, which leaves room for its partial tile."""
    lo = 0
    hi = num_seqs
    while lo < hi:
        mid = (lo + hi) // 2
        if tl.load(cu_seqlens_q_ptr + mid) // block_q + mid <= tile:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@triton.jit(do_not_specialize=["num_seqs"])  # one compile for every batch size (no JIT stall mid-run)
def _prefill_kernel(
    q_ptr, k_cache_ptr, v_cache_ptr, out_ptr, block_tables_ptr, cu_seqlens_q_ptr, seq_lens_k_ptr,
    scale_log2e, num_seqs, group, block_q, block_size,
    stride_qt, stride_qh, stride_ot, stride_oh, stride_cb, stride_cs, stride_ch, stride_bt,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """One program per (tile of block_q queries of one sequence, kv head). The tile's
    rows are its queries x the kv head's `group` query heads (row = token * group + head),
    so each K/V tile is loaded once for the whole group. Tiles run last-first: under
    the causal mask later tiles see more keys, so the long ones start early."""
    tile = tl.num_programs(0) - 1 - tl.program_id(0)
    kv_head = tl.program_id(1)
    b = _find_sequence(cu_seqlens_q_ptr, tile, num_seqs, block_q)
    q_begin = tl.load(cu_seqlens_q_ptr + b)
    q_len = tl.load(cu_seqlens_q_ptr + b + 1) - q_begin
    m_start = (tile - q_begin // block_q - b) * block_q
    if m_start >= q_len:
        return
    seq_len = tl.load(seq_lens_k_ptr + b)
    first_pos = seq_len - q_len + m_start  # absolute position of the tile's first query

    rows = tl.arange(0, BLOCK_M)
    q_idx = m_start + rows // group
    row_ok = (rows < block_q * group) & (q_idx < q_len)
    dims = tl.arange(0, HEAD_DIM)
    tok = (q_begin + q_idx).to(tl.int64)[:, None]
    head = (kv_head * group + rows % group)[:, None]
    q = tl.load(q_ptr + tok * stride_qt + head * stride_qh + dims[None, :], mask=row_ok[:, None], other=0.0)
    q_pos = first_pos + rows // group
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    bt_row = block_tables_ptr + b.to(tl.int64) * stride_bt
    # Keys up to first_pos are visible to every row: whole tiles of them skip the mask.
    unmasked_end = (first_pos + 1) // BLOCK_N * BLOCK_N
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, q, q_pos, k_cache_ptr, v_cache_ptr, bt_row, kv_head * stride_ch,
        block_size, stride_cb, stride_cs, 0, unmasked_end, scale_log2e,
        MASKED=False, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, DOT_PRECISION=DOT_PRECISION,
    )
    acc, l_i, m_i = attend_kv_tiles(
        acc, l_i, m_i, q, q_pos, k_cache_ptr, v_cache_ptr, bt_row, kv_head * stride_ch,
        block_size, stride_cb, stride_cs, unmasked_end, tl.minimum(seq_len, first_pos + block_q),
        scale_log2e,
        MASKED=True, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, DOT_PRECISION=DOT_PRECISION,
    )
    out = acc / l_i[:, None]
    tl.store(out_ptr + tok * stride_ot + head * stride_oh + dims[None, :], out.to(out_ptr.dtype.element_ty),
             mask=row_ok[:, None])


def paged_prefill_attention_ref(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, block_tables: Tensor,
    cu_seqlens_q: Tensor, seq_lens_k: Tensor, scale: float,
) -> Tensor:
    """Torch reference and CPU path: one vectorised causal attention per sequence,
    softmax in fp32."""
    n_q_heads, head_dim = q.shape[1], q.shape[2]
    block_size, n_kv_heads = k_cache.shape[1], k_cache.shape[2]
    group = n_q_heads // n_kv_heads
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    bounds = cu_seqlens_q.tolist()
    for b, seq_len in enumerate(seq_lens_k.tolist()):
        q_len = bounds[b + 1] - bounds[b]
        if q_len == 0:
            continue
        blocks = block_tables[b, : -(-seq_len // block_size)].long()
        k = k_cache[blocks].reshape(-1, n_kv_heads, head_dim)[:seq_len].float()
        v = v_cache[blocks].reshape(-1, n_kv_heads, head_dim)[:seq_len].float()
        qb = q[bounds[b] : bounds[b + 1]].float().view(q_len, n_kv_heads, group, head_dim)
        scores = torch.einsum("qhgd,nhd->hgqn", qb, k) * scale
        q_pos = torch.arange(seq_len - q_len, seq_len, device=q.device)
        visible = torch.arange(seq_len, device=q.device)[None, :] <= q_pos[:, None]
        scores = scores.masked_fill(~visible, float("-inf"))
        ob = torch.einsum("hgqn,nhd->qhgd", scores.softmax(dim=-1), v)
        out[bounds[b] : bounds[b + 1]] = ob.reshape(q_len, n_q_heads, head_dim).to(q.dtype)
    return out


def _pick_blocks(n_tokens: int, num_seqs: int, group: int, head_dim: int) -> tuple[int, int]:
    """(BLOCK_M rows, BLOCK_N keys) from the mean chunk length (measured on an H100, bf16,
    D=128): 128x128 for long prompts, 64x64 for shorter ones (more programs), and fewer
    rows when chunks are decode-like; D=256 halves the tiles to bound registers."""
    mean_len = n_tokens // max(1, num_seqs)
    block_m, block_n = (128, 128) if mean_len >= 1024 else (64, 64)
    if head_dim > 128:
        block_m, block_n = block_m // 2, block_n // 2
    rows = triton.next_power_of_2(max(1, mean_len * group))
    return max(16, triton.next_power_of_2(group), min(block_m, rows)), block_n


def prefill_tile_variants(group: int, head_dim: int) -> list[tuple[int, int]]:
    """Every (BLOCK_M, BLOCK_N) `_pick_blocks` can choose for this head layout, each a compiled
    variant: an engine compiles them at start-up, not when a step first meets one."""
    return sorted({_pick_blocks(1 << i, 1, group, head_dim) for i in range(12)})


def paged_prefill_attention(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, block_tables: Tensor,
    cu_seqlens_q: Tensor, seq_lens_k: Tensor, scale: float,
    *, block_m: int | None = None, block_n: int | None = None,
) -> Tensor:
    """q [T, Hq, D] holds the chunks of B sequences back to back (rows
    cu_seqlens_q[b]:cu_seqlens_q[b+1]); each chunk is the last tokens of the first
    seq_lens_k[b] cached tokens and attends causally to them. block_m counts tile rows
    (queries x the group's query heads), block_n keys."""
    n_tokens, n_q_heads, head_dim = q.shape
    block_size, n_kv_heads, _ = check_paged_operands(q, k_cache, v_cache)
    num_seqs = seq_lens_k.shape[0]
    assert block_tables.dim() == 2 and block_tables.shape[0] == num_seqs and block_tables.stride(1) == 1
    assert block_tables.dtype in (torch.int32, torch.int64)
    assert cu_seqlens_q.shape == (num_seqs + 1,) and cu_seqlens_q.dtype == torch.int32
    assert seq_lens_k.dtype == torch.int32 and cu_seqlens_q.is_contiguous() and seq_lens_k.is_contiguous()
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if n_tokens == 0:
        return out
    group = n_q_heads // n_kv_heads
    auto_m, auto_n = _pick_blocks(n_tokens, num_seqs, group, head_dim)
    block_m, block_n = block_m or auto_m, block_n or auto_n
    assert min(block_m, block_n) >= 16 and block_m >= group
    assert triton.next_power_of_2(block_m) == block_m and triton.next_power_of_2(block_n) == block_n
    block_q = block_m // group  # query tokens per tile
    # Upper bound on the tile count: every sequence may add one partial tile.
    grid = (n_tokens // block_q + num_seqs, n_kv_heads)
    _prefill_kernel[grid](
        q, k_cache, v_cache, out, block_tables, cu_seqlens_q, seq_lens_k,
        scale * LOG2E, num_seqs, group, block_q, block_size,
        q.stride(0), q.stride(1), out.stride(0), out.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), block_tables.stride(0),
        BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=head_dim, DOT_PRECISION=dot_precision(q.dtype),
        num_warps=8 if block_m >= 128 else 4, num_stages=3 if block_m >= 128 else 2,
    )
    return out
