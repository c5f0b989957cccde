"""What keeps plan builds and JIT compiles out of timed runs: prompt length buckets (padded
fresh prompts attend exactly as unpadded ones), block tables of one stride divisibility, and the
start-up preparation of every bucket and prefill tile variant."""

import pytest
import torch

from pdtune.executor.model_runner import _block_tables
from pdtune.kernels import build_cos_sin_cache, prefill_tile_variants
from pdtune.model.attention import PagedAttention, length_bucket, table_width
from pdtune.model.ops import select_ops
from pdtune.request.sampling import SamplingParams
from pdtune.request.sequence import BlockTable, Sequence
from pdtune.scheduler.scheduler import ScheduledChunk, StepPlan


def test_buckets_bound_the_padding_and_the_number_of_lengths():
    for n in range(1, 40000):
        b = length_bucket(n)
        assert n <= b < n + max(64, n // 8 + 1) and b % 64 == 0  # under 1/8 more rows, or under 64
    assert len({length_bucket(n) for n in range(1, 20001)}) == 50


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
    assert attn.prepare_kernels(300) == len({length_bucket(n) for n in range(1, 301)}) == 5
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


GREEDY = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
PROMPTS = [list(range(1, n + 1)) for n in (3, 70, 130)] + [[5, 9, 200] * 11]


def tiny_llm(pad: bool, **kw):
    from pdtune import LLM

    llm = LLM("tiny", load_format="dummy", **kw)
    llm.engine.runner.pad_steps = pad
    return llm


@pytest.mark.parametrize("mode,budget", [("sequential", 2048), ("chunked", 48), ("pdmux", 2048)])
def test_steps_padded_to_row_buckets_give_the_same_tokens_and_logprobs(mode, budget):
    params = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True, logprobs=2)
    exact, padded = (tiny_llm(pad, mode=mode, max_num_batched_tokens=budget).generate(PROMPTS, params)
                     for pad in (False, True))
    assert [o.token_ids for o in padded] == [o.token_ids for o in exact]
    for a, b in zip(exact, padded):
        for la, lb in zip(a.logprobs, b.logprobs):
            assert la.logprob == pytest.approx(lb.logprob, abs=1e-4)


def test_a_mixed_step_is_laid_out_padded_with_rows_that_write_no_kv():
    runner = tiny_llm(True, mode="chunked").engine.runner
    decoding = Sequence(list(range(1, 11)), SamplingParams())
    decoding.block_table, decoding.num_computed_tokens = BlockTable([0]), 9
    prompt = Sequence(list(range(1, 71)), SamplingParams())
    prompt.block_table = BlockTable(range(1, 6))
    plan = StepPlan([ScheduledChunk(decoding, 1), ScheduledChunk(prompt, 70)])
    inputs = runner.prepare(plan)
    assert len(inputs.input_ids) == length_bucket(71) == 128 and inputs.meta.num_padding_tokens == 57
    assert (inputs.meta.slot_mapping[71:] == -1).all() and (inputs.meta.slot_mapping[:71] >= 0).all()
    assert inputs.num_logits == 2 and len(inputs.logits_rows) == 64 and inputs.logits_rows[:2].tolist() == [69, 70]
    runner.pad_steps = False
    exact = runner.prepare(plan)
    assert len(exact.input_ids) == 71 and exact.meta.num_padding_tokens == 0 and len(exact.logits_rows) == 2
    decode_only = runner.prepare(StepPlan([ScheduledChunk(decoding, 1)]))
    assert len(decode_only.input_ids) == 1  # decode graphs pad their own batch


def test_padding_rows_attend_to_nothing_and_leave_the_real_rows_exact():
    torch.manual_seed(0)
    attn = attention(bucket=False)
    k_cache = attn.k_cache
    lens = [5, 9]
    q, k, v = torch.randn(14 + 6, 4, 16), torch.randn(14 + 6, 2, 16), torch.randn(14 + 6, 2, 16)
    from pdtune.model.attention import AttentionMetadata

    def meta(pad: int) -> AttentionMetadata:
        slots = torch.cat([torch.arange(14), torch.full((pad,), -1)])
        return AttentionMetadata(slots, 14, torch.tensor([0, 5, 14], dtype=torch.int32),
                                 torch.tensor(lens, dtype=torch.int32), torch.tensor([[0, 1], [2, 3]], dtype=torch.int32),
                                 None, None, fresh_prefill_lens=lens, num_padding_tokens=pad)

    positions, cos_sin = torch.arange(20) % 14, build_cos_sin_cache(16, 64, 10000.0, None)
    exact = attn(q[:14], k[:14], v[:14], positions[:14], cos_sin, meta(0))
    cache_after_exact = k_cache.clone()
    k_cache.zero_()
    padded = attn(q, k, v, positions, cos_sin, meta(6))
    assert padded.shape == (20, 4, 16) and padded[14:].abs().sum() == 0
    torch.testing.assert_close(padded[:14], exact)
    torch.testing.assert_close(k_cache, cache_after_exact)  # the padding rows wrote no KV


def test_start_up_runs_each_row_bucket_through_every_projection_and_the_lm_head(monkeypatch):
    llm = tiny_llm(True, mode="chunked", max_num_batched_tokens=300)
    runner = llm.engine.runner
    seen = []
    hooks = [p.register_forward_hook(lambda mod, args, out: seen.append((id(mod), args[0].shape[0])))
             for p in runner.model.projections()]
    calls = []
    real_linear = torch.nn.functional.linear
    monkeypatch.setattr("pdtune.executor.model_runner.F.linear",
                        lambda x, w, *a: calls.append((w is runner.model.lm_head_weight, x.shape[0])) or real_linear(x, w, *a))
    buckets = runner.prepare_matmuls(300, 70)
    for h in hooks:
        h.remove()
    rows = sorted({length_bucket(n) for n in range(1, 301)})
    assert buckets == len(rows) == 5
    assert sorted({r for _, r in seen}) == rows and len(seen) == 4 * len(rows)
    assert [rows for lm_head, rows in calls if lm_head] == [64, 128]
