"""Split-K (flash-decoding) attention of one query token per sequence over a paged KV cache.

Each step a plan cuts every sequence into chunks of one shared length, sized so the chunks fill
a fixed number of work slots (graph-capturable); a long sequence beside short ones thus never
leaves one program reading its whole context while the other SMs idle.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.tools.tensor_descriptor import TensorDescriptor

from .attention_tiles import LOG2E, attend_kv_tiles, check_paged_operands, dot_precision


@triton.jit(do_not_specialize=["batch", "num_work"])
def _plan_kernel(seq_lens_ptr, plan_ptr, batch, num_work, MIN_CHUNK: tl.constexpr, BLOCK_N: tl.constexpr,
                 BLOCK_B: tl.constexpr, BLOCK_W: tl.constexpr):
    """One program: a chunk length shared by the batch such that every sequence's chunks fit
    the work slots, each sequence's first slot and chunk count (an exclusive prefix sum), and
    each slot's sequence (so a split program loads one index, not the whole batch's)."""
    seqs = tl.arange(0, BLOCK_B)
    ok = seqs < batch
    lens = tl.load(seq_lens_ptr + seqs, mask=ok, other=0)
    # sum(cdiv(len, chunk)) <= sum(len) / chunk + batch <= num_work once chunk >= sum / (num_work - batch).
    chunk = tl.cdiv(tl.cdiv(tl.sum(lens, axis=0), num_work - batch), BLOCK_N) * BLOCK_N
    chunk = tl.maximum(chunk, MIN_CHUNK)
    count = tl.where(ok, tl.cdiv(lens, chunk), 0)
    first = tl.cumsum(count, axis=0) - count
    tl.store(plan_ptr + seqs, first, mask=ok)
    tl.store(plan_ptr + batch + seqs, count, mask=ok)
    tl.store(plan_ptr + 2 * batch, chunk)
    tl.store(plan_ptr + 2 * batch + 1, tl.sum(count, axis=0))
    for w0 in range(0, num_work, BLOCK_W):
        slots = w0 + tl.arange(0, BLOCK_W)
        owner = tl.sum(((first[None, :] <= slots[:, None]) & ok[None, :]).to(tl.int32), axis=1) - 1
        tl.store(plan_ptr + 2 * batch + 2 + slots, owner, mask=slots < num_work)


@triton.jit
def _fold_page_tile(acc, l_i, m_i, q, k_desc, v_desc, row, n0, end, kv_col, scale_log2e,
                    MASKED: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """Fold the tile of keys at [n0, n0 + BLOCK_N), which lies inside one cache page from cache
    row `row` on, into (acc, l_i, m_i): one bulk copy (TMA) each for K and V, straight into shared
    memory where the dots read them. With MASKED, keys from `end` on are dropped and their values
    zeroed (a free slot may hold anything, NaN included)."""
    k = k_desc.load([row, kv_col])
    s = tl.dot(q, k.T, input_precision=DOT_PRECISION) * scale_log2e
    if MASKED:
        key_ok = n0 + tl.arange(0, BLOCK_N) < end
        s = tl.where(key_ok[None, :], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, axis=1)
    v = v_desc.load([row, kv_col])
    if MASKED:
        v = tl.where(key_ok[:, None], v, 0.0)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
    return acc, l_i, m_new


@triton.jit(do_not_specialize=["batch"])
def _decode_split_kernel(
    q_ptr, k_src, v_src, block_tables_ptr, seq_lens_ptr, plan_ptr, part_out_ptr, part_lse_ptr,
    out_ptr, scale_log2e, batch, n_q_heads, group, block_size,
    stride_qb, stride_qh, stride_cb, stride_cs, stride_ch, stride_bt, stride_ob, stride_oh,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr, DOT_PRECISION: tl.constexpr,
    PAGE_TMA: tl.constexpr, TILE_GROUP: tl.constexpr = 16,
):
    """One program per (kv head, work slot): one chunk of one sequence, so a long sequence is
    spread over many SMs however large the batch; the group's query heads share the M dimension
    so each K/V tile is loaded once for all of them. Slots past the plan's chunks exit. A
    sequence of one chunk is written out here; the others leave partials for the merge. A slot's
    kv heads are launched side by side, so they read the same cache rows at about the same time
    (0-5% faster than slot-major on the H200, most on small partitions:
    results/h200/session17/decode-prefetch)."""
    kv_head = tl.program_id(0)
    w = tl.program_id(1)
    if w >= tl.load(plan_ptr + 2 * batch + 1):
        return
    b = tl.load(plan_ptr + 2 * batch + 2 + w)
    # The plan's chunk is a multiple of BLOCK_N; saying so lets the compiler prove the tiles
    # aligned, which takes registers off the kernel (more programs resident per SM).
    chunk = (tl.load(plan_ptr + 2 * batch) // BLOCK_N) * BLOCK_N
    seq_len = tl.load(seq_lens_ptr + b)
    start = (w - tl.load(plan_ptr + b)) * chunk
    end = tl.minimum(start + chunk, seq_len)

    rows = tl.arange(0, BLOCK_M)
    row_ok = rows < group
    heads = kv_head * group + rows
    dims = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + b.to(tl.int64) * stride_qb + heads[:, None] * stride_qh + dims[None, :],
                mask=row_ok[:, None], other=0.0)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    table_row = block_tables_ptr + b.to(tl.int64) * stride_bt
    if PAGE_TMA > 0:
        # Whole tiles unmasked, then the chunk's ragged tail (if any) masked. The cache rows of
        # TILE_GROUP tiles are read from the block table at once, so no copy's address waits on a
        # load inside the loop: Triton then keeps num_stages - 1 tiles in flight (with the table
        # read tile by tile it kept one, up to 4 stages).
        full_end = start + (end - start) // BLOCK_N * BLOCK_N
        kv_col = kv_head * HEAD_DIM
        group = tl.arange(0, TILE_GROUP)
        for g0 in range(start, full_end, TILE_GROUP * BLOCK_N):
            firsts = g0 + group * BLOCK_N
            rows = tl.load(table_row + firsts // PAGE_TMA, mask=firsts < full_end, other=0) * PAGE_TMA \
                + firsts % PAGE_TMA
            for j in range(0, tl.minimum(TILE_GROUP, (full_end - g0) // BLOCK_N)):
                row = tl.sum(tl.where(group == j, rows, 0), axis=0)
                acc, l_i, m_i = _fold_page_tile(acc, l_i, m_i, q, k_src, v_src, row, g0 + j * BLOCK_N, end, kv_col,
                                                scale_log2e, MASKED=False, BLOCK_N=BLOCK_N,
                                                DOT_PRECISION=DOT_PRECISION)
        if full_end < end:
            row = tl.load(table_row + full_end // PAGE_TMA) * PAGE_TMA + full_end % PAGE_TMA
            acc, l_i, m_i = _fold_page_tile(acc, l_i, m_i, q, k_src, v_src, row, full_end, end, kv_col,
                                            scale_log2e, MASKED=True, BLOCK_N=BLOCK_N, DOT_PRECISION=DOT_PRECISION)
    else:
        q_pos = tl.full([BLOCK_M], 0, tl.int32) + (seq_len - 1)
        acc, l_i, m_i = attend_kv_tiles(
            acc, l_i, m_i, q, q_pos, k_src, v_src, table_row, kv_head * stride_ch,
            block_size, stride_cb, stride_cs, start, end, scale_log2e,
            MASKED=True, BLOCK_N=BLOCK_N, HEAD_DIM=HEAD_DIM, DOT_PRECISION=DOT_PRECISION,
        )
    # Every chunk holds at least one key, so l_i >= 1 (the max contributes exp2(0)).
    out = acc / l_i[:, None]
    if tl.load(plan_ptr + batch + b) == 1:
        tl.store(out_ptr + b.to(tl.int64) * stride_ob + heads[:, None] * stride_oh + dims[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=row_ok[:, None])
    else:
        part = w * n_q_heads + heads
        tl.store(part_lse_ptr + part, m_i + tl.log2(l_i), mask=row_ok)
        tl.store(part_out_ptr + part.to(tl.int64)[:, None] * HEAD_DIM + dims[None, :], out,
                 mask=row_ok[:, None])


@triton.jit(do_not_specialize=["batch"])
def _decode_reduce_kernel(
    plan_ptr, part_out_ptr, part_lse_ptr, out_ptr, batch, n_q_heads, stride_ob, stride_oh,
    BLOCK_S: tl.constexpr, HEAD_DIM: tl.constexpr,
):
    """One program per (sequence, query head): merge its chunks by their log-sum-exp, BLOCK_S
    chunks at a time (a one-chunk sequence is already written). A wide BLOCK_S keeps a long
    sequence's merge to one or two dependent loads."""
    b = tl.program_id(0)
    h = tl.program_id(1)
    count = tl.load(plan_ptr + batch + b)
    if count == 1:
        return
    first = tl.load(plan_ptr + b)
    dims = tl.arange(0, HEAD_DIM)
    m = float("-inf")
    total = 0.0
    acc = tl.zeros([HEAD_DIM], dtype=tl.float32)
    for s0 in range(0, count, BLOCK_S):
        splits = s0 + tl.arange(0, BLOCK_S)
        s_ok = splits < count
        part = (first + splits) * n_q_heads + h
        lse = tl.load(part_lse_ptr + part, mask=s_ok, other=float("-inf"))
        o = tl.load(part_out_ptr + part.to(tl.int64)[:, None] * HEAD_DIM + dims[None, :],
                    mask=s_ok[:, None], other=0.0)
        m_new = tl.maximum(m, tl.max(lse, axis=0))
        alpha = tl.exp2(m - m_new)
        w = tl.exp2(lse - m_new)
        total = total * alpha + tl.sum(w, axis=0)
        acc = acc * alpha + tl.sum(o * w[:, None], axis=0)
        m = m_new
    tl.store(out_ptr + b.to(tl.int64) * stride_ob + h * stride_oh + dims, (acc / total).to(out_ptr.dtype.element_ty))


def paged_decode_attention_ref(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, block_tables: Tensor, seq_lens: Tensor,
    scale: float, plan: DecodePlan | None = None,
) -> Tensor:
    """Torch reference and CPU path (the plan is ignored): gathers every sequence
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


@dataclass(frozen=True)
class DecodePlan:
    """How one step's decode attention is cut into work: [first slot per sequence | chunk count
    per sequence | chunk length | chunks in all | sequence of each slot] (int32, on the device)
    over `num_work` slots."""

    table: Tensor
    num_work: int
    block_n: int  # the KV tile the plan's chunks are cut in: the attention kernel must use it


def num_work_slots(batch: int, n_kv_heads: int, device: torch.device) -> int:
    """Twice the batch (so a chunk is at most ~2x the mean length: no straggler), and at least
    ~4 programs per SM (latency hiding) at small batches."""
    return max(2 * batch, triton.cdiv(4 * _sm_count(device), n_kv_heads))


SMALL_DECODE_BATCH = 4


def decode_tiling(batch: int, block_n: int | None = None) -> tuple[int, int]:
    """(KV tile, smallest chunk) of a decode step of `batch` sequences. Up to 4 sequences the
    step is latency-bound: 32-token tiles and chunks spread a short context over more programs
    (on the H200, 1 x 1k took 7.7 us a layer against 10.7 with 64-token tiles and 128-token
    chunks; 4 x 1k 11.3 against 12.6). From 8 sequences on the two tie, and 64 x 1k, bound by
    bandwidth, runs 74 us with 64-token tiles against 86 (results/h200/session16/decode-min-chunk).
    A given `block_n` keeps chunks of at least two tiles."""
    if block_n is not None:
        return block_n, 2 * block_n
    return (32, 32) if batch <= SMALL_DECODE_BATCH else (64, 128)


def plan_decode_work(seq_lens: Tensor, n_kv_heads: int, *, block_n: int | None = None,
                     num_work: int | None = None) -> DecodePlan:
    """The work plan of one decode step, computed on the device (no host sync, graph-capturable),
    once per step and shared by every layer."""
    batch = seq_lens.shape[0]
    assert seq_lens.dtype == torch.int32 and seq_lens.is_contiguous() and batch >= 1
    block_n, min_chunk = decode_tiling(batch, block_n)
    num_work = num_work or num_work_slots(batch, n_kv_heads, seq_lens.device)
    assert num_work > batch
    table = torch.empty(2 * batch + 2 + num_work, dtype=torch.int32, device=seq_lens.device)
    # Batches up to 128 share one compiled plan (and no kernel here specializes on the batch size):
    # an eager decode (chunked prefill's mixed steps) would otherwise JIT-compile new variants as
    # its batch grows, mid-run.
    block_b = triton.next_power_of_2(max(batch, 128))
    _plan_kernel[(1,)](seq_lens, table, batch, num_work, MIN_CHUNK=min_chunk, BLOCK_N=block_n,
                       BLOCK_B=block_b, BLOCK_W=max(1, 16384 // block_b))
    return DecodePlan(table, num_work, block_n)


def plan_decode_work_ref(seq_lens: Tensor, n_kv_heads: int, *, block_n: int | None = None,
                         num_work: int | None = None) -> DecodePlan:
    """The same plan in torch: the reference the Triton plan is tested against (the torch
    attention path needs no plan)."""
    batch = seq_lens.shape[0]
    block_n, min_chunk = decode_tiling(batch, block_n)
    num_work = num_work or num_work_slots(batch, n_kv_heads, seq_lens.device)
    lens = seq_lens.long()
    spare_share = -(-int(lens.sum()) // (num_work - batch))
    chunk = max(-(-spare_share // block_n) * block_n, min_chunk)
    count = -(-lens // chunk)
    first = torch.cumsum(count, 0) - count
    owner = torch.repeat_interleave(torch.arange(batch, device=lens.device), count)
    owner = torch.cat([owner, owner.new_full((num_work - len(owner),), batch - 1)])
    table = torch.cat([first, count, torch.tensor([chunk, int(count.sum())], device=lens.device), owner])
    table = table.to(torch.int32)
    return DecodePlan(table, num_work, block_n)


def page_tma_fits(k_cache: Tensor, block_n: int) -> bool:
    """Whether tiles of `block_n` keys can be bulk-copied (TMA) from this cache: every tile lies
    inside one page (so one copy of a 2D box is one tile), the pages are contiguous [NB * BS,
    Hk * D] rows, and the device has the copy engine (Hopper on), or Triton's interpreter runs."""
    num_blocks, block_size, n_kv_heads, head_dim = k_cache.shape
    if block_size % block_n or not k_cache.is_contiguous() or k_cache.data_ptr() % 16:
        return False
    return _has_bulk_copies(k_cache.device)


@functools.cache
def _has_bulk_copies(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 9
    return os.environ.get("TRITON_INTERPRET") == "1"


def _page_tiles(cache: Tensor, block_n: int) -> TensorDescriptor:
    """The cache as [NB * BS, Hk * D] rows, read in [block_n, D] boxes."""
    num_blocks, block_size, n_kv_heads, head_dim = cache.shape
    return TensorDescriptor.from_tensor(cache.view(num_blocks * block_size, n_kv_heads * head_dim),
                                        [block_n, head_dim])


def paged_decode_attention(
    q: Tensor, k_cache: Tensor, v_cache: Tensor, block_tables: Tensor, seq_lens: Tensor,
    scale: float, plan: DecodePlan | None = None, *, block_n: int | None = None,
    page_tma: bool | None = None,
) -> Tensor:
    """q [B, Hq, D] attends to the first seq_lens[b] (>= 1) cached tokens of sequence b.

    `plan` (from `plan_decode_work`, whose KV tile the kernel takes) is made here, with
    `block_n`, when not given; a model makes it once per step for all its layers. Tiles are
    bulk-copied page by page above 4 sequences where `page_tma_fits` (or where `page_tma` says
    so), else gathered token by token."""
    batch, n_q_heads, head_dim = q.shape
    block_size, n_kv_heads, group = check_paged_operands(q, k_cache, v_cache)
    assert block_tables.dim() == 2 and block_tables.shape[0] == batch and block_tables.stride(1) == 1
    assert block_tables.dtype in (torch.int32, torch.int64)
    assert seq_lens.shape == (batch,) and seq_lens.dtype == torch.int32 and seq_lens.is_contiguous()
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    if batch == 0:
        return out
    if plan is None:
        plan = plan_decode_work(seq_lens, n_kv_heads, block_n=block_n)
    assert block_n in (None, plan.block_n), f"block_n {block_n} against the plan's {plan.block_n}"
    block_n = plan.block_n
    assert block_n >= 16 and triton.next_power_of_2(block_n) == block_n
    if page_tma is None:
        # Up to 4 sequences the step is latency-bound and the gathered tiles are a little faster
        # (1 x 1k on an H100's 24 and 48 SMs: 12.5 and 8.3 us a layer against 13.7 and 9.5,
        # results/h100/session18/decode-tma-grouped).
        page_tma = batch > SMALL_DECODE_BATCH and page_tma_fits(k_cache, block_n)
    if page_tma:
        assert page_tma_fits(k_cache, block_n), "bulk-copied tiles need tiles inside contiguous pages"
        k_src, v_src = _page_tiles(k_cache, block_n), _page_tiles(v_cache, block_n)
    else:
        k_src, v_src = k_cache, v_cache
    part_out = torch.empty((plan.num_work, n_q_heads, head_dim), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((plan.num_work, n_q_heads), dtype=torch.float32, device=q.device)
    assert plan.num_work < 1 << 16, "a grid's second dimension holds at most 65535 slots"
    _decode_split_kernel[(n_kv_heads, plan.num_work)](
        q, k_src, v_src, block_tables, seq_lens, plan.table, part_out, part_lse,
        out, scale * LOG2E, batch, n_q_heads, group, block_size,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        block_tables.stride(0), out.stride(0), out.stride(1),
        BLOCK_M=max(16, triton.next_power_of_2(group)), BLOCK_N=block_n,
        HEAD_DIM=head_dim, DOT_PRECISION=dot_precision(q.dtype), PAGE_TMA=block_size if page_tma else 0,
        # Gathered tiles: two stages, not Triton's three: 96 registers instead of 157 on the H200
        # (Triton 3.6), so 64 x 1k runs in one wave (results/h200/decode-launch: 94.1 -> 75.8 us a
        # layer). Bulk-copied tiles: three, two K/V tiles in flight a program (72 KB of shared
        # memory, three programs an SM).
        num_stages=3 if page_tma else 2,
    )
    _decode_reduce_kernel[(batch, n_q_heads)](
        plan.table, part_out, part_lse, out, batch, n_q_heads, out.stride(0), out.stride(1),
        # One width for every step: sized by the step's longest context, it took a new compile
        # (a stall mid-run) each time an eager decode's contexts crossed a power of two.
        BLOCK_S=64, HEAD_DIM=head_dim,
    )
    return out
