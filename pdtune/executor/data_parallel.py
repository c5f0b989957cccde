"""Data parallelism: M engine replicas in their own processes (one GPU each when there are GPUs),
fed by an SLO-aware dispatcher; the same add_request / step interface as one engine."""

from __future__ import annotations

import atexit
import dataclasses
import queue
import statistics
import time

import torch
import torch.multiprocessing as mp

from pdtune.clock import HOST_CLOCK
from pdtune.config import EngineConfig
from pdtune.engine import pdmux_plan_config
from pdtune.errors import InvalidRequestError, PdtuneError
from pdtune.model.ops import resolve_block_size
from pdtune.perf.perf_model import read_perf_model
from pdtune.planner.dispatch import SLODispatcher, StepCost
from pdtune.request.output import RequestOutput
from pdtune.request.sampling import SamplingParams
from pdtune.scheduler.scheduler import check_prompt_fits


def _step_report(index: int, engine, outs: list[RequestOutput]) -> tuple:
    """What the front end reads after a replica step: finished outputs, load, counters."""
    s, bm = engine.scheduler, engine.block_manager
    return ("step", index, outs, sum(q.num_uncomputed_tokens for q in s.waiting), len(s.running),
            sum(len(q) for q in s.running), bm.prefix_hits, bm.prefix_queries, engine.num_preemptions)


def _drain(inbox, outbox, index: int, engine, block: bool) -> bool:
    """Takes every waiting message (waits for one when idle); False once told to stop."""
    try:
        msg = inbox.get(block=block)
        while True:
            if msg is None:
                return False
            if msg == "reset":
                engine.reset_counters()
            elif msg == "abort":
                aborted = engine.abort_waiting()
                if aborted:  # reported like finished requests, so the front end's in_flight stays right
                    outbox.put(_step_report(index, engine, aborted))
            elif isinstance(msg, dict):  # a call on the engine: a pdmux plan (checked by the front end), trace tags
                getattr(engine, msg.pop("call"))(**msg)
            else:
                request_id, prompt, params, arrival = msg
                engine.add_request(prompt, params, request_id, arrival)
            msg = inbox.get_nowait()
    except queue.Empty:
        return True


def _replica(index: int, config: EngineConfig, inbox, outbox) -> None:
    from pdtune.engine import Engine

    if torch.cuda.is_available() and config.device != "cpu":  # its ranks take the next GPUs
        torch.cuda.set_device(index * config.tensor_parallel_size % torch.cuda.device_count())
    try:
        engine = Engine(config)
    except PdtuneError as exc:
        outbox.put(("failed", index, str(exc)))
        return
    engine.tag_trace(replica=index)  # the replicas append to one trace file
    outbox.put(("ready", index, engine.num_kv_blocks, engine.max_model_len, engine.ceilings))
    while _drain(inbox, outbox, index, engine, block=not engine.has_unfinished()):
        if engine.has_unfinished():
            outbox.put(_step_report(index, engine, engine.step()))
    engine.close()


class DataParallelEngine:
    clock = HOST_CLOCK

    def __init__(self, config: EngineConfig):
        from pdtune.model.loader import load_tokenizer, resolve_device, resolve_dtype

        started = time.perf_counter()
        self.config = config = resolve_block_size(config)
        self.model_name, arch, self.tokenizer = load_tokenizer(config)
        perf_model = None if config.perf_model is None else read_perf_model(  # before any replica starts
            config.perf_model, tensor_parallel_size=config.tensor_parallel_size, block_size=config.block_size)
        self.arch, self.vocab_size = arch, arch.vocab_size
        replica_config = dataclasses.replace(config, data_parallel_size=1)
        ctx = mp.get_context("spawn")
        size = config.data_parallel_size
        self.outbox = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(size)]
        # A daemon cannot start the replica's own tensor-parallel workers; otherwise a forgotten
        # close() must not keep the interpreter alive at exit.
        daemon = config.tensor_parallel_size == 1
        self.procs = [ctx.Process(target=_replica, args=(i, replica_config, self.inboxes[i], self.outbox), daemon=daemon)
                      for i in range(size)]
        self.closed = False
        atexit.register(self.close)
        for p in self.procs:
            p.start()
        ready = [self._get() for _ in range(size)]
        failed = [m for m in ready if m[0] == "failed"]
        if failed:
            self.close()
            raise PdtuneError(failed[0][2])
        self.num_kv_blocks = min(m[2] for m in ready)
        self.max_model_len = min(m[3] for m in ready)
        self.matmul_flops_per_s = self._matmul_flops_per_s([m[4] for m in ready], size * config.tensor_parallel_size)
        itemsize = resolve_dtype(config.dtype, arch.torch_dtype, resolve_device(config.device)).itemsize
        self.dispatcher = SLODispatcher(size, config.block_size, self._step_cost(arch, itemsize, perf_model, ready),
                                        config.slo_ttft_ms / 1e3, config.slo_tpot_ms / 1e3, self.num_kv_blocks)
        self.counters = [(0, 0, 0)] * size  # (prefix hits, prefix queries, preemptions) per replica
        self.in_flight = 0
        self.num_steps = 0
        self._next_id = 0
        self.startup_s = time.perf_counter() - started  # until every replica reported ready

    @staticmethod
    def _step_cost(arch, itemsize: int, perf_model, ready: list[tuple]) -> StepCost:
        """The dispatcher's predictions: the perf model's whole-GPU fits, or rooflines at the
        slowest replica's measured rates (a replica on a CPU measures none)."""
        rates = [m[4] for m in ready if m[4] is not None]
        kw = {} if not rates else dict(copy_bytes_per_s=min(r.copy_bytes_per_s for r in rates),
                                       matmul_flops_per_s=min(r.matmul_flops_per_s for r in rates))
        return StepCost(arch, itemsize, perf_model=perf_model, **kw)

    @staticmethod
    def _matmul_flops_per_s(ceilings: list, ranks: int) -> float | None:
        """The matmul rate of all the GPUs the replicas' ranks run on (each replica measured its
        first; ranks beyond the GPUs wrap around and share them); None when a replica measured none."""
        if None in ceilings:
            return None
        return statistics.fmean(c.matmul_flops_per_s for c in ceilings) * min(ranks, torch.cuda.device_count())

    def add_request(self, prompt_token_ids: list[int], params: SamplingParams, request_id: str | None = None,
                    arrival_time: float | None = None) -> str:
        """Checks what one engine would, then sends the request to the dispatcher's choice."""
        prompt = list(prompt_token_ids)
        if any(not 0 <= t < self.vocab_size for t in prompt):
            raise InvalidRequestError(f"prompt token ids must be in [0, {self.vocab_size})")
        check_prompt_fits(len(prompt), self.max_model_len, self.config.block_size, self.num_kv_blocks)
        if request_id is None:
            request_id, self._next_id = f"dp-{self._next_id}", self._next_id + 1
        replica = self.dispatcher.choose(prompt)
        self.inboxes[replica].put((request_id, prompt, params, arrival_time or time.perf_counter()))
        self.in_flight += 1
        return request_id

    def has_unfinished(self) -> bool:
        return self.in_flight > 0

    def step(self) -> list[RequestOutput]:
        """Waits for at least one replica step, then takes every report that has arrived."""
        finished: list[RequestOutput] = []
        msg = self._get() if self.in_flight else None
        while msg is not None:
            _, index, outs, waiting, running, context, hits, queries, preemptions = msg
            self.dispatcher.report(index, waiting, running, context)
            self.counters[index] = (hits, queries, preemptions)
            finished += outs
            try:
                msg = self.outbox.get_nowait()
            except queue.Empty:
                msg = None
        self.in_flight -= len(finished)
        self.num_steps += 1
        return finished

    def abort_waiting(self) -> list[RequestOutput]:
        """Tells every replica to drop its queued requests. They come back through step(), as
        outputs with finish reason "abort", so this returns none itself."""
        for inbox in self.inboxes:
            inbox.put("abort")
        return []

    def _get(self):
        """The next report; a replica that died (out of memory, killed) fails the run loudly."""
        while True:
            try:
                return self.outbox.get(timeout=1.0)
            except queue.Empty:
                dead = [i for i, p in enumerate(self.procs) if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"data-parallel replica {dead[0]} exited (code {self.procs[dead[0]].exitcode})")

    @property
    def prefix_cache_hit_rate(self) -> float:
        queries = sum(c[1] for c in self.counters)
        return sum(c[0] for c in self.counters) / queries if queries else 0.0

    @property
    def num_preemptions(self) -> int:
        return sum(c[2] for c in self.counters)

    def set_pdmux_plan(self, policy: str, split: tuple[int, int] | None = None, gang: int | None = None,
                       prefill_tokens: int | None = None) -> None:
        """Switches every replica's pdmux planner (see Engine.set_pdmux_plan); requests sent
        afterwards run under the new plan."""
        self.config = pdmux_plan_config(self.config, policy, split, gang, prefill_tokens)
        for inbox in self.inboxes:
            inbox.put(dict(call="set_pdmux_plan", policy=policy, split=split, gang=gang, prefill_tokens=prefill_tokens))

    def tag_trace(self, **tags) -> None:
        """Tags every replica's trace rows from here on (see Engine.tag_trace)."""
        for inbox in self.inboxes:
            inbox.put(dict(call="tag_trace", **tags))

    def planner_inputs(self) -> dict | None:
        """The front end holds no planner; each replica's stays in its process (not reported)."""
        return None

    def reset_counters(self) -> None:
        for inbox in self.inboxes:
            inbox.put("reset")
        self.counters = [(0, 0, 0)] * len(self.inboxes)
        self.num_steps = 0

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for inbox in self.inboxes:
            inbox.put(None)
        for p in self.procs:
            p.join(timeout=60)
