"""Goodput probes stop early once their attainment target is out of reach: the harness on a
serial fake engine with a fake clock, Engine.abort_waiting on the tiny model, the CLI sweep."""

import json
from collections import deque
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from pdtune.bench.serve import NOT_SERVED, serve_open_loop
from pdtune.bench.summary import attainment, summarize_run
from pdtune.cli.app import app
from pdtune.config import EngineConfig
from pdtune.engine import Engine, make_engine
from pdtune.request.output import RequestOutput
from pdtune.request.sampling import SamplingParams
from pdtune.request.sequence import Sequence, Status
from pdtune.slo import SLO
from pdtune.workloads.request import WorkloadRequest

STEP_S = 0.01
TOKENS = 4
SLO_ = SLO(ttft_s=0.055, tpot_s=0.02)  # a request served alone meets it (TTFT 0.01 s, TPOT 0.01 s)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


class SerialEngine:
    """Serves one request at a time, one token per step of STEP_S fake seconds. With `deferred_abort`
    it hands aborted requests back through the next step, as the data-parallel engine does."""

    def __init__(self, clock: FakeClock, deferred_abort: bool = False):
        self.clock, self.deferred_abort = clock, deferred_abort
        self.config = SimpleNamespace(mode="fake")
        self.prefix_cache_hit_rate = 0.0
        self.num_steps = 0
        self.waiting: deque[Sequence] = deque()
        self.running: Sequence | None = None
        self.aborted: list[RequestOutput] = []
        self.running_at_abort: str | None = None

    def add_request(self, prompt, params, request_id, arrival_time):
        self.waiting.append(Sequence(list(prompt), params, arrival_time, request_id))

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running or self.aborted)

    def step(self) -> list[RequestOutput]:
        finished, self.aborted = self.aborted, []
        if self.running is None and self.waiting:
            self.running = self.waiting.popleft()
        self.num_steps += 1
        self.clock.t += STEP_S
        seq = self.running
        if seq is not None:
            seq.token_ids.append(7)
            seq.token_times.append(self.clock.t)
            if seq.num_output_tokens == seq.params.max_tokens:
                seq.status, seq.finish_reason, self.running = Status.FINISHED, "length", None
                finished.append(RequestOutput.from_sequence(seq))
        return finished

    def abort_waiting(self) -> list[RequestOutput]:
        self.running_at_abort = self.running.request_id if self.running else None
        for seq in self.waiting:
            seq.status, seq.finish_reason = Status.FINISHED, "abort"
        outs = [RequestOutput.from_sequence(seq) for seq in self.waiting]
        self.waiting.clear()
        if self.deferred_abort:
            self.aborted = outs
            return []
        return outs


def requests(arrivals: list[float]) -> list[WorkloadRequest]:
    return [WorkloadRequest(f"r{i}", t, [1, 2, 3], TOKENS) for i, t in enumerate(arrivals)]


def serve(reqs, stop=True, deferred_abort=False):
    clock = FakeClock()
    engine = SerialEngine(clock, deferred_abort)
    run = serve_open_loop(engine, reqs, rate=1.0, clock=clock, sleep=clock.sleep,
                          stop_below=(SLO_, 0.9) if stop else None)
    return run, engine


@pytest.mark.parametrize("deferred_abort", [False, True])
def test_an_overloaded_probe_stops_early_and_records_every_request(deferred_abort):
    # 100 req/s against a capacity of 25 req/s: the queue and every TTFT grow without bound
    reqs = requests([0.01 * i for i in range(40)])
    full, _ = serve(reqs, stop=False)
    assert full.steps == 40 * TOKENS and not full.extra["stopped_early"]
    run, engine = serve(reqs, deferred_abort=deferred_abort)
    assert run.extra["stopped_early"] and summarize_run(run, SLO_)["stopped_early"]
    assert run.steps < full.steps / 4
    assert sorted(r.request_id for r in run.records) == sorted(r.request_id for r in reqs)
    not_served = [r for r in run.records if r.error == NOT_SERVED]
    served = [r for r in run.records if r.error is None]
    assert len(not_served) + len(served) == 40 and len(not_served) > 30
    # the request running when the probe stopped was served to the end
    assert engine.running_at_abort in {r.request_id for r in served}
    assert all(r.output_tokens == TOKENS for r in served)
    # some requests arrived after the stop and were never sent: recorded at their arrival times
    assert max(r.arrival_s for r in not_served) == pytest.approx(0.39)
    assert attainment(run, SLO_) < 0.9 and attainment(full, SLO_) < 0.9


@pytest.mark.parametrize("burst,stopped", [(6, False), (7, True)])
def test_a_probe_stops_only_once_more_misses_than_the_target_allows_are_certain(burst, stopped):
    # served one by one, the j-th of a burst has TTFT 0.04 j + 0.01: all from the third on miss,
    # so a burst of 6 has 4 misses (the 10% of 40 allowed) and one of 7 has 5
    reqs = requests([0.0] * burst + [0.5 + 0.1 * i for i in range(40 - burst)])
    run, _ = serve(reqs)
    assert run.extra["stopped_early"] is stopped
    if stopped:
        assert attainment(run, SLO_) < 0.9
    else:
        assert run.steps == 40 * TOKENS and attainment(run, SLO_) == pytest.approx(36 / 40)


def test_queued_requests_count_as_misses_once_too_old_to_meet_the_slo():
    # nothing finishes for 10 s behind a long request, yet the short ones queued behind it are
    # certain misses 0.115 s (TTFT + 3 TPOT) after they arrive: the probe stops before serving any
    reqs = [WorkloadRequest("long", 0.0, [1, 2, 3], 1000)] + requests([0.01 * i for i in range(1, 40)])
    run, engine = serve(reqs)
    assert run.extra["stopped_early"] and engine.running_at_abort == "long"
    assert run.steps == 1000  # the long request only
    by_error = {r.request_id: r.error for r in run.records}
    assert by_error.pop("long") is None and set(by_error.values()) == {NOT_SERVED} and len(by_error) == 39


def test_a_probe_that_meets_the_target_is_served_to_the_end():
    run, _ = serve(requests([0.1 * i for i in range(40)]))
    assert not run.extra["stopped_early"] and run.steps == 40 * TOKENS
    assert attainment(run, SLO_) == 1.0 and all(r.error is None for r in run.records)


def test_abort_waiting_drops_queued_requests_and_leaves_running_ones():
    engine = Engine(EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=64, max_num_seqs=2))
    params = SamplingParams(max_tokens=5, temperature=0.0, ignore_eos=True)
    for i in range(4):
        engine.add_request(list(range(5, 25)), params, request_id=f"q{i}")
    engine.step()  # admits two; the seat limit keeps the other two waiting
    aborted = engine.abort_waiting()
    assert sorted(o.request_id for o in aborted) == ["q2", "q3"]
    assert all(o.finish_reason == "abort" and o.token_ids == [] and o.metrics.ttft is None for o in aborted)
    assert not engine.scheduler.waiting and len(engine.scheduler.running) == 2
    done = []
    while engine.has_unfinished():
        done += engine.step()
    assert sorted(o.request_id for o in done) == ["q0", "q1"]
    assert all(o.finish_reason == "length" and len(o.token_ids) == 5 for o in done)
    assert engine.block_manager.num_free_blocks == 64


def test_data_parallel_abort_comes_back_through_step():
    engine = make_engine(EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=32, max_num_seqs=1,
                                      data_parallel_size=2))
    try:
        params = SamplingParams(max_tokens=64, temperature=0.0, ignore_eos=True)  # long runs: none ends before the abort
        for i in range(6):
            engine.add_request(list(range(5, 25)), params, request_id=f"q{i}")
        assert engine.abort_waiting() == []
        outs = []
        while engine.has_unfinished():
            outs += engine.step()
    finally:
        engine.close()
    assert sorted(o.request_id for o in outs) == [f"q{i}" for i in range(6)]
    reasons = [o.finish_reason for o in outs]
    # one seat per replica: at most two run, the rest were queued when the abort came
    assert reasons.count("abort") >= 4 and set(reasons) <= {"abort", "length"}
    assert engine.in_flight == 0


def test_goodput_sweep_with_an_unreachable_slo_stops_every_probe(tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(app, [
        "bench", "--workload", "random", "--num-requests", "20", "--rate", "50", "--mode", "chunked",
        "--slo", "ttft=0.001ms,tpot=0.001ms", "--goodput", "--max-prompt-len", "32", "--max-output-len", "4",
        "--out", str(out), "--model", "tiny", "--load-format", "dummy", "--num-kv-blocks", "64"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    gp = report["goodput"]["chunked"]
    assert gp["goodput"] == 0.0 and gp["points"] and all(p[2] for p in gp["points"])
    assert all(s["stopped_early"] and s["requests"] == 20 for s in report["summaries"])
    assert all(any(r["error"] == NOT_SERVED for r in run["records"]) for run in report["runs"])
    assert "stopped early" in result.output and (out / "attainment-vs-rate.png").exists()
