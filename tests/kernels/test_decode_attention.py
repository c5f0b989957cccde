import os

import pytest
import torch
from pdtune.kernels import paged_decode_attention, paged_decode_attention_ref, plan_decode_work, plan_decode_work_ref
from pdtune.kernels.decode_attention import page_tma_fits

# Lengths around the 16-token cache blocks and 16/32-token KV tiles: 1 token, ends
# exactly at and just past block boundaries, and a few longer ragged ones.
SEQ_LENS = [1, 15, 16, 17, 32, 33, 70, 100]


def _setup(paged_kv, seq_lens: list[int], n_q_heads: int, n_kv_heads: int, head_dim: int,
           block_size: int, dtype: torch.dtype = torch.float32):
    keys, values, k_cache, v_cache, block_tables = paged_kv(seq_lens, n_kv_heads, head_dim, block_size, dtype)
    q = torch.randn(len(seq_lens), n_q_heads, head_dim).to(dtype)
    return q, keys, values, k_cache, v_cache, block_tables, torch.tensor(seq_lens, dtype=torch.int32)


@pytest.mark.parametrize(("n_q_heads", "n_kv_heads"), [(2, 2), (6, 2), (8, 2)])
def test_ref_matches_dense_sdpa(paged_kv, dense_attention, n_q_heads: int, n_kv_heads: int) -> None:
    q, keys, values, k_cache, v_cache, bt, lens = _setup(paged_kv, SEQ_LENS, n_q_heads, n_kv_heads, 32, 16)
    out = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.3)
    for b in range(len(SEQ_LENS)):
        dense = dense_attention(q[b : b + 1], keys[b], values[b], 0.3)[0]
        torch.testing.assert_close(out[b].double(), dense, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("n_q_heads", "n_kv_heads", "head_dim", "block_size", "num_work", "block_n"),
    [
        (4, 4, 64, 16, None, 16),  # MHA, default slots: 32-token chunks, up to 4 a sequence
        (6, 2, 64, 16, 12, 32),  # GQA 3, tiles spanning two cache blocks, few slots: longer chunks
        (8, 2, 128, 32, 9, 16),  # GQA 4, two tiles per cache block, one slot spare: one chunk each
        (4, 1, 32, 16, 64, 16),  # MQA, more slots than chunks
    ],
)
def test_decode_matches_ref(paged_kv, n_q_heads: int, n_kv_heads: int, head_dim: int, block_size: int,
                            num_work: int | None, block_n: int) -> None:
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, SEQ_LENS, n_q_heads, n_kv_heads, head_dim, block_size)
    scale = head_dim**-0.5
    plan = plan_decode_work(lens, n_kv_heads, block_n=block_n, num_work=num_work)
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, scale, plan, block_n=block_n)
    assert out.shape == q.shape and out.dtype == q.dtype
    ref = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, scale)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("num_work", [None, 9, 12, 40])
def test_plan_matches_ref_and_bounds_chunks(num_work: int | None) -> None:
    lens = torch.tensor(SEQ_LENS, dtype=torch.int32)
    plan = plan_decode_work(lens, 2, block_n=16, num_work=num_work)
    ref = plan_decode_work_ref(lens, 2, block_n=16, num_work=num_work)
    assert plan.num_work == ref.num_work
    assert plan.table.tolist() == ref.table.tolist()
    batch = len(SEQ_LENS)
    first, count = plan.table[:batch].tolist(), plan.table[batch:2 * batch].tolist()
    chunk, total = plan.table[2 * batch:2 * batch + 2].tolist()
    assert chunk % 16 == 0 and total == sum(count) <= plan.num_work
    owner = plan.table[2 * batch + 2:].tolist()
    assert len(owner) == plan.num_work and owner[:total] == [b for b in range(batch) for _ in range(count[b])]
    assert all(c == -(-n // chunk) for n, c in zip(SEQ_LENS, count))
    assert first == [sum(count[:b]) for b in range(batch)]


def test_long_sequence_beside_short_ones_is_split(paged_kv) -> None:
    """The straggler case: one long context in a batch of short ones gets many chunks, the
    short ones one each, and the result still equals the reference."""
    lens_list = [300] + [5] * 15
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, lens_list, 4, 2, 32, 16)
    plan = plan_decode_work(lens, 2, block_n=16)
    count = plan.table[16:32].tolist()
    assert count[0] >= 8 and count[1:] == [1] * 15
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.2, plan, block_n=16)
    torch.testing.assert_close(out, paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.2),
                               atol=1e-4, rtol=1e-5)


def test_one_plan_serves_every_layer(paged_kv) -> None:
    """A model makes one plan a step and its layers launch on it in turn, each merging its own
    partials: no layer may leave state in the plan that the next one reads."""
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, SEQ_LENS, 6, 2, 32, 16)
    plan = plan_decode_work(lens, 2, block_n=16)
    batch = len(SEQ_LENS)
    assert max(plan.table[batch:2 * batch].tolist()) > 1
    for layer in range(3):
        q_layer = q + layer
        out = paged_decode_attention(q_layer, k_cache, v_cache, bt, lens, 0.2, plan, block_n=16)
        torch.testing.assert_close(out, paged_decode_attention_ref(q_layer, k_cache, v_cache, bt, lens, 0.2),
                                   atol=1e-4, rtol=1e-5)


def test_decode_fp16(paged_kv) -> None:
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, [5, 40], 4, 2, 64, 16, torch.float16)
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.125, block_n=16)
    ref = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=2e-3)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                    reason="the interpreter's tl.dot reads bf16 operands as raw uint16 bits")
def test_decode_bf16(paged_kv) -> None:
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, [5, 40], 4, 2, 64, 16, torch.bfloat16)
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.125, block_n=16)
    ref = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize(("seq_lens", "block_n", "chunk"), [
    ([1024], 32, 32),  # one sequence: 32-token tiles, chunks of one tile
    ([200, 1024, 7, 64], 32, 32),  # four: still the small tiling
    ([1024] * 8, 64, 128),  # eight: 64-token tiles, chunks of at least two
])
def test_the_default_tiling_follows_the_batch_size(paged_kv, seq_lens: list[int], block_n: int, chunk: int) -> None:
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, seq_lens, 8, 2, 32, 16)
    plan = plan_decode_work(lens, 2)
    batch = len(seq_lens)
    assert plan.block_n == block_n and plan.table[2 * batch].item() == chunk
    assert plan.table.tolist() == plan_decode_work_ref(lens, 2).table.tolist()
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.2, plan)
    torch.testing.assert_close(out, paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.2),
                               atol=1e-4, rtol=1e-5)
    with pytest.raises(AssertionError, match="against the plan's"):
        paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.2, plan, block_n=2 * block_n)


@pytest.mark.parametrize(("seq_lens", "block_size", "block_n", "num_work"), [
    (SEQ_LENS, 16, 16, None),  # one tile a page
    (SEQ_LENS, 64, 32, None),  # two tiles a page; chunks end mid-page
    (SEQ_LENS, 32, 16, 9),  # one slot spare: whole sequences in a chunk, ragged tails masked
    ([700, 3], 16, 16, 3),  # a 44-tile chunk: the table read 16 tiles at a time, the last group short
])
def test_bulk_copied_page_tiles_match_ref(paged_kv, seq_lens: list[int], block_size: int, block_n: int,
                                          num_work: int | None) -> None:
    """Tiles copied page by page (TMA on the GPU, emulated by the interpreter) read the pages the
    table names, skip the NaN past each sequence's end, and equal the gathered path."""
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, seq_lens, 8, 2, 64, block_size)
    plan = plan_decode_work(lens, 2, block_n=block_n, num_work=num_work)
    assert page_tma_fits(k_cache, block_n)
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.125, plan, page_tma=True)
    ref = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)
    gathered = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.125, plan, page_tma=False)
    torch.testing.assert_close(out, gathered, atol=1e-5, rtol=1e-5)


def test_page_tiles_need_tiles_inside_a_page(paged_kv) -> None:
    _, _, k_cache, _, _ = paged_kv([40], 2, 32, 16)
    assert page_tma_fits(k_cache, 16) and not page_tma_fits(k_cache, 32)
    assert not page_tma_fits(k_cache[:, :, :1], 16)  # one kv head of the pool: rows not contiguous
