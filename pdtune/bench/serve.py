"""Serves a workload in-process: open loop (arrivals follow the clock) or closed loop (N users)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

from pdtune.engine import Engine
from pdtune.errors import InvalidRequestError
from pdtune.request.output import RequestOutput
from pdtune.request.sampling import SamplingParams
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
    itl_s: list[float]
    token_times_s: list[float]
    error: str | None = None

    @classmethod
    def from_output(cls, out: RequestOutput, start: float) -> "RequestRecord":
        m = out.metrics
        return cls(out.request_id, m.arrival_time - start, len(out.prompt_token_ids), len(out.token_ids),
                   m.num_cached_tokens, m.ttft, out.tpot, m.e2e, out.inter_token_latencies,
                   [t - start for t in out.token_times])


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
        return asdict(self)


class Progress(Protocol):
    def update(self, done: int, total: int, records: list[RequestRecord]) -> None: ...


def _params(req: WorkloadRequest) -> SamplingParams:
    return SamplingParams(max_tokens=req.max_tokens, temperature=0.0, ignore_eos=True)


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
            self.records.append(RequestRecord(req.request_id, arrival - self.start, len(req.prompt_token_ids), 0, 0,
                                              None, None, None, [], [], error=str(exc)))

    def step(self) -> list[RequestOutput]:
        t0 = self.clock()
        outs = self.engine.step()
        t1 = self.clock()
        self.engine_s += t1 - t0
        for out in outs:
            self.records.append(RequestRecord.from_output(out, self.start))
        if self.progress is not None and outs:
            self.progress.update(len(self.records), self.total, self.records)
        self.harness_s += self.clock() - t1
        return outs

    def result(self, mode: str, rate: float | None, concurrency: int | None) -> RunResult:
        e = self.engine
        return RunResult(mode, rate, concurrency, self.records, self.clock() - self.start, e.num_steps, self.engine_s,
                         self.harness_s, e.prefix_cache_hit_rate)


def serve_open_loop(engine: Engine, requests: list[WorkloadRequest], rate: float | None = None,
                    progress: Progress | None = None, clock: Callable[[], float] = time.perf_counter,
                    sleep: Callable[[float], None] = time.sleep) -> RunResult:
    """Requests enter at their arrival times whatever the engine is doing; each request's
    TTFT counts from its scheduled arrival, so queueing in the harness is not hidden."""
    loop = _Loop(engine, len(requests), progress, clock)
    i = 0
    while i < len(requests) or engine.has_unfinished():
        t0 = clock()
        now = t0 - loop.start
        while i < len(requests) and requests[i].arrival_s <= now:
            loop.add(requests[i], loop.start + requests[i].arrival_s)
            i += 1
        loop.harness_s += clock() - t0
        if engine.has_unfinished():
            loop.step()
        elif i < len(requests):
            sleep(max(0.0, requests[i].arrival_s - (clock() - loop.start)))
    return loop.result(engine.config.mode, rate, None)


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
