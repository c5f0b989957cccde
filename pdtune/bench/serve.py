"""Serves a workload in-process: open loop (arrivals follow the clock) or closed loop (N users)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from pdtune.engine import Engine
from pdtune.errors import InvalidRequestError
from pdtune.request.output import RequestOutput
from pdtune.request.sampling import SamplingParams
from pdtune.slo import SLO
from pdtune.workloads.request import WorkloadRequest


@dataclass
class RequestRecord:
    """One request's latencies; times are seconds from the start of the run."""

    request_id: str
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    itl_s: list[float]  # with arrival_s and ttft_s, every token's time: results keep no list of those
    error: str | None = None

    @classmethod
    def from_output(cls, out: RequestOutput, start: float) -> "RequestRecord":
        m = out.metrics
        return cls(out.request_id, m.arrival_time - start, len(out.prompt_token_ids), len(out.token_ids),
                   m.num_cached_tokens, m.ttft, out.tpot, m.e2e, out.inter_token_latencies)


@dataclass
class RunResult:
    mode: str
    rate: float | None  # requests/s of an open-loop run
    concurrency: int | None  # users of a closed-loop run
    records: list[RequestRecord]
    wall_s: float
    steps: int
    engine_s: float  # time inside engine.step()
    harness_s: float  # the loop's own bookkeeping (arrivals, records): its clock overhead
    prefix_cache_hit_rate: float
    extra: dict = field(default_factory=dict)

    @property
    def harness_overhead(self) -> float:
        """Harness time per step over engine time per step."""
        return self.harness_s / self.engine_s if self.engine_s else 0.0

    def to_dict(self) -> dict:
        """As saved: request times to the microsecond, below what a step's timing resolves (a
        float's 17 digits doubled the size of a saved result)."""
        return dict(asdict(self), records=[saved_record(r) for r in self.records])


def saved_record(record: RequestRecord) -> dict:
    """A record with its times rounded to the microsecond."""
    return dict(asdict(record), arrival_s=_to_us(record.arrival_s), ttft_s=_to_us(record.ttft_s),
                tpot_s=_to_us(record.tpot_s), e2e_s=_to_us(record.e2e_s), itl_s=[_to_us(x) for x in record.itl_s])


def _to_us(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


class Progress(Protocol):
    def update(self, done: int, total: int, records: list[RequestRecord]) -> None: ...


def _params(req: WorkloadRequest) -> SamplingParams:
    return SamplingParams(max_tokens=req.max_tokens, temperature=0.0, ignore_eos=True)


NOT_SERVED = "not served: probe stopped early, attainment already below target"


class _Loop:
    def __init__(self, engine: Engine, total: int, progress: Progress | None, clock: Callable[[], float]):
        self.engine, self.total, self.progress, self.clock = engine, total, progress, clock
        self.start = clock()
        self.records: list[RequestRecord] = []
        self.engine_s = self.harness_s = 0.0

    def add(self, req: WorkloadRequest, arrival: float) -> None:
        try:
            self.engine.add_request(req.prompt_token_ids, _params(req), request_id=req.request_id, arrival_time=arrival)
        except InvalidRequestError as exc:
            self.fail(req, arrival, str(exc))

    def fail(self, req: WorkloadRequest, arrival: float, error: str) -> None:
        self.records.append(RequestRecord(req.request_id, arrival - self.start, len(req.prompt_token_ids), 0, 0,
                                          None, None, None, [], error=error))

    def finished(self, outs: list[RequestOutput]) -> None:
        """Records finished requests; an aborted one was dropped by stop_early, so it was not served."""
        for out in outs:
            rec = RequestRecord.from_output(out, self.start)
            if out.finish_reason == "abort":
                rec.error = NOT_SERVED
            self.records.append(rec)

    def report_progress(self) -> None:
        if self.progress is not None:
            self.progress.update(len(self.records), self.total, self.records)

    def step(self) -> list[RequestOutput]:
        t0 = self.clock()
        outs = self.engine.step()
        t1 = self.clock()
        self.engine_s += t1 - t0
        self.finished(outs)
        if outs:
            self.report_progress()
        self.harness_s += self.clock() - t1
        return outs

    def stop_early(self, unsent: list[WorkloadRequest]) -> None:
        """Drops the queued requests and records them and those never sent as not served; the
        running ones are left to finish. (A data-parallel engine returns its dropped requests
        through later steps.)"""
        for req in unsent:
            self.fail(req, self.start + req.arrival_s, NOT_SERVED)
        self.finished(self.engine.abort_waiting())
        self.report_progress()

    def result(self, mode: str, rate: float | None, concurrency: int | None) -> RunResult:
        e = self.engine
        return RunResult(mode, rate, concurrency, self.records, self.clock() - self.start, e.num_steps, self.engine_s,
                         self.harness_s, e.prefix_cache_hit_rate)


class _CertainMisses:
    """Counts the requests that can no longer meet the SLO, to stop a probe whose attainment
    target is already out of reach. A request that meets both bounds finishes within
    TTFT + TPOT * (max_tokens - 1) of its arrival (bench requests ignore EOS), so one still
    unfinished after that has missed."""

    AGE_CHECK_S = 0.05  # unfinished requests are scanned at most this often, to keep the loop cheap

    def __init__(self, slo: SLO, target: float, total: int):
        self.slo, self.target, self.total = slo, target, total
        self.deadlines: dict[str, float] = {}  # unfinished requests not yet counted: clock time of a certain miss
        self.misses = 0
        self.seen = 0  # records already looked at
        self.next_age_check = float("-inf")

    def added(self, req: WorkloadRequest, arrival: float) -> None:
        self.deadlines[req.request_id] = arrival + self.slo.ttft_s + self.slo.tpot_s * (req.max_tokens - 1)

    def hopeless(self, records: list[RequestRecord], now: float) -> bool:
        """Whether more requests than the target allows have certainly missed by `now`."""
        for rec in records[self.seen:]:
            # a request already counted as late has left `deadlines`, so it is not counted twice
            if self.deadlines.pop(rec.request_id, None) is not None and (
                    rec.error is not None or not self.slo.met(rec.ttft_s, rec.tpot_s, rec.itl_s)):
                self.misses += 1
        self.seen = len(records)
        if now >= self.next_age_check:
            late = [rid for rid, deadline in self.deadlines.items() if deadline < now]
            for rid in late:
                del self.deadlines[rid]
            self.misses += len(late)
            self.next_age_check = now + self.AGE_CHECK_S
        return (self.total - self.misses) / self.total < self.target  # as attainment() compares, rounding alike


def serve_open_loop(engine: Engine, requests: list[WorkloadRequest], rate: float | None = None,
                    progress: Progress | None = None, clock: Callable[[], float] = time.perf_counter,
                    sleep: Callable[[float], None] = time.sleep,
                    stop_below: tuple[SLO, float] | None = None) -> RunResult:
    """Requests enter at their arrival times whatever the engine is doing; each request's
    TTFT counts from its scheduled arrival, so queueing in the harness is not hidden.
    With `stop_below=(slo, target)`, the run stops taking requests once its attainment can no
    longer reach `target` (a failing goodput probe need not be served to the end): queued and
    unsent requests are recorded as not served, running ones finish."""
    loop = _Loop(engine, len(requests), progress, clock)
    misses = _CertainMisses(*stop_below, len(requests)) if stop_below else None
    stopped = False
    i = 0
    while i < len(requests) or engine.has_unfinished():
        t0 = clock()
        now = t0 - loop.start
        while i < len(requests) and requests[i].arrival_s <= now:
            arrival = loop.start + requests[i].arrival_s
            if misses is not None:
                misses.added(requests[i], arrival)
            loop.add(requests[i], arrival)
            i += 1
        if misses is not None and misses.hopeless(loop.records, t0):
            loop.stop_early(requests[i:])
            misses, stopped, i = None, True, len(requests)
        loop.harness_s += clock() - t0
        if engine.has_unfinished():
            loop.step()
        elif i < len(requests):
            sleep(max(0.0, requests[i].arrival_s - (clock() - loop.start)))
    result = loop.result(engine.config.mode, rate, None)
    result.extra["stopped_early"] = stopped
    return result


def serve_closed_loop(engine: Engine, requests: list[WorkloadRequest], users: int,
                      progress: Progress | None = None, clock: Callable[[], float] = time.perf_counter) -> RunResult:
    """`users` clients, each sending its next request when its previous one finished."""
    loop = _Loop(engine, len(requests), progress, clock)
    queue = list(requests)
    for _ in range(min(users, len(queue))):
        loop.add(queue.pop(0), clock())
    while engine.has_unfinished() or queue:
        finished = len(loop.step()) if engine.has_unfinished() else users
        for _ in range(min(finished, len(queue))):
            loop.add(queue.pop(0), clock())
    return loop.result(engine.config.mode, None, users)
