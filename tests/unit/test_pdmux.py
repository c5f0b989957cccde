"""pdmux on the simulated executor (CPU): same code path as the GPU, no SM partitions."""

import itertools
import json
import math
import random
import time

import pytest
import torch

from pdtune import LLM, SamplingParams
from pdtune.config import DEFAULT_SPLITS, EngineConfig
from pdtune.executor.partitions import simulated_partitions
from pdtune.model.arch import ModelArch
from pdtune.model.loader import PRESET_DIR, read_json
from pdtune.perf.model_costs import PrefillShape
from pdtune.planner import pdmux as pdmux_planner
from pdtune.planner.pdmux import PdmuxPlanner, StepDecision
from pdtune.planner.predictor import LAYER_LAUNCH_MS, StepTimePredictor
from pdtune.request.sequence import Sequence
from pdtune.scheduler.block_manager import BlockManager
from pdtune.scheduler.scheduler import Scheduler

GREEDY = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
PROMPTS = [list(range(1, n + 1)) for n in (1, 7, 16, 17, 40)] + [[5, 9, 200] * 11]
STATIC = dict(pdmux_policy="static", pdmux_static_split=(96, 36), pdmux_gang=1)


def tiny(**kw) -> LLM:
    return LLM("tiny", load_format="dummy", **kw)


@pytest.fixture(scope="module")
def reference_tokens():
    return [o.token_ids for o in tiny(mode="sequential").generate(PROMPTS, GREEDY)]


@pytest.mark.parametrize("policy", [{}, {"pdmux_policy": "sglang"}, STATIC,
                                    {"pdmux_prefill_alone": True, "slo_tpot_ms": 1e4}, {"dispatch": "fewest-misses"},
                                    {"pdmux_prefill_jump": "shorter"}, {"pdmux_spare_decode_target": 0.5},
                                    {"pdmux_prefill_jump": "shorter", "pdmux_prefill_behind": False},
                                    {"pdmux_prefill_jump": "spare", "pdmux_spare_decode_target": 0.7,
                                     "pdmux_spare_slack_share": 0.1}])
@pytest.mark.parametrize("budget", [16384, 20])
def test_pdmux_gives_the_same_greedy_tokens_as_sequential(reference_tokens, policy, budget):
    outs = tiny(mode="pdmux", pdmux_prefill_tokens=budget, **policy).generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in outs] == reference_tokens


def test_prefill_runs_in_layer_blocks_beside_decode_and_then_joins_it():
    # tiny has 2 layers; gang 1 = one layer per step. Not overlapped: a step's tokens come in it.
    llm = tiny(mode="pdmux", overlap_scheduling=False, **STATIC)
    engine, stepper = llm.engine, llm.engine.stepper
    first = engine.add_request(list(range(1, 9)), SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens == 0:
        engine.step()
    second = engine.add_request(list(range(20, 50)), GREEDY)
    engine.step()  # the new prefill starts: layer 0 beside one decode step of `first`
    job = stepper.job
    assert job is not None and job.next_layer == 1 and second.num_computed_tokens == 0
    before = first.num_output_tokens
    engine.step()  # layer 1 (and logits) beside the next decode step
    assert job.next_layer == 2 and first.num_output_tokens == before + 1
    assert second.num_output_tokens == 0  # finished prefills join at the next step, after their event
    engine.step()
    assert stepper.job is None and second.num_output_tokens == 1 and second.num_computed_tokens == 30
    engine.step()
    assert second.num_output_tokens == 2  # decoding beside `first` now


def test_preemption_never_touches_the_prefill_in_flight(reference_tokens):
    llm = tiny(mode="pdmux", num_kv_blocks=6, pdmux_prefill_tokens=20, **STATIC)
    protected_seen = []
    original = llm.engine.scheduler._preempt

    def spy(seq, plan):
        protected_seen.append(id(seq) in llm.engine.scheduler.protected)
        return original(seq, plan)

    llm.engine.scheduler._preempt = spy
    outs = llm.generate(PROMPTS, GREEDY)
    assert protected_seen and not any(protected_seen)
    assert [o.token_ids for o in outs] == reference_tokens


def test_every_step_decision_goes_to_the_trace(tmp_path):
    trace = tmp_path / "trace.jsonl"
    tiny(mode="pdmux", trace_path=str(trace), pdmux_prefill_tokens=20, **STATIC).generate(PROMPTS[:4], GREEDY)
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert rows and {"step", "split", "gang", "decode_batch", "prefill_tokens", "predicted_decode_ms",
                     "measured_decode_ms", "predicted_prefill_ms", "measured_prefill_blocks_ms", "host_ms"} <= set(rows[0])
    assert any(r["split"] == "96/36" and r["gang"] == 1 and r["decode_batch"] for r in rows)


class HeldEvent:
    """A CUDA event stand-in that finishes when the test says so, `ms` after its start."""

    def __init__(self, ms: float):
        self.ms, self.finished = ms, False

    def query(self) -> bool:
        return self.finished

    def elapsed_time(self, end: "HeldEvent") -> float:
        return end.ms


def test_every_prefill_block_is_learned_from_in_launch_order_even_when_one_outlasts_a_step():
    from pdtune.executor.pdmux import PrefillBlock

    stepper = tiny(mode="pdmux", **STATIC).engine.stepper
    learned = []
    stepper.planner.predictor.observe_layers = lambda part, shape, layers, ms: learned.append((layers, ms))
    events = [HeldEvent(ms) for ms in (4.0, 9.0, 2.0)]
    for layers, event in enumerate(events, start=1):
        stepper.pending_blocks.append(("part", P128, layers, PrefillBlock(HeldEvent(0.0), event, 0.0, 0.0)))
    events[0].finished = events[2].finished = True  # the middle block still runs: the last waits behind it
    assert stepper._observe_prefill_blocks() == [4.0] and learned == [(1, 4.0)]
    events[1].finished = True
    assert stepper._observe_prefill_blocks() == [9.0, 2.0] and learned == [(1, 4.0), (2, 9.0), (3, 2.0)]
    assert not stepper.pending_blocks


def test_a_served_run_learns_from_every_block_it_launched(tmp_path):
    trace = tmp_path / "trace.jsonl"
    llm = tiny(mode="pdmux", trace_path=str(trace), pdmux_prefill_tokens=20, **STATIC)
    learned = []
    observe = llm.engine.stepper.planner.predictor.observe_layers
    llm.engine.stepper.planner.predictor.observe_layers = lambda *a: (learned.append(a), observe(*a))
    llm.generate(PROMPTS[:4], GREEDY)
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    launched = sum(1 for r in rows if r["gang"])
    assert launched and len(learned) == launched == sum(len(r["measured_prefill_blocks_ms"]) for r in rows)


P128, P4096 = PrefillShape.single(128), PrefillShape.single(4096)


def planner(**config) -> PdmuxPlanner:
    arch = ModelArch.from_hf_config(read_json(f"{PRESET_DIR}/llama-3.1-8b.json"))
    cfg = EngineConfig(mode="pdmux", **config)
    parts = simulated_partitions(DEFAULT_SPLITS)
    return PdmuxPlanner(cfg, parts, StepTimePredictor(arch, 2, 132))


def test_adaptive_picks_the_smallest_decode_partition_that_meets_tpot():
    loose = planner(slo_tpot_ms=20.0).decide(decode_batch=8, context_tokens=8 * 1024, prefill=P4096, remaining_layers=32)
    assert loose.partition.decode_sms == 20 and loose.predicted_decode_ms <= 20
    tight = planner(slo_tpot_ms=8.0)
    d = tight.decide(8, 8 * 1024, P4096, 32)
    assert d.partition.decode_sms == 36 and d.predicted_decode_ms <= 8.0
    # gang: enough prefill layers to cover the step (the decode iteration, or the host loop if longer)
    per_layer = tight.predictor.layer_ms(d.partition, P4096)
    assert d.gang == math.ceil(d.predicted_decode_ms / per_layer)
    tight.predictor.observe_step_wall(3 * d.predicted_decode_ms)
    assert tight.decide(8, 8 * 1024, P4096, 32).gang == math.ceil(3 * d.predicted_decode_ms / per_layer)
    tight.predictor.step_wall_ms = None
    # contention measured on that partition widens the guard band: decode moves to more SMs
    tight.predictor.observe_decode(d.partition, 8, 8 * 1024, measured_ms=d.predicted_decode_ms * 1.3)
    assert tight.decide(8, 8 * 1024, P4096, 32).partition.decode_sms > 36


def test_a_decode_target_below_one_plans_decode_against_that_share_of_the_tpot():
    at_slo = planner(slo_tpot_ms=20.0).decide(8, 8 * 1024, P4096, 32)
    short = planner(slo_tpot_ms=20.0, pdmux_decode_target=0.4)
    d = short.decide(8, 8 * 1024, P4096, 32)
    assert short.decode_budget_ms() == pytest.approx(8.0)
    assert d.partition.decode_sms > at_slo.partition.decode_sms and d.predicted_decode_ms <= 8.0
    with pytest.raises(Exception, match="decode target"):
        EngineConfig(pdmux_decode_target=1.5)


def paced(tokens: int, first_token_ago_ms: float, now: float) -> Sequence:
    seq = Sequence([1, 2, 3], GREEDY)
    seq.token_times = [now - first_token_ago_ms / 1e3] * tokens
    return seq


def test_the_pace_budget_is_what_the_least_ahead_request_banked():
    now = time.perf_counter()
    ahead = paced(tokens=11, first_token_ago_ms=100.0, now=now)  # 10 gaps in 100 ms: 10 ms a token
    fresh = paced(tokens=1, first_token_ago_ms=2.0, now=now)  # its first token 2 ms ago
    late = paced(tokens=5, first_token_ago_ms=130.0, now=now)  # 4 gaps in 130 ms against 4 x 30
    p = planner(slo_tpot_ms=30.0, pdmux_decode_budget="pace")
    # after the step `ahead` has 11 gaps: it keeps a 30 ms mean if the step ends within 11 x 30 - 100 ms
    assert p.decode_budget_ms([ahead], now) == pytest.approx(230.0)
    assert p.decode_budget_ms([ahead, fresh], now) == pytest.approx(28.0)
    assert p.decode_budget_ms([ahead, late], now) == pytest.approx(20.0)  # 5 x 30 - 130: it makes up 10 ms
    assert p.decode_budget_ms([], now) == pytest.approx(30.0)
    capped = planner(slo_tpot_ms=30.0, slo_itl_ms=50.0, pdmux_decode_budget="pace")  # an ITL bound caps banked slack
    assert capped.decode_budget_ms([ahead], now) == pytest.approx(50.0)
    assert capped.decode_budget_ms([ahead, late], now) == pytest.approx(20.0)
    step = planner(slo_tpot_ms=30.0)  # the default budget: every step the TPOT alone
    assert step.decode_budget_ms([ahead, late], now) == pytest.approx(30.0)
    with pytest.raises(Exception, match="decode budget"):
        EngineConfig(pdmux_decode_budget="mean")


def test_banked_tpot_slack_buys_a_prefill_block_alone_on_the_whole_gpu():
    p = planner(slo_tpot_ms=8.0, pdmux_prefill_alone=True)
    at_slo = p.decide(8, 8 * 1024, P4096, 32)
    assert at_slo.partition.decode_sms  # no bank: decode runs beside prefill
    alone_layer = p.predictor.layer_ms(p.prefill_alone, P4096)
    assert alone_layer < p.predictor.layer_ms(at_slo.partition, P4096)
    # a budget the smallest decode partition meets with room for 3.5 layers alone after it
    next_decode = p.predictor.decode_ms(p.mixed[0], 8, 8 * 1024, worst=True)
    banked = p.decide(8, 8 * 1024, P4096, 32, budget_ms=next_decode + 3.5 * alone_layer)
    assert banked.partition is p.prefill_alone and banked.gang == 3 and banked.predicted_decode_ms is None
    assert p.decide(8, 8 * 1024, P4096, 2, budget_ms=next_decode + 3.5 * alone_layer).gang == 2  # what is left
    assert planner(slo_tpot_ms=8.0).decide(8, 8 * 1024, P4096, 32, budget_ms=1e4).partition.decode_sms


def test_a_prefill_block_alone_leaves_the_decode_batch_for_the_next_step(tmp_path):
    trace = tmp_path / "trace.jsonl"
    engine = tiny(mode="pdmux", trace_path=str(trace), slo_tpot_ms=1e4, pdmux_prefill_alone=True,
                  overlap_scheduling=False).engine  # a step's trace row and tokens come in it
    first = engine.add_request(list(range(1, 9)), SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens < 3:
        engine.step()
    engine.add_request(list(range(20, 50)), GREEDY)
    before = first.num_output_tokens
    engine.step()  # decode has banked ~10 s a token: the new prompt's layers run alone
    row = json.loads(trace.read_text().splitlines()[-1])
    assert row["split"] == "132/0" and row["gang"] and row["decode_batch"] == 1 and row["measured_decode_ms"] is None
    assert first.num_output_tokens == before
    engine.step()
    assert first.num_output_tokens == before + 1


def test_no_prefill_block_is_launched_while_one_waits_behind_the_running_one(tmp_path, monkeypatch):
    from pdtune.executor import pdmux as pdmux_executor

    class Pending(pdmux_executor.DoneEvent):  # a block the GPU has not finished yet
        def __init__(self):
            self.complete = False

        def query(self) -> bool:
            return self.complete

        def synchronize(self) -> None:
            self.complete = True

    monkeypatch.setattr(pdmux_executor, "_record", lambda stream: Pending())
    config = read_json(f"{PRESET_DIR}/tiny.json") | {"num_hidden_layers": 4}
    (tmp_path / "config.json").write_text(json.dumps(config))
    trace = tmp_path / "trace.jsonl"
    engine = LLM(str(tmp_path), load_format="dummy", mode="pdmux", trace_path=str(trace), overlap_scheduling=False,
                 **STATIC).engine  # a step's trace row comes in it
    first = engine.add_request(list(range(1, 9)), SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens < 2:
        engine.step()
    engine.add_request(list(range(20, 50)), GREEDY)
    gangs = []
    for _ in range(3):
        engine.step()
        gangs.append(json.loads(trace.read_text().splitlines()[-1])["gang"])
    job = engine.stepper.job
    assert gangs == [1, 1, 0] and job.next_layer == 2  # the third step waits: block 1 is still running
    job.prev_done.complete = True  # block 1 done, block 2 running: room for one more behind it
    engine.step()
    assert json.loads(trace.read_text().splitlines()[-1])["gang"] == 1 and job.next_layer == 3


def test_the_batch_behind_launches_no_layers_while_the_last_block_before_it_runs():
    from pdtune.executor.pdmux import PrefillJob
    from pdtune.scheduler.scheduler import StepPlan

    stepper = tiny(mode="pdmux").engine.stepper
    last, behind = HeldEvent(0.0), HeldEvent(0.0)
    before = PrefillJob(StepPlan(), None, 2, next_layer=2, done=last)
    after = PrefillJob(StepPlan(), None, 2, next_layer=1, done=behind)
    stepper.jobs = [before, after]
    assert stepper.job is after and stepper._prefill_queued(after)  # its first block waits behind `last`
    last.finished = True
    assert not stepper._prefill_queued(after)


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("jump", ["off", "shorter"])
def test_blocks_that_finish_in_any_order_of_steps_keep_the_sequential_tokens(reference_tokens, monkeypatch, jump,
                                                                              overlap):
    from pdtune.executor import pdmux as pdmux_executor

    rng = random.Random(0)

    class Racing(pdmux_executor.DoneEvent):  # a block found done at a random later poll
        def __init__(self):
            self.complete = False

        def query(self) -> bool:
            self.complete = self.complete or rng.random() < 0.3
            return self.complete

        def synchronize(self) -> None:
            self.complete = True

    monkeypatch.setattr(pdmux_executor, "_record", lambda stream: Racing())
    llm = tiny(mode="pdmux", pdmux_prefill_jump=jump, pdmux_prefill_tokens=20, overlap_scheduling=overlap)
    stepper, behind_steps = llm.engine.stepper, []
    launch_behind = stepper._launch_behind
    monkeypatch.setattr(stepper, "_launch_behind", lambda *a: (launch_behind(*a), behind_steps.append(len(stepper.jobs))))
    outs = llm.generate(PROMPTS * 3, GREEDY)
    assert [o.token_ids for o in outs] == reference_tokens * 3
    assert 2 in behind_steps  # a batch went behind another's last layers


def test_banked_tpot_slack_buys_prefill_sms_and_a_deficit_takes_them_back():
    p = planner(slo_tpot_ms=8.0)
    at_slo = p.decide(8, 8 * 1024, P4096, 32)
    banked = p.decide(8, 8 * 1024, P4096, 32, budget_ms=40.0)
    assert banked.partition.decode_sms < at_slo.partition.decode_sms and banked.decode_budget_ms == 40.0
    behind = p.decide(8, 8 * 1024, P4096, 32, budget_ms=5.0)
    assert behind.partition.decode_sms > at_slo.partition.decode_sms


def test_the_engine_plans_pdmux_decode_within_the_pace_budget(tmp_path):
    trace = tmp_path / "trace.jsonl"
    engine = tiny(mode="pdmux", trace_path=str(trace), slo_tpot_ms=50.0, pdmux_decode_budget="pace",
                  overlap_scheduling=False).engine  # a step's trace row comes in it
    first = engine.add_request(list(range(1, 9)), SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens < 10:
        engine.step()
    engine.add_request(list(range(20, 50)), GREEDY)
    engine.step()  # the new prefill beside `first`, which decoded far faster than 50 ms a token
    row = json.loads(trace.read_text().splitlines()[-1])
    assert row["decode_batch"] == 1 and row["gang"]
    elapsed_ms = (time.perf_counter() - first.token_times[0]) * 1e3
    assert row["decode_budget_ms"] + row["host_ms"] > 10 * 50.0 - elapsed_ms - 1.0
    assert row["decode_budget_ms"] + row["host_ms"] > 50.0


def test_the_host_time_of_a_step_counts_against_the_tpot_budget(tmp_path):
    p = planner(slo_tpot_ms=8.0, trace_path=str(tmp_path / "trace.jsonl"))
    alone = p.decide(8, 8 * 1024, P4096, 32)
    assert alone.predicted_decode_ms <= 8.0
    # steps whose wall time is 4 ms over their decode: decode must fit in about 4 ms now
    for _ in range(200):
        p.predictor.observe_step_wall(alone.predicted_decode_ms + 4.0, alone.predicted_decode_ms)
    assert p.predictor.host_ms == pytest.approx(4.0, rel=1e-3)
    moved = p.decide(8, 8 * 1024, P4096, 32)
    assert moved.partition.decode_sms > alone.partition.decode_sms
    assert moved.predicted_decode_ms <= 4.0 or moved.partition is p.mixed[-1]
    # each decision keeps the host time it planned with, though the next step's wall time moves it on
    assert (alone.host_ms, moved.host_ms) == (0.0, pytest.approx(4.0, rel=1e-3))
    p.predictor.observe_step_wall(moved.predicted_decode_ms + 40.0, moved.predicted_decode_ms)
    p.record(moved, 8, 4096, moved.predicted_decode_ms)  # with overlap, a step's row is written after the next began
    assert json.loads((tmp_path / "trace.jsonl").read_text())["host_ms"] == moved.host_ms != p.predictor.host_ms


def test_layer_times_are_learned_per_token_bucket_and_ignore_one_stalled_block():
    p = planner()
    part = p.mixed[0]
    short, long = p.predictor.layer_ms(part, P128), p.predictor.layer_ms(part, PrefillShape.single(16384))
    assert short >= LAYER_LAUNCH_MS  # a short block is bound by launching its kernels
    for _ in range(9):  # short blocks run 2x their prior
        p.predictor.observe_layers(part, P128, 4, measured_ms=4 * 2 * short)
    p.predictor.observe_layers(part, P128, 4, measured_ms=4 * 100 * short)  # one stalled block
    assert p.predictor.layer_ms(part, P128) == pytest.approx(2 * short)
    assert p.predictor.layer_ms(part, PrefillShape.single(16384)) == pytest.approx(long)  # other sizes keep their own factor
    # a short prefill gets enough layers to cover the decode step, not a handful
    d = p.decide(decode_batch=16, context_tokens=16 * 1024, prefill=P128, remaining_layers=32)
    assert d.gang == min(32, math.ceil(d.predicted_decode_ms / p.predictor.layer_ms(d.partition, P128)))


def test_sglang_policy_follows_the_decode_batch_size():
    p = planner(pdmux_policy="sglang")
    # SGLang's index over its 6 mixed groups: max(1, min(6, batch x 6 // 36)), so 6 more sequences a group
    for batch, decode_sms in ((1, 20), (11, 20), (12, 28), (18, 36), (35, 52), (36, 60), (100, 60)):
        assert p.decide(batch, batch * 1024, PrefillShape.single(2048), 32).partition.decode_sms == decode_sms, batch
    assert p.decide(1, 1024, PrefillShape.single(2048), 32).gang == 32  # 65536 // 2048 layers, capped at the layers left


def _scheduler():
    return Scheduler(BlockManager(64, 16), max_num_seqs=8, max_num_batched_tokens=4096, max_model_len=4096)


def test_edf_orders_by_deadline_and_defers_hopeless_requests():
    p = planner(slo_ttft_ms=1000.0)
    s = _scheduler()
    now = time.perf_counter()
    late = Sequence(list(range(100)), GREEDY, arrival_time=now - 5.0)  # already past its TTFT
    young = Sequence(list(range(100)), GREEDY, arrival_time=now)
    older = Sequence(list(range(100)), GREEDY, arrival_time=now - 0.5)
    for seq in (late, young, older):
        s.add(seq)
    p.order_waiting(s, now)
    assert list(s.waiting) == [older, young, late]
    fcfs = planner(dispatch="fcfs")
    s2 = _scheduler()
    for seq in (late, young, older):
        s2.add(seq)
    fcfs.order_waiting(s2, now)
    assert list(s2.waiting) == [late, young, older]


def test_fewest_misses_dispatch_lets_short_prompts_ahead_of_a_burst_of_long_ones():
    """Moore-Hodgson: with prefills run one after another, no order of the queue misses fewer
    TTFTs (checked against every order); EDF by latest start lets four long prompts that arrived
    just after four short ones go first, and the short ones miss."""
    s = Scheduler(BlockManager(8192, 16), max_num_seqs=64, max_num_batched_tokens=16384, max_model_len=20000)
    now = time.perf_counter()
    short = [Sequence(list(range(3, 103)), GREEDY, arrival_time=now - 0.3) for _ in range(4)]
    long = [Sequence(list(range(16000)), GREEDY, arrival_time=now - 0.05) for _ in range(4)]
    hopeless = Sequence(list(range(3, 50)), GREEDY, arrival_time=now - 5.0)
    p = planner(slo_ttft_ms=2000.0, dispatch="fewest-misses")
    prefill_s = {id(q): p._prefill_of(s, q, p.mixed[0])[1] / 1e3 for q in short + long + [hopeless]}
    assert 3 * prefill_s[id(long[0])] < 1.95 < 4 * prefill_s[id(long[0])] + 4 * prefill_s[id(short[0])]

    def misses(order):
        done, late = now, 0
        for q in order:
            done += prefill_s[id(q)]
            late += done > q.arrival_time + 2.0
        return late

    def ordered(policy, queue):
        sched = Scheduler(s.blocks, max_num_seqs=64, max_num_batched_tokens=16384, max_model_len=20000)
        for q in queue:
            sched.add(q)
        planner(slo_ttft_ms=2000.0, dispatch=policy).order_waiting(sched, now)
        return list(sched.waiting)

    fewest, edf = ordered("fewest-misses", long + short), ordered("edf", long + short)
    assert misses(edf) == 4 and edf[:4] == long
    assert misses(fewest) == 1 == min(misses(order) for order in itertools.permutations(long + short))
    assert fewest[:4] == short and fewest[-1] in long
    with_hopeless = ordered("fewest-misses", [hopeless] + long + short)
    # the deferred keep due order: the hopeless one first
    assert with_hopeless[:4] == short and with_hopeless[-2] is hopeless and with_hopeless[-1] in long
    with pytest.raises(Exception, match="dispatch"):
        EngineConfig(dispatch="sjf")


@pytest.mark.parametrize("dispatch", ["edf", "fewest-misses"])
def test_cached_prefixes_go_first_when_slack_allows(dispatch):
    p = planner(slo_ttft_ms=1000.0, dispatch=dispatch)
    s = _scheduler()
    shared = list(range(64))
    warm = Sequence(shared + [1, 2, 3], GREEDY)
    s.blocks.allocate(warm)
    s.blocks.append_slots(warm, len(warm))
    warm.num_computed_tokens = len(warm)
    s.blocks.commit_full_blocks(warm)
    now = time.perf_counter()
    urgent = Sequence(list(range(500, 600)), GREEDY, arrival_time=now - 0.2)
    cached = Sequence(shared + [9, 9], GREEDY, arrival_time=now)
    s.add(urgent)
    s.add(cached)
    p.order_waiting(s, now)
    assert list(s.waiting) == [cached, urgent]
    # little slack at the head (about 10 ms left, less than the cached prompt's 400 new tokens take): EDF order
    s2 = _scheduler()
    rushed = Sequence(list(range(500, 600)), GREEDY, arrival_time=now - 0.97)
    long_cached = Sequence(shared + list(range(1000, 1400)), GREEDY, arrival_time=now)
    s2.add(rushed)
    s2.add(long_cached)
    s2.blocks = s.blocks
    p.order_waiting(s2, now)
    assert list(s2.waiting) == [rushed, long_cached]


def test_a_static_config_file_drives_pdmux(tmp_path, reference_tokens):
    from pdtune.config import build_engine_config

    path = tmp_path / "pdmux.json"
    path.write_text(json.dumps({"engine": {"mode": "pdmux", "pdmux_policy": "static", "pdmux_static_split": [96, 36],
                                           "pdmux_gang": 1, "pdmux_splits": [[104, 28], [96, 36]]}}))
    cfg = build_engine_config(str(path), model="tiny", load_format="dummy", pdmux_prefill_tokens=20)
    assert cfg.pdmux_static_split == (96, 36) and cfg.pdmux_splits == ((104, 28), (96, 36))
    llm = LLM(**vars(cfg))
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY)] == reference_tokens


def test_pdmux_with_prefix_hits_and_seeded_sampling_matches_chunked():
    shared = [7] * 40
    first, later = [shared + [1, 2, 3]], [shared + [4, 5], shared + [9] * 20]
    sampled = SamplingParams(max_tokens=8, temperature=0.8, top_p=0.9, top_k=50, min_p=0.05, seed=11, ignore_eos=True)
    results = {}
    for mode in ("chunked", "pdmux"):
        llm = tiny(mode=mode, pdmux_prefill_tokens=30)
        a = llm.generate(first, GREEDY)
        b = llm.generate(later, [GREEDY, sampled])
        results[mode] = [o.token_ids for o in a + b]
        assert b[0].metrics.num_cached_tokens == 32 and llm.engine.block_manager.hit_rate > 0
    assert results["pdmux"] == results["chunked"]


def test_without_green_contexts_the_partitions_fail_with_a_message(monkeypatch):
    import torch

    from pdtune.executor.partitions import GreenContextsUnavailable, make_partitions

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(GreenContextsUnavailable, match="needs a CUDA GPU with green contexts"):
        make_partitions(DEFAULT_SPLITS)


def test_splits_the_driver_rounds_to_the_same_sms_make_one_partition(monkeypatch):
    import torch

    from pdtune.executor import partitions

    class EightSmSteps:  # the H100/H200 driver's granularity, without a GPU
        total_sms = 132

        def __init__(self, device):
            pass

        def split(self, prefill_sms, decode_sms):
            granted = -(-decode_sms // 8) * 8
            return partitions.Partition((prefill_sms, decode_sms), 132 - granted, granted, None, None)

    monkeypatch.setattr(partitions, "GreenContextFactory", EightSmSteps)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "Stream", lambda: None)
    parts = partitions.make_partitions(((120, 12), (116, 16), (112, 20)))
    assert [p.name for p in parts] == ["116/16", "108/24", "132/0", "0/132"]
    assert parts[0].requested == (120, 12)


def test_when_no_split_meets_tpot_decode_takes_the_gpu_while_prefill_has_ttft_slack():
    p = planner(slo_tpot_ms=1.0, slo_ttft_ms=2000.0)  # no partition decodes 8 x 8k tokens in 1 ms
    now = time.perf_counter()
    roomy = p.prefill_slack_ms(earliest_arrival=now, prefill=P4096, remaining_layers=32, now=now)
    assert 0 < roomy < 2000.0
    paused = p.decide(8, 8 * 1024, P4096, 32, prefill_slack=lambda: roomy)
    assert paused.partition is p.decode_alone and paused.gang == 0 and paused.predicted_prefill_ms is None
    late = p.prefill_slack_ms(earliest_arrival=now - 1.99, prefill=P4096, remaining_layers=32, now=now)
    resumed = p.decide(8, 8 * 1024, P4096, 32, prefill_slack=lambda: late)
    assert resumed.partition is p.mixed[-1] and resumed.gang >= 1
    # a split that meets the TPOT keeps prefill running whatever its slack
    assert planner(slo_tpot_ms=20.0).decide(8, 8 * 1024, P4096, 32, prefill_slack=lambda: roomy).gang >= 1


def test_spare_ttft_slack_plans_decode_at_the_spare_target_and_a_filling_queue_takes_it_back():
    at_slo = planner(slo_tpot_ms=20.0, slo_ttft_ms=2000.0).decide(8, 8 * 1024, P4096, 32)
    p = planner(slo_tpot_ms=20.0, slo_ttft_ms=2000.0, pdmux_spare_decode_target=0.4)
    asked = []

    def slack_of(ms: float):
        def slack() -> float:
            asked.append(ms)
            return ms
        return slack

    roomy = p.decide(8, 8 * 1024, P4096, 32, prefill_slack=slack_of(1500.0))
    assert roomy.decode_budget_ms == pytest.approx(8.0) and roomy.predicted_decode_ms <= 8.0
    assert roomy.partition.decode_sms > at_slo.partition.decode_sms and roomy.gang >= 1  # prefill keeps running
    tight = p.decide(8, 8 * 1024, P4096, 32, prefill_slack=slack_of(900.0))  # under half the 2 s TTFT (default share)
    assert tight.decode_budget_ms == pytest.approx(20.0) and tight.partition.name == at_slo.partition.name
    assert asked == [1500.0, 900.0]
    # no split meets a spare budget of 1 ms: the slack then pauses prefill too, asked once for both rules
    paused = planner(slo_tpot_ms=20.0, slo_ttft_ms=2000.0, pdmux_spare_decode_target=0.05).decide(
        8, 8 * 1024, P4096, 32, prefill_slack=slack_of(1500.0))
    assert paused.partition.prefill_sms == 0 and paused.gang == 0 and asked == [1500.0, 900.0, 1500.0]
    quarter = planner(slo_tpot_ms=20.0, slo_ttft_ms=2000.0, pdmux_spare_decode_target=0.4, pdmux_spare_slack_share=0.25)
    assert quarter.decide(8, 8 * 1024, P4096, 32, prefill_slack=slack_of(900.0)).decode_budget_ms == pytest.approx(8.0)
    asked.clear()
    # without a prefill in flight there is no slack to spend; at the default target nothing is asked
    assert p.decide(8, 8 * 1024, P4096, 32).decode_budget_ms == pytest.approx(20.0)
    planner(slo_tpot_ms=20.0).decide(8, 8 * 1024, P4096, 32, prefill_slack=slack_of(1500.0))
    assert asked == []
    with pytest.raises(Exception, match="spare decode target"):
        EngineConfig(pdmux_spare_decode_target=0.0)
    with pytest.raises(Exception, match="spare slack share"):
        EngineConfig(pdmux_spare_slack_share=1.0)


def test_a_pause_counts_the_waiting_requests_it_delays_not_only_the_prefill_in_flight():
    p = planner(slo_tpot_ms=1.0, slo_ttft_ms=2000.0)
    now = time.perf_counter()
    layers = p.predictor.arch.num_layers
    short_ms = p.predictor.layer_ms(p.mixed[-1], PrefillShape.single(256)) * layers

    def slack(waited_s: list[float], length: int = 256) -> float:
        s = Scheduler(BlockManager(2048, 16), max_num_seqs=8, max_num_batched_tokens=4096, max_model_len=32768)
        for w in waited_s:
            s.add(Sequence(list(range(length)), GREEDY, arrival_time=now - w))
        return p.queue_slack_ms(s, P4096, 4, now, now)

    in_flight = p.prefill_slack_ms(now, P4096, 4, now)
    assert slack([]) == pytest.approx(in_flight)
    ahead_ms = p.predictor.layer_ms(p.mixed[-1], P4096) * 4
    # a request that has waited 1.9 s keeps 2000 - 1900 - (the rest in flight + its own prefill)
    assert slack([1.9]) == pytest.approx(100 - ahead_ms - short_ms, abs=1.0)
    assert slack([1.9]) < in_flight
    # the second in the queue also waits for the first one's prefill
    assert slack([0.0, 1.9]) == pytest.approx(100 - ahead_ms - 2 * short_ms, abs=1.0)
    # one past hope (waited 2.5 s) does not hold prefill running; the others still count
    assert slack([2.5]) == pytest.approx(in_flight)
    assert slack([2.5, 1.9]) == pytest.approx(100 - ahead_ms - 2 * short_ms, abs=1.0)
    # the planner pauses for the in-flight batch's slack alone, but not for a waiting request left
    # with half a decode step of slack
    alone_ms = p.predictor.decode_ms(p.decode_alone, 8, 8 * 1024)
    tight_s = (2000 - ahead_ms - short_ms - alone_ms / 2) / 1e3
    assert 0 < slack([tight_s]) < alone_ms
    assert p.decide(8, 8 * 1024, P4096, 4, prefill_slack=lambda: slack([])).partition is p.decode_alone
    assert p.decide(8, 8 * 1024, P4096, 4, prefill_slack=lambda: slack([tight_s])).partition is p.mixed[-1]


def test_paused_prefill_keeps_the_tokens(reference_tokens, tmp_path):
    # a TTFT SLO far away: prefill pauses while decodes run and resumes once they are done
    trace = tmp_path / "t.jsonl"
    llm = tiny(mode="pdmux", slo_tpot_ms=1e-6, slo_ttft_ms=60_000.0, pdmux_prefill_tokens=20, trace_path=str(trace))
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY)] == reference_tokens
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    paused = [r for r in rows if r["prefill_tokens"] and r["decode_batch"] and r["gang"] == 0]
    assert paused and all(r["split"] == "0/132" for r in paused)
    assert all("t" in r for r in rows)


def test_a_prefill_batch_is_priced_by_its_sequences_and_their_cached_prefixes():
    p = planner()
    part = p.mixed[0]
    eight_short = sum((PrefillShape.single(512) for _ in range(8)), PrefillShape())
    assert eight_short.tokens == 4096 and p.predictor.layer_ms(part, eight_short) < p.predictor.layer_ms(part, P4096)
    assert p.predictor.layer_ms(part, PrefillShape.single(512, reused=8192)) > p.predictor.layer_ms(
        part, PrefillShape.single(512))  # attention over the cached prefix
    # the engine's job carries its chunks' shape: new tokens and what they attend to in the cache
    llm = tiny(mode="pdmux", pdmux_prefill_tokens=64)
    shared = [7] * 40
    llm.generate([shared + [1]], GREEDY)
    engine = llm.engine
    engine.add_request(shared + [4, 5], GREEDY)
    engine.add_request(list(range(3, 13)), GREEDY)
    engine.step()
    assert engine.stepper.job.shape == PrefillShape.single(10, 32) + PrefillShape.single(10)


def test_tpot_admission_lets_in_only_what_the_decode_batch_can_take():
    p = planner(slo_tpot_ms=20.0)
    part = p.mixed[-1]
    decoding = [Sequence(list(range(4096)), GREEDY) for _ in range(8)]
    admits = p.tpot_admission(decoding)
    fits = [p.predictor.decode_ms(part, 8 + k, 8 * 4096 + k * 2048, worst=True) <= 20.0 for k in range(1, 400)]
    allowed = fits.index(False)  # requests of 2048 tokens the 72/60 split can still decode in 20 ms
    assert 0 < allowed < 300
    assert [admits(Sequence([1] * 2048, GREEDY)) for _ in range(allowed + 1)] == [True] * allowed + [False]
    # nothing decoding: the first request goes in whatever it costs, the next is checked
    alone = planner(slo_tpot_ms=0.01).tpot_admission([])
    assert alone(Sequence([1] * 100_000, GREEDY)) and not alone(Sequence([1] * 10, GREEDY))


def test_tpot_admission_keeps_the_tokens_and_holds_prefill_while_decode_is_full(reference_tokens, tmp_path):
    trace = tmp_path / "trace.jsonl"
    llm = tiny(mode="pdmux", pdmux_admission="tpot", slo_tpot_ms=1e-6, pdmux_prefill_tokens=4096,
               trace_path=str(trace))
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY)] == reference_tokens
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    # no TPOT can be met: a request enters prefill only when nothing decodes, so none ever decodes beside another
    assert max(r["decode_batch"] for r in rows) == 1


def test_a_short_request_jumps_ahead_only_when_it_would_miss_behind_and_the_overtaken_can_wait():
    p = planner(slo_ttft_ms=2000.0)
    now = time.perf_counter()
    long_shape, layers = PrefillShape.single(16384), 30  # ~0.7 s of layers left on the 72/60 split

    def jumps(head_len: int, head_waited_s: float, overtaken_waited_s: float) -> bool:
        s = Scheduler(BlockManager(2048, 16), max_num_seqs=8, max_num_batched_tokens=4096, max_model_len=32768)
        s.add(Sequence(list(range(head_len)), GREEDY, arrival_time=now - head_waited_s))
        return p.jumps_ahead(s, p.jump_candidate(s), long_shape, layers, now - overtaken_waited_s, now)

    behind_ms = p.predictor.layer_ms(p.mixed[-1], long_shape) * layers
    assert 500 < behind_ms < 1500
    assert jumps(256, head_waited_s=1.5, overtaken_waited_s=0.0)  # 0.5 s left: it misses behind, meets going first
    assert not jumps(256, head_waited_s=0.0, overtaken_waited_s=0.0)  # meets its TTFT behind anyway
    assert not jumps(256, head_waited_s=1.99, overtaken_waited_s=0.0)  # misses even going first
    assert not jumps(256, head_waited_s=1.5, overtaken_waited_s=2.0 - behind_ms / 1e3 - 0.001)  # no slack to give
    assert not jumps(16000, head_waited_s=1.5, overtaken_waited_s=0.0)  # not shorter than what remains


def test_the_shortest_waiting_prefill_jumps_when_it_is_a_quarter_of_what_remains_and_the_overtaken_can_wait():
    p = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="shorter")
    now = time.perf_counter()
    long_shape, layers = PrefillShape.single(16384), 30
    behind_ms = p.predictor.layer_ms(p.mixed[-1], long_shape) * layers

    def jumper(lengths: list[int], overtaken_waited_s: float = 0.0):
        s = Scheduler(BlockManager(4096, 16), max_num_seqs=8, max_num_batched_tokens=4096, max_model_len=32768)
        for n in lengths:
            s.add(Sequence(list(range(n)), GREEDY, arrival_time=now))
        seq = p.jump_candidate(s)
        return len(seq) if p.jumps_ahead(s, seq, long_shape, layers, now - overtaken_waited_s, now) else None

    assert jumper([8000, 256, 2000]) == 256  # the shortest goes, though it would meet its TTFT behind
    assert jumper([12000]) is None  # more than a quarter of what remains
    assert jumper([256], overtaken_waited_s=2.0 - behind_ms / 1e3 - 0.001) is None  # no slack to give
    assert tiny(pdmux_prefill_jump=True).engine.config.pdmux_prefill_jump == "late"  # configs from when it was a switch
    # "spare": the same jump while the queue keeps half its TTFT slack, none once it is used up
    p = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="spare")
    assert jumper([2000, 256]) == 256
    assert jumper([8000, 256, 2000]) is None  # behind the 8000 tokens the queue keeps under 1 s of its 2
    overtaken_slack_s = 2.0 - behind_ms / 1e3  # the batch in flight's slack when it has just arrived
    assert jumper([256], overtaken_waited_s=overtaken_slack_s - 1.1) == 256  # 1.1 s left of 2: jumps
    assert jumper([256], overtaken_waited_s=overtaken_slack_s - 0.9) is None  # 0.9 s left: no jump
    p = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="shorter")
    assert jumper([256], overtaken_waited_s=overtaken_slack_s - 0.9) == 256  # "shorter" spends it


def test_a_lost_waiting_request_closes_the_spare_target_and_the_spare_jump():
    now = time.perf_counter()
    long_shape, layers = PrefillShape.single(16384), 30

    def queue(lost_waited_s: float) -> Scheduler:
        s = Scheduler(BlockManager(4096, 16), max_num_seqs=8, max_num_batched_tokens=4096, max_model_len=32768)
        s.add(Sequence(list(range(256)), GREEDY, arrival_time=now))
        s.add(Sequence(list(range(2000)), GREEDY, arrival_time=now - lost_waited_s))
        return s

    p = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="spare")
    two_k_ms = p.predictor.layer_ms(p.mixed[0], PrefillShape.single(2000)) * p.predictor.arch.num_layers
    lost_s = 2.0 - two_k_ms / 1e3 + 0.01  # its TTFT passes before even its own prefill could end
    assert not p.lost_waiting(queue(lost_s - 0.02), now) and p.lost_waiting(queue(lost_s), now)
    # the queue's slack leaves the lost request out: only the new rule keeps the jump back
    s = queue(lost_s)
    assert p.queue_slack_ms(s, long_shape, layers, now, now) > 1000.0
    assert not p.jumps_ahead(s, p.jump_candidate(s), long_shape, layers, now, now)
    before = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="spare", pdmux_spare_none_lost=False)
    assert before.jumps_ahead(s, before.jump_candidate(s), long_shape, layers, now, now)
    assert p.jumps_ahead(queue(0.0), p.jump_candidate(queue(0.0)), long_shape, layers, now, now)
    # the spare decode target likewise
    target = dict(slo_tpot_ms=20.0, slo_ttft_ms=2000.0, pdmux_spare_decode_target=0.4)
    roomy = lambda: 1500.0  # noqa: E731
    assert planner(**target).decide(8, 8 * 1024, P4096, 32, roomy, queue_lost=lambda: True).decode_budget_ms == \
        pytest.approx(20.0)
    assert planner(**target).decide(8, 8 * 1024, P4096, 32, roomy, queue_lost=lambda: False).decode_budget_ms == \
        pytest.approx(8.0)
    assert planner(**target, pdmux_spare_none_lost=False).decide(
        8, 8 * 1024, P4096, 32, roomy, queue_lost=lambda: True).decode_budget_ms == pytest.approx(8.0)


def test_a_safe_jump_waits_while_a_request_that_can_still_meet_its_ttft_would_miss_behind_it():
    now = time.perf_counter()
    long_shape, layers = PrefillShape.single(16384), 30

    def jumper(jump: str, long_waited_s: float):
        p = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump=jump)
        s = Scheduler(BlockManager(4096, 16), max_num_seqs=8, max_num_batched_tokens=4096, max_model_len=32768)
        s.add(Sequence(list(range(2000)), GREEDY, arrival_time=now - long_waited_s))
        s.add(Sequence(list(range(256)), GREEDY, arrival_time=now))
        seq = p.jump_candidate(s)
        return len(seq) if p.jumps_ahead(s, seq, long_shape, layers, now, now) else None

    p = planner(slo_ttft_ms=2000.0)
    part = p.mixed[-1]
    ahead_ms = p.predictor.layer_ms(part, long_shape) * layers + p.predictor.layer_ms(
        part, PrefillShape.single(2000)) * p.predictor.arch.num_layers  # the 2000-token prompt's first token
    short_ms = p.predictor.layer_ms(part, PrefillShape.single(256)) * p.predictor.arch.num_layers
    just_meets_s = (2000.0 - ahead_ms - short_ms / 2) / 1e3  # it meets its TTFT, with less slack than the jump takes
    assert jumper("shorter", just_meets_s) == 256
    assert jumper("safe", just_meets_s) is None
    assert jumper("safe", just_meets_s - 0.1) == 256  # 0.1 s more slack: the jump costs it nothing
    assert jumper("safe", just_meets_s + 0.1) == 256  # already past hope: the jump changes nothing for it
    # a safe jump's batch grows only while that request keeps its TTFT behind it
    safe = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="safe")
    batch_ms = [p.predictor.layer_ms(part, sum((PrefillShape.single(n) for n in lengths), PrefillShape())) * 32
                for lengths in ([150, 200], [150, 200, 300])]
    s = Scheduler(BlockManager(4096, 16), max_num_seqs=8, max_num_batched_tokens=4096, max_model_len=32768)
    long_waited_s = (2000.0 - ahead_ms - sum(batch_ms) / 2) / 1e3  # its slack lies between the two batches
    for n, waited in ((2000, long_waited_s), (150, 0.0), (200, 0.0), (300, 0.0)):
        s.add(Sequence(list(range(n)), GREEDY, arrival_time=now - waited))
    first = safe.jump_candidate(s)
    assert [len(q) for q in safe.jump_batch(s, first, long_shape, layers, now, now)[0]] == [150, 200]
    shorter = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="shorter")
    assert [len(q) for q in shorter.jump_batch(s, first, long_shape, layers, now, now)[0]] == [150, 200, 300, 2000]


def test_a_shorter_jump_takes_the_next_shortest_waiting_requests_while_they_fit_its_share_and_deadlines():
    p = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="shorter")
    now = time.perf_counter()
    long_shape, layers = PrefillShape.single(16384), 30

    def batch(lengths: list[int], waited_s: list[float] | None = None, planner_=p) -> list[int]:
        s = Scheduler(BlockManager(4096, 16), max_num_seqs=16, max_num_batched_tokens=4096, max_model_len=32768)
        for n, waited in zip(lengths, waited_s or [0.0] * len(lengths)):
            s.add(Sequence(list(range(n)), GREEDY, arrival_time=now - waited))
        first = planner_.jump_candidate(s)
        seqs, tokens = planner_.jump_batch(s, first, long_shape, layers, now, now)
        assert tokens == sum(len(q) for q in seqs)
        return [len(q) for q in seqs]

    assert batch([8000, 300, 150, 2000, 200]) == [150, 200, 300, 2000]  # shortest first; 8000 is over the share
    assert batch([150, 3000, 2000]) == [150, 2000]  # with the 3000 too it would take over a quarter of what remains
    assert batch([150, 5000]) == [150]
    # a member that would miss its TTFT at the batch's end waits its turn; the others still go
    assert batch([150, 200, 300], waited_s=[0.0, 1.999, 0.0]) == [150, 300]
    one_at_a_time = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="shorter", pdmux_jump_batch=False)
    assert batch([300, 150, 200], planner_=one_at_a_time) == [150]
    late = planner(slo_ttft_ms=2000.0, pdmux_prefill_jump="late")
    assert len(batch([300, 150, 200], planner_=late)) == 1  # "late" moves the one that would miss


def test_a_prefill_that_jumps_ahead_runs_first_and_the_overtaken_one_resumes(reference_tokens, monkeypatch):
    llm = tiny(mode="pdmux", pdmux_prefill_jump="late", **STATIC)  # gang 1: two steps per prefill (2 layers)
    engine, stepper = llm.engine, llm.engine.stepper
    monkeypatch.setattr(stepper.planner, "jumps_ahead", lambda *args: True)
    first = engine.add_request(PROMPTS[1], SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens == 0:  # something decodes, so prefills run a layer per step beside it
        engine.step()
    long = engine.add_request(PROMPTS[-1], GREEDY)
    engine.step()  # layer 0 of the long prompt
    short = engine.add_request(PROMPTS[0], GREEDY)
    engine.step()  # the short prompt goes first: its layer 0; the long one waits at layer 1
    assert [j.plan.chunks[0].seq for j in stepper.jobs] == [short, long] and stepper.jobs[1].next_layer == 1
    engine.step()
    assert stepper.jobs[1].next_layer == 1  # still waiting while the short prompt's last layer runs
    while long.num_output_tokens == 0:
        engine.step()
    assert short.num_output_tokens >= 1 and short.token_times[0] < long.token_times[0]
    while engine.has_unfinished():
        engine.step()
    ref = {tuple(p): t for p, t in zip(PROMPTS, reference_tokens)}
    assert long.output_token_ids == ref[tuple(PROMPTS[-1])] and short.output_token_ids == ref[tuple(PROMPTS[0])]


def _short_prompt_during_a_long_prefill(monkeypatch, also=(), **config):
    """The adaptive planner, but a prompt over 8 tokens launches one layer a step (tiny has two)
    and a step outlasts a short prefill: a long prompt runs its layer 0 beside a decode, a short
    one (and the prompts `also`) arrives, and the next step is taken. Returns the engine, its
    stepper, long and short."""
    llm = tiny(mode="pdmux", overlap_scheduling=False, **config)
    engine, stepper = llm.engine, llm.engine.stepper
    planner = stepper.planner
    decide = planner.decide

    def long_prompt_one_layer_a_step(*args, **kw):
        decision = decide(*args, **kw)
        if args[2].tokens > 8 and decision.gang:
            decision.gang, decision.predicted_prefill_ms = 1, decision.predicted_prefill_ms / decision.gang
        return decision

    monkeypatch.setattr(planner, "decide", long_prompt_one_layer_a_step)
    monkeypatch.setattr(planner.predictor, "step_wall_ms", 1e3)
    monkeypatch.setattr(planner, "jumps_ahead", lambda *args: True)  # when a jump is on, the short one jumps
    first = engine.add_request(PROMPTS[1], SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens == 0:
        engine.step()
    long = engine.add_request(PROMPTS[-1], GREEDY)
    engine.step()
    assert stepper.job.next_layer == 1
    short = engine.add_request(PROMPTS[0], GREEDY)
    for prompt in also:
        engine.add_request(prompt, GREEDY)
    engine.step()
    return engine, stepper, long, short


def _run_out_with_the_sequential_tokens(engine, reference_tokens, *seqs) -> None:
    while engine.has_unfinished():
        engine.step()
    ref = {tuple(p): t for p, t in zip(PROMPTS, reference_tokens)}
    assert [s.output_token_ids for s in seqs] == [ref[tuple(s.prompt_token_ids)] for s in seqs]


def test_the_overtaken_prefill_runs_its_next_layers_in_the_step_the_jump_ends(reference_tokens, monkeypatch):
    engine, stepper, long, short = _short_prompt_during_a_long_prefill(monkeypatch, pdmux_prefill_jump="shorter")
    # that step: the short prompt's two layers, then the long one's last layer
    assert [j.plan.chunks[0].seq for j in stepper.jobs] == [short, long]
    assert [j.remaining_layers for j in stepper.jobs] == [0, 0]
    assert [b[2] for b in stepper.pending_blocks][-2:] == [2, 1]
    _run_out_with_the_sequential_tokens(engine, reference_tokens, long, short)


def test_short_prompts_that_arrive_together_jump_in_one_batch(reference_tokens, monkeypatch, tmp_path):
    monkeypatch.setattr(pdmux_planner, "SHORTER_JUMP_SHARE", 1e6)  # tiny's prefills are all launch-bound
    trace = tmp_path / "trace.jsonl"
    engine, stepper, long, short = _short_prompt_during_a_long_prefill(
        monkeypatch, also=(PROMPTS[2], PROMPTS[1]), pdmux_prefill_jump="shorter", trace_path=str(trace))
    jump = [c.seq for c in stepper.jobs[0].plan.chunks]
    assert [len(q) for q in jump] == [1, 7, 16] and jump[0] is short and stepper.jobs[1].plan.chunks[0].seq is long
    _run_out_with_the_sequential_tokens(engine, reference_tokens, long, *jump)
    assert [r["jumped"] for r in map(json.loads, trace.read_text().splitlines()) if r["jumped"]] == [3]
    engine, stepper, long, short = _short_prompt_during_a_long_prefill(
        monkeypatch, also=(PROMPTS[2], PROMPTS[1]), pdmux_prefill_jump="shorter", pdmux_jump_batch=False)
    assert [c.seq for c in stepper.jobs[0].plan.chunks] == [short] and len(engine.scheduler.waiting) == 2
    _run_out_with_the_sequential_tokens(engine, reference_tokens, long, short)


def test_the_next_prefill_batch_starts_behind_the_last_layers_of_the_one_before(reference_tokens, monkeypatch):
    engine, stepper, long, short = _short_prompt_during_a_long_prefill(monkeypatch)
    # that step: the long prompt's last layer, then the short one's two behind it
    assert [j.plan.chunks[0].seq for j in stepper.jobs] == [long, short]
    assert [j.remaining_layers for j in stepper.jobs] == [0, 0]
    assert [b[2] for b in stepper.pending_blocks][-2:] == [1, 2]
    engine.step()
    assert long.num_output_tokens == 1 and short.num_output_tokens == 0 and len(stepper.jobs) == 1
    _run_out_with_the_sequential_tokens(engine, reference_tokens, long, short)


def test_without_prefill_behind_the_next_batch_waits_for_the_step_after_the_last_layers(reference_tokens, monkeypatch):
    engine, stepper, long, short = _short_prompt_during_a_long_prefill(monkeypatch, pdmux_prefill_behind=False)
    assert [j.plan.chunks[0].seq for j in stepper.jobs] == [long] and stepper.jobs[0].remaining_layers == 0
    _run_out_with_the_sequential_tokens(engine, reference_tokens, long, short)
    engine, stepper, long, short = _short_prompt_during_a_long_prefill(
        monkeypatch, pdmux_prefill_jump="shorter", pdmux_prefill_behind=False)
    assert [j.remaining_layers for j in stepper.jobs] == [0, 1]  # the overtaken waits for the next step
    _run_out_with_the_sequential_tokens(engine, reference_tokens, long, short)


def test_no_new_batch_goes_behind_when_the_policy_sizes_its_own_gang():
    engine = tiny(mode="pdmux", overlap_scheduling=False, **STATIC).engine  # gang 1 of tiny's 2 layers
    first = engine.add_request(PROMPTS[1], SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens == 0:
        engine.step()
    long = engine.add_request(PROMPTS[-1], GREEDY)
    engine.step()
    engine.add_request(PROMPTS[0], GREEDY)
    engine.step()  # the long prompt's last layer: the short one stays queued
    assert [j.plan.chunks[0].seq for j in engine.stepper.jobs] == [long] and len(engine.scheduler.waiting) == 1


def test_no_new_batch_goes_behind_a_prompt_cut_at_the_prefill_budget(monkeypatch):
    llm = tiny(mode="pdmux", overlap_scheduling=False, pdmux_prefill_tokens=12, dispatch="fcfs")
    engine, stepper = llm.engine, llm.engine.stepper
    monkeypatch.setattr(stepper.planner.predictor, "step_wall_ms", 1e3)
    first = engine.add_request(PROMPTS[1], SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))
    while first.num_output_tokens == 0:
        engine.step()
    cut = engine.add_request(PROMPTS[-1], GREEDY)  # 33 tokens: batches of 12, 12 and 9
    engine.add_request(PROMPTS[0], GREEDY)
    engine.step()
    assert [j.plan.chunks[0].seq for j in stepper.jobs] == [cut]  # its rest goes next, not the short prompt


def test_layers_behind_fill_the_step_the_jump_leaves_on_the_adaptive_policy_only():
    p = planner(slo_ttft_ms=2000.0)
    part = p.mixed[-1]
    behind = PrefillShape.single(4096)
    layer_ms = p.predictor.layer_ms(part, behind)
    decision = StepDecision(part, 2, 10 * layer_ms, 2.5 * layer_ms)
    assert p.time_left_behind_ms(decision) == pytest.approx(7.5 * layer_ms)
    assert p.layers_behind(decision, behind, 30) == 8 == decision.gang_behind  # ceil(7.5) layers fill the step
    assert p.layers_behind(StepDecision(part, 2, 10 * layer_ms, 2.5 * layer_ms), behind, 5) == 5  # all that is left
    assert p.layers_behind(StepDecision(part, 2, layer_ms, 2 * layer_ms), behind, 30) == 0  # the jump fills it
    assert p.layers_behind(StepDecision(p.prefill_alone, 2, None, 2 * layer_ms), behind, 30) == 0  # decode waits
    static = planner(slo_ttft_ms=2000.0, **STATIC)
    assert static.layers_behind(StepDecision(part, 2, 10 * layer_ms, 2.5 * layer_ms), behind, 30) == 0


def test_reset_counters_drops_the_planners_online_corrections():
    llm = tiny(mode="pdmux")
    llm.generate([list(range(1, 40)), list(range(5, 30))], SamplingParams(max_tokens=6, temperature=0, ignore_eos=True))
    pred = llm.engine.stepper.planner.predictor
    assert pred.ratios and pred.step_wall_ms is not None
    llm.engine.reset_counters()
    assert not pred.ratios and pred.step_wall_ms is None and pred.host_ms == 0.0


def test_the_prefill_pool_pass_runs_on_every_prefill_partition_and_writes_no_kv(monkeypatch):
    from pdtune.executor.pdmux import PdmuxExecutor

    llm = tiny(mode="pdmux")
    executor = llm.engine.stepper.executor
    kv_before = executor.runner.kv_cache.clone()
    calls = []
    real = executor.model.forward_layers
    monkeypatch.setattr(executor.model, "forward_layers",
                        lambda hidden, residual, positions, meta, start, end: calls.append((hidden.shape[0], start, end))
                        or real(hidden, residual, positions, meta, start, end))
    PdmuxExecutor.prepare_prefill_pools(executor, 96)
    prefill_partitions = [p for p in executor.partitions if p.prefill_sms]
    assert len(prefill_partitions) == len(DEFAULT_SPLITS) + 1  # each mixed split and prefill alone
    assert calls == [(96, 0, 2)] * len(prefill_partitions)
    assert torch.equal(executor.runner.kv_cache, kv_before)


def test_a_prompt_over_the_prefill_budget_is_cut_into_batches_of_the_budget(reference_tokens):
    llm = tiny(mode="pdmux", pdmux_prefill_tokens=12, **STATIC)
    executor = llm.engine.stepper.executor
    batches = []
    original = executor.start_prefill

    def spy(plan):
        batches.append([(c.seq.request_id, c.seq.num_computed_tokens, c.num_new_tokens) for c in plan.chunks])
        return original(plan)

    executor.start_prefill = spy
    outs = llm.generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in outs] == reference_tokens
    assert all(sum(n for _, _, n in batch) <= 12 for batch in batches)
    def cuts(i: int) -> list[tuple[int, int]]:
        return [(start, n) for batch in batches for rid, start, n in batch if rid == outs[i].request_id]

    assert cuts(5) == [(0, 12), (12, 12), (24, 9)]  # 33 tokens, no prefix shared
    forty = cuts(4)  # its first 16 tokens may be cached by the 17-token prompt, whichever went first
    assert forty[0][0] in (0, 16) and all(a + n == b for (a, n), (b, _) in zip(forty, forty[1:]))
    assert forty[-1][0] + forty[-1][1] == 40


def test_a_cut_that_leaves_one_prompt_token_hands_it_to_a_decode_step():
    prompts = [list(range(3, 16)), [7] * 13]  # 13 tokens against a budget of 12
    reference = [o.token_ids for o in tiny(mode="sequential").generate(prompts, GREEDY)]
    outs = tiny(mode="pdmux", pdmux_prefill_tokens=12, pdmux_prefill_jump="late").generate(prompts, GREEDY)
    assert [o.token_ids for o in outs] == reference
