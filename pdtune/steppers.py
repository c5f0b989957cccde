"""One engine step per mode: what runs, on which SMs, and which sampled tokens come back."""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass

import torch

from pdtune.clock import HOST_CLOCK
from pdtune.config import EngineConfig
from pdtune.executor.model_runner import LaunchedStep, ModelRunner
from pdtune.executor.pdmux import DecodeLaunch, PdmuxExecutor, PrefillJob
from pdtune.perf.model_costs import PrefillShape
from pdtune.planner.pdmux import PdmuxPlanner, StepDecision
from pdtune.planner.policies import make_policy
from pdtune.request.sequence import Status
from pdtune.scheduler.scheduler import Scheduler, StepPlan

StepResults = list  # of (ScheduledChunk, sampled token id, TokenLogprobs | None)


class SyncStepper:
    """sequential and chunked: one plan, one forward over the whole GPU.

    Overlapped (`config.overlap_scheduling`, one process): step n+1 is planned and launched
    before step n's tokens are read back, so the host's scheduling and input preparation run
    while the GPU computes. Tokens of step n that step n+1 needs are copied on the device; a
    sequence that step n ends (stop token or string) wastes its row in step n+1, which is dropped."""

    def __init__(self, config: EngineConfig, scheduler: Scheduler, runner: ModelRunner):
        self.policy = make_policy(config.mode)
        self.scheduler, self.runner = scheduler, runner
        self.overlap = config.overlap_scheduling and runner.tp is None
        self.in_flight: LaunchedStep | None = None

    def forget_online_state(self) -> None:
        """Nothing here is learned from earlier steps."""

    def step(self) -> StepResults:
        if not self.overlap:
            plan = self.policy.plan(self.scheduler)
            if not plan:
                return []
            results = self.runner.run(plan)
            self.scheduler.commit(plan)
            return results
        previous = self.in_flight
        if previous is not None:
            self.scheduler.commit(previous.plan)  # its input tokens are all on the host by now
        plan = self.policy.plan(self.scheduler)
        self.in_flight = self.runner.launch(plan, previous) if plan else None
        if self.in_flight is not None:
            mark_pending(self.in_flight)
        return self._resolve(previous)

    def _resolve(self, launched: LaunchedStep | None) -> StepResults:
        if launched is None or launched.sampled is None:
            return []
        return resolve_tokens(launched)


def mark_pending(launched: LaunchedStep) -> None:
    """The step's sampled tokens count in their sequences' lengths before they reach the host."""
    for chunk in launched.inputs.sampled_chunks:
        chunk.seq.num_pending += 1


def resolve_tokens(launched: LaunchedStep) -> StepResults:
    """Waits for a launched step's tokens; drops those of sequences that ended meanwhile."""
    tokens, logprobs = launched.sampled.resolve()
    results = []
    for chunk, token, lp in zip(launched.inputs.sampled_chunks, tokens, logprobs):
        chunk.seq.num_pending -= 1
        if chunk.seq.status != Status.FINISHED:
            results.append((chunk, token, lp))
    return results


@dataclass
class PdmuxStep:
    """What a pdmux step decided and ran on, for its trace row and the planner's online factors."""

    decision: StepDecision
    batch: int
    context_tokens: int
    prefill_tokens: int
    measured_prefill: list[float]  # the prefill blocks that finished before it
    prefill_jobs: int


@dataclass
class InFlightDecode:
    """An overlapped pdmux decode step not read back yet."""

    launch: DecodeLaunch
    step: PdmuxStep
    tag: int  # its KV blocks freed meanwhile are held for it (`BlockManager.hold_tag`)


class PdmuxStepper:
    """pdmux: each step is one decode iteration on the decode partition beside the next block of
    layers of the current prefill batch on the prefill partition. With `pdmux_prefill_jump` a
    second batch may overtake the first at a layer boundary; the first waits, its state kept.

    Overlapped (`config.overlap_scheduling`, one process), decode step n+1 is planned and
    launched, to start on the GPU when step n ends, before step n's tokens are read back: the
    host's sampling, scheduling and launches no longer leave the decode SMs idle between steps
    (about 2 ms of a 25 ms step at 100 sequences on the H200). Step n+1 then runs on its own
    stream while the host learns of step n's ends, so KV blocks freed meanwhile are held from
    other streams' prefills until it is done, and the blocks it fills are shared only then."""

    def __init__(self, config: EngineConfig, scheduler: Scheduler, runner: ModelRunner, executor: PdmuxExecutor,
                 planner: PdmuxPlanner, clock=HOST_CLOCK):
        self.config, self.scheduler, self.runner, self.clock = config, scheduler, runner, clock
        self.executor, self.planner = executor, planner
        self.jobs: list[PrefillJob] = []  # the first runs its layers; one behind it waits (at most two)
        # (partition, shape, layers, block) of each launched block not yet measured, in launch order
        self.pending_blocks: deque[tuple] = deque()
        self.jump_checked: tuple | None = None  # the waiting queue last asked whether its head jumps ahead
        self.last_step_start: float | None = None
        self.last_decode_ms: float | None = None
        self.cut_prompts = False  # a finished batch held a prompt cut at `pdmux_prefill_tokens` (more may follow)
        self.overlap = config.overlap_scheduling and runner.tp is None
        self.in_flight: InFlightDecode | None = None
        self.num_decodes = 0

    def forget_online_state(self) -> None:
        """Drops the planner's online corrections (a window of recent samples per partition and
        prefill size: a pair that a run rarely meets keeps an earlier run's)."""
        self.planner.predictor.forget()
        self.pending_blocks.clear()

    @property
    def job(self) -> PrefillJob | None:
        """The prefill batch whose layers run now: the first with layers left to launch (the one
        before it, all launched, may still run its last block); without `pdmux_prefill_behind`,
        the first."""
        if not self.jobs:
            return None
        if not self.config.pdmux_prefill_behind:
            return self.jobs[0]
        return next((j for j in self.jobs if j.remaining_layers), self.jobs[0])

    def _prefill_queued(self, job: PrefillJob) -> bool:
        """A block still waits on the prefill stream behind the running one: the job's own, or
        (behind a batch whose last block runs) the job's first."""
        return job.queue_full or (job is not self.jobs[0] and not self.jobs[0].done.query())

    def _finish_prefill(self) -> StepResults:
        job = self.jobs.pop(0)
        self.scheduler.commit(job.plan)
        self.scheduler.protected -= {id(c.seq) for c in job.plan.chunks}
        self.cut_prompts = self.cut_prompts or any(c.seq.num_uncomputed_tokens > 1 for c in job.plan.chunks)
        return self.runner.sample(job.inputs, job.logits)

    def _continue_prefill(self) -> None:
        """The next batch of a prompt longer than `pdmux_prefill_tokens`, before any new prompt:
        a prefill batch never holds more tokens than the memory plan and the prefill streams'
        warmed pools allow (a 34k-token prompt in one batch grew them mid-run, with allocator
        retries: a device-wide synchronize)."""
        plan = StepPlan()
        self.scheduler.schedule_running(plan, self.config.pdmux_prefill_tokens, prefill_only=True)
        self._launch_prefill_job(plan)

    def _launch_prefill_job(self, plan: StepPlan, behind: bool = False) -> None:
        if plan:
            self.jobs.insert(len(self.jobs) if behind else 0, self.executor.start_prefill(plan))
            self.scheduler.protected |= {id(c.seq) for c in plan.chunks}

    def _start_prefill(self, now: float) -> int:
        """A new prefill batch when none is in flight; with `pdmux_prefill_jump`, waiting requests
        ahead of the one in flight when the planner says they should go first (`jump_batch`).
        Returns how many jumped, for the step's trace row."""
        if self.jobs:  # asked again only when the queue changed: its order is a sort, each step would cost
            queue = (len(self.scheduler.waiting), id(self.scheduler.waiting[-1]))
            if queue == self.jump_checked:
                return 0
            self.jump_checked = queue
        self.planner.order_waiting(self.scheduler, now)
        budget, jumping = self.config.pdmux_prefill_tokens, bool(self.jobs)
        if jumping:
            job = self.jobs[0]
            if len(self.jobs) > 1 or not job.remaining_layers:
                return 0
            seq = self.planner.jump_candidate(self.scheduler)
            arrival = min(c.seq.arrival_time for c in job.plan.chunks)
            if not self.planner.jumps_ahead(self.scheduler, seq, job.shape, job.remaining_layers, arrival, now):
                return 0
            jumpers, budget = self.planner.jump_batch(self.scheduler, seq, job.shape, job.remaining_layers, arrival,
                                                      now)
            for jumper in reversed(jumpers):
                self.scheduler.waiting.remove(jumper)
                self.scheduler.waiting.appendleft(jumper)
        plan = self._admit_waiting(budget)
        self._launch_prefill_job(plan)
        return len(plan.chunks) if jumping else 0

    def _admit_waiting(self, budget: int) -> StepPlan:
        """The next prefill batch from the head of the (ordered) waiting queue."""
        admits = None
        if self.config.pdmux_admission == "tpot":
            admits = self.planner.tpot_admission([s for s in self.scheduler.running if s.status == Status.RUNNING])
        plan = StepPlan()
        self.scheduler.schedule_waiting(plan, budget, allow_chunking=False, admits=admits,
                                        max_chunk=self.config.pdmux_prefill_tokens)
        return plan

    def _launch_behind(self, decision: StepDecision, now: float) -> None:
        """In the step a prefill batch's last layers launch, the next batch's first layers behind
        them on the same prefill stream (`PdmuxPlanner.layers_behind`), so the prefill SMs do not
        idle from that block's end to the next step: the batch a jump overtook, or else a new one
        from the queue. A prompt cut at `pdmux_prefill_tokens` goes on only once its batch is done
        (its next cut starts where that one ends), so no new batch is taken meanwhile; nor is one
        that no layers would launch for (the step is full, or a policy whose gang is its own)."""
        last = self.jobs[0]
        if not self.planner.time_left_behind_ms(decision):
            return
        if len(self.jobs) == 1:
            if not self.scheduler.waiting or self.cut_prompts or any(
                    c.seq.num_uncomputed_tokens - c.num_new_tokens > 1 for c in last.plan.chunks):
                return
            self.planner.order_waiting(self.scheduler, now)
            self._launch_prefill_job(self._admit_waiting(self.config.pdmux_prefill_tokens), behind=True)
            if len(self.jobs) == 1:
                return
        behind = self.jobs[1]
        layers = self.planner.layers_behind(decision, behind.shape, behind.remaining_layers)
        if layers:
            self.executor.launch_step(None, behind, decision.partition, layers)
            self.pending_blocks.append((decision.partition, behind.shape, layers, behind.last_block))

    def _observe_prefill_blocks(self) -> list[float]:
        """Every block that has finished since the last step, oldest first (blocks finish in
        launch order: one stream, or a wait on the previous block's event). Each is learned
        from: measuring only the latest block of a step would sample the blocks that finish
        within one step, the short ones, and skew the layer factors low."""
        measured = []
        while self.pending_blocks:
            part, shape, layers, block = self.pending_blocks[0]
            ms = block.ms()
            if ms is None:
                break
            self.planner.predictor.observe_layers(part, shape, layers, ms)
            measured.append(ms)
            self.pending_blocks.popleft()
        return measured

    @torch.inference_mode()
    def step(self) -> StepResults:
        now = self.clock.now()
        if self.last_step_start is not None:
            self.planner.predictor.observe_step_wall((now - self.last_step_start) * 1e3, self.last_decode_ms)
        self.last_step_start, self.last_decode_ms = now, None
        if self.in_flight is not None:  # its input tokens are on the host; its KV is shared once it is done
            self.scheduler.commit(self.in_flight.launch.step.plan, publish=False)
        results: StepResults = []
        measured_prefill = self._observe_prefill_blocks()
        if self.jobs and self.jobs[0].finished:
            results += self._finish_prefill()
        if not self.jobs and self.cut_prompts:  # a scan of the running batch only between prefill batches
            self.cut_prompts = self.scheduler.has_unfinished_prefill()
            if self.cut_prompts:
                self._continue_prefill()
        jumped = 0
        if self.scheduler.waiting and (not self.jobs or self.config.pdmux_prefill_jump != "off"):
            jumped = self._start_prefill(now)
        decode_plan = StepPlan()
        self.scheduler.schedule_running(decode_plan, self.scheduler.max_num_seqs, decode_only=True)
        job = self.job
        batch, context = len(decode_plan.chunks), sum(len(c.seq) for c in decode_plan.chunks)
        remaining = job.remaining_layers if job else 0
        prefill = job.shape if job else PrefillShape()
        slack = lost = None
        if remaining and decode_plan:
            arrival = min(c.seq.arrival_time for c in job.plan.chunks)
            slack = functools.partial(self.planner.queue_slack_ms, self.scheduler, prefill, remaining, arrival, now)
            lost = functools.partial(self.planner.lost_waiting, self.scheduler, now)
        budget = None  # only the adaptive policy plans against it: no per-step scan of the batch otherwise
        if self.config.pdmux_policy == "adaptive":
            budget = self.planner.decode_budget_ms([c.seq for c in decode_plan.chunks], now)
        decision = self.planner.decide(batch, context, prefill, remaining, slack, budget,
                                       prefill_queued=bool(remaining) and self._prefill_queued(job), queue_lost=lost)
        decision.jumped = jumped
        # A prefill block alone on the whole GPU (pdmux_prefill_alone) leaves this step's decode for the next.
        inputs = self.runner.prepare(decode_plan) if decode_plan and decision.partition.decode_sms else None
        gang = decision.gang if remaining else 0
        previous = self.in_flight
        launch = self.executor.launch_step((decision.partition, inputs) if inputs else None, job,
                                           decision.partition, gang, previous.launch if previous else None,
                                           decode_plan if self.overlap else None)
        if gang:
            self.pending_blocks.append((decision.partition, prefill, gang, job.last_block))
            if gang == remaining and job is self.jobs[0] and self.config.pdmux_prefill_behind:
                self._launch_behind(decision, now)
        step = PdmuxStep(decision, batch, context, prefill.tokens, measured_prefill, len(self.jobs))
        if self.overlap:
            return results + self._overlapped(launch, step, previous, job)
        if launch is not None:
            logits, decode_ms = self.executor.finish_decode(launch)
            results += self.runner.sample(inputs, logits)
            self.scheduler.commit(decode_plan)
            self._learn(step, decode_ms)
        else:
            if job is not None:
                job.done.synchronize()  # nothing to decode: wait for the prefill block rather than spin
            self._learn(step, None)
        return results

    def _learn(self, step: PdmuxStep, decode_ms: float | None) -> None:
        """The step's measured decode time (None: it decoded nothing) to the planner and the trace."""
        if decode_ms is not None:
            self.last_decode_ms = decode_ms
            self.planner.predictor.observe_decode(step.decision.partition, step.batch, step.context_tokens, decode_ms)
        self.planner.record(step.decision, step.batch, step.prefill_tokens, decode_ms, step.measured_prefill,
                            step.prefill_jobs)

    def _overlapped(self, launch: DecodeLaunch | None, step: PdmuxStep, previous: InFlightDecode | None,
                    job: PrefillJob | None) -> StepResults:
        """Keeps the decode step just launched in flight and reads back the one before it."""
        blocks = self.scheduler.blocks
        self.in_flight = None
        if launch is not None:
            mark_pending(launch.step)
            self.num_decodes += 1
            self.in_flight = InFlightDecode(launch, step, tag=self.num_decodes)
        blocks.hold_tag = self.in_flight.tag if self.in_flight else None
        results = []
        if previous is not None:
            _, decode_ms = self.executor.finish_decode(previous.launch)
            results = resolve_tokens(previous.launch.step)
            self.scheduler.publish(previous.launch.step.plan)
            blocks.release_held(previous.tag)
            self._learn(previous.step, decode_ms)
        elif launch is None and job is not None:
            job.done.synchronize()  # nothing to decode: wait for the prefill block rather than spin
        if launch is None:
            self._learn(step, None)
        return results
