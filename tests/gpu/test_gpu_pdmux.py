"""pdmux on a real GPU: green-context partitions, same tokens as sequential, no hang or race."""

import random

import pytest
import torch

from pdtune import LLM, SamplingParams
from pdtune.executor.partitions import make_partitions

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def folder(tiny_hf_model):
    return tiny_hf_model("llama").folder


def test_granted_partitions_are_reported_and_really_limit_sms():
    parts = make_partitions(((104, 28), (72, 60)))
    total = torch.cuda.get_device_properties(0).multi_processor_count
    for p in parts[:2]:
        assert p.prefill_sms + p.decode_sms == total and p.decode_sms % 8 == 0 and p.decode_sms >= p.requested[1]
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)

    def matmul_ms(stream):
        with torch.cuda.stream(stream):
            for _ in range(3):
                a @ a
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            for _ in range(10):
                a @ a
            end.record(stream)
        end.synchronize()
        return start.elapsed_time(end) / 10

    full = matmul_ms(torch.cuda.Stream())
    small = parts[0]  # 28 (32 granted) decode SMs
    ratio = matmul_ms(small.decode_stream) / full
    assert 0.7 * total / small.decode_sms < ratio < 1.3 * total / small.decode_sms, ratio


@pytest.mark.parametrize("policy", [{}, {"pdmux_policy": "sglang"}, {"overlap_scheduling": False},
                                    {"pdmux_policy": "static", "pdmux_static_split": (96, 36), "pdmux_gang": 1},
                                    {"pdmux_prefill_jump": "shorter", "pdmux_spare_decode_target": 0.5},
                                    {"pdmux_prefill_jump": "spare", "pdmux_spare_decode_target": 0.7,
                                     "pdmux_spare_slack_share": 0.1}])
def test_pdmux_gives_the_same_greedy_tokens_as_sequential(folder, policy):
    prompts = [list(range(3, 3 + n)) for n in (1, 9, 16, 17, 50, 130, 200)]
    params = SamplingParams(max_tokens=20, temperature=0, ignore_eos=True)
    ref = LLM(folder, dtype="float32", mode="sequential", num_kv_blocks=256).generate(prompts, params)
    llm = LLM(folder, dtype="float32", mode="pdmux", pdmux_prefill_tokens=64, num_kv_blocks=256, **policy)
    pieces = llm.engine.stepper.executor.pieces  # prefill blocks replay graph pieces on each prefill stream
    assert pieces is not None and len(pieces.graphs) == 7 * len(llm.engine.runner.row_buckets(2048))
    begun = []
    begin = pieces.begin
    pieces.begin = lambda ids, *rest: begun.append(len(ids)) or begin(ids, *rest)
    got = llm.generate(prompts, params)
    assert [o.token_ids for o in got] == [o.token_ids for o in ref]
    assert begun


def first_divergence(got, ref):
    return next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), None)


def test_no_hang_or_race_over_ten_thousand_steps(folder):
    """Requests arrive while others decode, so prefill blocks and decode steps interleave in every
    way. Tokens must equal the sequential engine's, except where the reference's top two logits
    are tied to float32 rounding (batch shapes and SM counts change cuBLAS's reduction order):
    there the multiplexed run must have picked the reference's runner-up, and such ties must be
    rare. A race (KV written under a reader, a request joining decode early) breaks both."""
    rng = random.Random(0)
    requests = [([rng.randrange(3, 290) for _ in range(rng.randint(1, 300))], rng.randint(1, 60)) for _ in range(900)]
    # A third end on a stop token, mid-way, with a row in the overlapped decode step in flight: their
    # blocks are held from prefills on the other streams until that step is read back.
    params = [SamplingParams(max_tokens=n, temperature=0, ignore_eos=True, logprobs=2,
                             stop_token_ids=(rng.randrange(3, 290),) if i % 3 == 0 else ())
              for i, (_, n) in enumerate(requests)]
    llm = LLM(folder, dtype="float32", mode="pdmux", pdmux_prefill_tokens=512, num_kv_blocks=400, max_num_seqs=64)
    engine, outputs, pending = llm.engine, {}, list(enumerate(requests))
    while (pending or engine.has_unfinished()) and engine.num_steps < 20000:
        if pending and rng.random() < 0.08:  # about 12 steps between arrivals: over 10,000 steps in all
            i, (prompt, _) = pending.pop(0)
            engine.add_request(prompt, params[i], request_id=str(i))
        for out in engine.step():
            outputs[int(out.request_id)] = out.token_ids
    assert engine.num_steps >= 10000 and len(outputs) == len(requests)
    ref = LLM(folder, dtype="float32", mode="sequential", num_kv_blocks=400, max_num_seqs=64).generate(
        [p for p, _ in requests], params)
    ties = 0
    for i, r in enumerate(ref):
        at = first_divergence(outputs[i], r.token_ids)
        if at is None:
            continue
        (best, best_lp), (second, second_lp) = r.logprobs[at].top[:2]
        assert best_lp - second_lp < 1e-4 and outputs[i][at] == second, (i, at, best_lp - second_lp)
        ties += 1
    assert ties <= len(requests) // 100, ties


def test_the_planner_priors_use_this_gpus_measured_rates(folder):
    """Not the H100's constants: on another card (an H200 reads HBM ~1.6x faster) the priors of
    partitions the planner has not tried yet would be off by that much."""
    engine = LLM(folder, mode="pdmux", num_kv_blocks=64).engine
    predictor, rates = engine.stepper.planner.predictor, engine.ceilings
    # the tiny model is float32: Hopper's plain fp32 rate is ~50-67 TFLOP/s, its HBM 3-4.8 TB/s
    assert engine.loaded.dtype == torch.float32
    assert rates.copy_bytes_per_s > 1e12 and rates.matmul_flops_per_s > 1e13
    assert (predictor.bw, predictor.rate) == (rates.copy_bytes_per_s, rates.matmul_flops_per_s)
