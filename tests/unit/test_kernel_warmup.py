"""What keeps plan builds and JIT compiles out of timed runs: prompt length buckets (padded
fresh prompts attend exactly as unpadded ones), block tables of one stride divisibility, and the
start-up preparation of every bucket and prefill tile variant."""

import torch

from pdtune.executor.model_runner import _block_tables
from pdtune.kernels import prefill_tile_variants
from pdtune.model.attention import PagedAttention, prompt_bucket, table_width
from pdtune.model.ops import select_ops
from pdtune.request.sampling import SamplingParams
from pdtune.request.sequence import BlockTable, Sequence
from pdtune.scheduler.scheduler import ScheduledChunk


def test_buckets_bound_the_padding_and_the_number_of_lengths():
    for n in range(1, 40000):
        b = prompt_bucket(n)
        assert n <= b < n + max(64, n // 8 + 1) and b % 64 == 0  # under 1/8 more rows, or under 64
    assert len({prompt_bucket(n) for n in range(1, 20001)}) == 50


def attention(bucket: bool, backend: str = "torch") -> PagedAttention:
    attn = PagedAttention(num_heads=4, num_kv_heads=2, head_dim=16, ops=select_ops(backend, torch.device("cpu")))
    attn.k_cache = torch.zeros(4, 16, 2, 16)
    attn.v_cache = torch.zeros_like(attn.k_cache)
    attn.bucket_prompts = bucket
    return attn


def test_padded_fresh_prefill_equals_the_unpadded_one():
    torch.manual_seed(0)
    lens = [5, 70, 130, 1]  # the last prompts' buckets run past the step's rows: zero rows are added
    total = sum(lens)
    q, k, v = torch.randn(total, 4, 16), torch.randn(total, 2, 16), torch.randn(total, 2, 16)
    exact = attention(bucket=False)._fresh_prefill(q, k, v, lens)
    padded = attention(bucket=True)._fresh_prefill(q, k, v, lens)
    assert padded.shape == exact.shape
    torch.testing.assert_close(padded, exact, rtol=1e-5, atol=1e-5)


def test_start_up_prepares_every_bucket_and_prefill_tile_variant(monkeypatch):
    attn = attention(bucket=True, backend="triton")
    tiles = []
    kernel = attn.ops.prefill_attention
    monkeypatch.setattr(attn, "ops", attn.ops.__class__(**{
        **vars(attn.ops), "prefill_attention": lambda *a, **kw: tiles.append((kw["block_m"], kw["block_n"])) or kernel(*a, **kw)}))
    assert attn.prepare_kernels(300) == len({prompt_bucket(n) for n in range(1, 301)}) == 5
    assert tiles == prefill_tile_variants(2, 16) and len(tiles) >= 3  # decode-like, short and long chunks


def test_block_tables_always_have_a_width_divisible_by_16():
    assert [table_width(n) for n in (0, 1, 15, 16, 17, 1250)] == [16, 16, 16, 16, 32, 1264]
    seqs = []
    for blocks in (1, 3):
        seq = Sequence([1, 2, 3], SamplingParams())
        seq.block_table = BlockTable(range(blocks))
        seqs.append(ScheduledChunk(seq, 1))
    table = _block_tables(seqs)
    assert table.shape == (2, 16) and table[1, :3].tolist() == [0, 1, 2] and table[0, 1:].sum() == 0
