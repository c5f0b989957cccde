"""The pdmux planner: each step picks the SM split and the gang (prefill layers beside one decode
step), and orders waiting requests by their TTFT deadlines."""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable

from pdtune.clock import HOST_CLOCK
from pdtune.config import EngineConfig
from pdtune.errors import InputFileError
from pdtune.executor.partitions import Partition
from pdtune.perf.model_costs import PrefillShape
from pdtune.planner.predictor import StepTimePredictor
from pdtune.request.sequence import Sequence
from pdtune.scheduler.scheduler import Scheduler

SGLANG_DECODE_BS_DIVISOR = 36
SGLANG_SPLIT_TOKEN_BUDGET = 65536
# pdmux_prefill_jump "shorter": a request overtakes the prefill in flight only when its own prefill
# is at most this share of what remains of that one (a jump costs the overtaken its whole length)
SHORTER_JUMP_SHARE = 0.25
SHORTEST_FIRST_JUMPS = ("shorter", "spare", "safe")  # the jumps of the shortest waiting prefill


@dataclass
class StepDecision:
    partition: Partition
    gang: int
    predicted_decode_ms: float | None
    predicted_prefill_ms: float | None
    decode_budget_ms: float | None = None  # what the adaptive policy planned decode within
    host_ms: float = 0.0  # the host's time per step the plan allowed for (learned on between steps)
    gang_behind: int = 0  # layers of the next prefill batch, launched behind this one's last (`layers_behind`)
    jumped: int = 0  # waiting requests that jumped ahead of the prefill in flight this step (`jump_batch`)


def _open_trace(path: str):
    """Appends, so a resumed run-batch keeps the steps of its earlier runs; makes its folder."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return open(path, "a")
    except OSError as exc:
        raise InputFileError(f"trace {path}: cannot be written ({exc.strerror})") from exc


def _all_on_time(rows: list[tuple], now: float) -> bool:
    """Whether prefills (due time, prefill seconds, ...) run one after another from `now` all end by their due times."""
    done_at = now
    for due, prefill_s, *_ in rows:
        done_at += prefill_s
        if done_at > due:
            return False
    return True


class PdmuxPlanner:
    def __init__(self, config: EngineConfig, partitions: list[Partition], predictor: StepTimePredictor,
                 clock=HOST_CLOCK):
        self.clock = clock  # the engine's: the host's, or a virtual GPU's
        self.config = config
        self.predictor = predictor
        self.mixed = [p for p in partitions if p.prefill_sms and p.decode_sms]  # ascending decode SMs
        self.prefill_alone = next(p for p in partitions if not p.decode_sms)
        self.decode_alone = next(p for p in partitions if not p.prefill_sms)
        self.trace = _open_trace(config.trace_path) if config.trace_path else None
        self.trace_tags: dict = {}  # written into every trace row: which run (bench mode, rate) and replica
        self.num_steps = 0

    def _static_partition(self) -> Partition:
        want = self.config.pdmux_static_split
        return min(self.mixed, key=lambda p: abs(p.requested[1] - want[1]) + abs(p.requested[0] - want[0]))

    def decode_budget_ms(self, decoding: Iterable[Sequence] = (), now: float | None = None) -> float:
        """The time the next decode iteration may take; TPOT is the whole step, so the host's
        sampling and scheduling come off it. With the "pace" budget the SLO bounds each request's
        mean TPOT, which is what is measured: a request with n output tokens, the first at t0,
        keeps it after this step if the step ends by t0 + n x TPOT, so the step may use what the
        least-ahead request of `decoding` banked in faster steps (and must make up what a late one
        lost). "step" gives every step the TPOT alone. An ITL bound in the SLO (`slo_itl_ms`) caps
        any step, banked slack or not."""
        target = self.config.slo_tpot_ms * self.config.pdmux_decode_target
        budget = target
        if self.config.pdmux_decode_budget == "pace":
            now = self.clock.now() if now is None else now
            budget = min((len(s.token_times) * target - (now - s.token_times[0]) * 1e3
                          for s in decoding if s.token_times), default=target)
        if self.config.slo_itl_ms is not None:
            budget = min(budget, self.config.slo_itl_ms)
        return budget - self.predictor.host_ms

    def decide(self, decode_batch: int, context_tokens: int, prefill: PrefillShape, remaining_layers: int,
               prefill_slack: Callable[[], float] | None = None, budget_ms: float | None = None,
               prefill_queued: bool = False, queue_lost: Callable[[], bool] | None = None) -> StepDecision:
        """Decode keeps its TPOT: the smallest decode partition predicted (with the guard band) to
        meet `budget_ms` (`decode_budget_ms` of the decode batch; the step's TPOT when None);
        prefill gets the other SMs and enough layers to stay busy for the step. When no
        split meets the TPOT and prefill can wait (`prefill_slack`, called only when needed: the
        least TTFT slack, in ms, of what a pause delays, `queue_slack_ms`), decode takes the whole
        GPU for this step and prefill pauses: TTFT slack buys TPOT. So it does, with
        `pdmux_spare_decode_target`, while the slack keeps `pdmux_spare_slack_share` of the TTFT
        (and, with `pdmux_spare_none_lost`, `queue_lost` says no waiting request is lost): decode
        is planned against that lower share of the TPOT. With `pdmux_prefill_alone` TPOT
        slack buys TTFT too: when the budget holds a block of prefill layers on the whole GPU and
        the next decode step after it, and a layer runs faster alone than beside decode, the step
        runs that block alone and decode waits. While a prefill block still waits behind the running
        one (`prefill_queued`: a layer can outlast a decode step), the step launches no layers, so
        the prefill stream stays within two blocks of the plan."""
        decision = self._decide(decode_batch, context_tokens, prefill, remaining_layers, prefill_slack, budget_ms,
                                prefill_queued, queue_lost)
        decision.host_ms = self.predictor.host_ms  # the trace row, written a step later, shows what was planned with
        return decision

    def _decide(self, decode_batch: int, context_tokens: int, prefill: PrefillShape, remaining_layers: int,
                prefill_slack: Callable[[], float] | None, budget_ms: float | None,
                prefill_queued: bool, queue_lost: Callable[[], bool] | None) -> StepDecision:
        """`decide` before the host time it planned with is noted."""
        pred = self.predictor
        if not remaining_layers:
            part = self.decode_alone
            return StepDecision(part, 0, pred.decode_ms(part, decode_batch, context_tokens), None)
        if not decode_batch:
            part = self.prefill_alone
            return StepDecision(part, remaining_layers, None, pred.layer_ms(part, prefill) * remaining_layers)
        policy, budget = self.config.pdmux_policy, None  # a budget is what the adaptive policy plans within
        if policy == "static":
            part, gang = self._static_partition(), self.config.pdmux_gang
        elif policy == "sglang":
            # SGLang's stream index: max(1, min(groups, batch x groups // divisor)) over its mixed groups
            groups = len(self.mixed)
            part = self.mixed[max(1, min(groups, decode_batch * groups // SGLANG_DECODE_BS_DIVISOR)) - 1]
            gang = max(1, SGLANG_SPLIT_TOKEN_BUDGET // max(prefill.tokens, 1))
        else:
            slack = functools.cache(prefill_slack) if prefill_slack is not None else None
            budget = self._with_spare_slack(self.decode_budget_ms() if budget_ms is None else budget_ms, slack,
                                            queue_lost)
            part = next((p for p in self.mixed
                         if pred.decode_ms(p, decode_batch, context_tokens, worst=True) <= budget), None)
            if part is None:
                alone_ms = pred.decode_ms(self.decode_alone, decode_batch, context_tokens)
                if slack is not None and slack() > alone_ms + pred.host_ms:
                    return StepDecision(self.decode_alone, 0, alone_ms, None, budget)
                part = self.mixed[-1]
        decode_ms, layer_ms = pred.decode_ms(part, decode_batch, context_tokens), pred.layer_ms(part, prefill)
        if prefill_queued:
            return StepDecision(part, 0, decode_ms, None, budget)
        if policy == "adaptive" and self.config.pdmux_prefill_alone:
            alone_layer_ms = pred.layer_ms(self.prefill_alone, prefill)
            # The next step's decode must still end within the budget after the block; each of the
            # two steps pays the host's work between launches (the budget already holds one).
            spare_ms = budget - pred.decode_ms(part, decode_batch, context_tokens, worst=True) - pred.host_ms
            layers = min(int(spare_ms // alone_layer_ms), remaining_layers)
            if layers >= 1 and alone_layer_ms < layer_ms:
                return StepDecision(self.prefill_alone, layers, None, alone_layer_ms * layers, budget)
        if policy == "adaptive":
            # Bubble-less: enough layers to keep the prefill SMs busy for the whole step, which
            # lasts the decode iteration plus the host's work between launches.
            gang = max(1, math.ceil(max(decode_ms, pred.step_wall_ms or 0.0) / layer_ms))
        gang = min(gang, remaining_layers)
        return StepDecision(part, gang, decode_ms, layer_ms * gang, budget)

    def time_left_behind_ms(self, decision: StepDecision) -> float:
        """What the step leaves the prefill SMs after the layers it launched, when they were a
        batch's last: the adaptive gang keeps those SMs busy for the whole step, so the next batch
        fills it (`layers_behind`); without it they would idle from that block's end to the next
        step, most of a step after a jump's prompt of a few hundred tokens. 0 for the other
        policies, whose gangs follow their own rules, and off the mixed splits."""
        part, pred = decision.partition, self.predictor
        if self.config.pdmux_policy != "adaptive" or not (part.prefill_sms and part.decode_sms):
            return 0.0
        step_ms = max(decision.predicted_decode_ms or 0.0, pred.step_wall_ms or 0.0)
        return max(0.0, step_ms - (decision.predicted_prefill_ms or 0.0))

    def layers_behind(self, decision: StepDecision, behind: PrefillShape, remaining_layers: int) -> int:
        """Layers of the prefill batch behind one whose last layers this step launched (the batch a
        jump overtook, or the next from the queue) that fill `time_left_behind_ms`; noted in
        `decision.gang_behind`."""
        left_ms = self.time_left_behind_ms(decision)
        if left_ms and remaining_layers:
            decision.gang_behind = min(remaining_layers, math.ceil(left_ms / self.predictor.layer_ms(decision.partition,
                                                                                                       behind)))
        return decision.gang_behind

    def _keeps_spare_slack(self, slack_ms: float, lost: Callable[[], bool] | None) -> bool:
        """Whether the prefill queue's TTFT slack is to spare, where the spare decode target and
        jump apply: its least slack (`queue_slack_ms`) is at least `pdmux_spare_slack_share` of the
        TTFT SLO and, with `pdmux_spare_none_lost`, no waiting request is lost (`lost`, `lost_waiting`)."""
        config = self.config
        if slack_ms < config.pdmux_spare_slack_share * config.slo_ttft_ms:
            return False
        return not (config.pdmux_spare_none_lost and lost is not None and lost())

    def lost_waiting(self, scheduler: Scheduler, now: float) -> bool:
        """Whether a waiting request would miss its TTFT even if its prefill went first, as the
        fewest-misses dispatcher judges it (on the largest prefill partition) before deferring it."""
        part, slo_s = self.mixed[0], self.config.slo_ttft_ms / 1e3
        return any(now + self._prefill_of(scheduler, seq, part)[1] / 1e3 > seq.arrival_time + slo_s
                   for seq in scheduler.waiting)

    def _with_spare_slack(self, budget_ms: float, slack: Callable[[], float] | None,
                          lost: Callable[[], bool] | None) -> float:
        """The decode budget at `pdmux_spare_decode_target` instead of `pdmux_decode_target` while
        the prefill queue's slack is to spare (`slack`, `queue_slack_ms`: on the slowest mixed
        prefill partition, so no split this step picks breaks it; `lost`: `_keeps_spare_slack`)."""
        config = self.config
        spare, target = config.pdmux_spare_decode_target, config.pdmux_decode_target
        if spare >= target or slack is None or not self._keeps_spare_slack(slack(), lost):
            return budget_ms
        host_ms = self.predictor.host_ms  # the budget is the target's share of the TPOT less the host's work
        return (budget_ms + host_ms) * spare / target - host_ms

    def tpot_admission(self, decoding: list[Sequence]) -> Callable[[Sequence], bool]:
        """For `pdmux_admission` "tpot": a predicate that admits waiting sequences one by one
        while the decode batch they will join (`decoding` plus those admitted before, each
        adding its whole length as context) is predicted, with the guard band, to meet the TPOT
        budget on the largest decode partition that leaves prefill SMs. A first sequence is
        always admitted when nothing decodes, so prefill never waits for an empty decode batch."""
        pred, budget, part = self.predictor, self.decode_budget_ms(decoding), self.mixed[-1]
        batch, context = len(decoding), sum(len(s) for s in decoding)

        def admits(seq: Sequence) -> bool:
            nonlocal batch, context
            if batch and pred.decode_ms(part, batch + 1, context + len(seq), worst=True) > budget:
                return False
            batch, context = batch + 1, context + len(seq)
            return True

        return admits

    def jump_candidate(self, scheduler: Scheduler) -> Sequence:
        """The waiting request that may jump ahead: the head of the dispatch order ("late"), or
        the one with the shortest predicted prefill ("shorter", "spare", "safe")."""
        if self.config.pdmux_prefill_jump == "late":
            return scheduler.waiting[0]
        return min(scheduler.waiting, key=lambda s: self._prefill_of(scheduler, s, self.mixed[-1])[1])

    def jumps_ahead(self, scheduler: Scheduler, seq: Sequence, in_flight: PrefillShape, remaining_layers: int,
                    earliest_arrival: float, now: float) -> bool:
        """Whether waiting `seq` should run its prefill before the remaining layers of the one in
        flight (the paper's "let a shorter prefill go first" at a layer boundary): it meets its
        TTFT going first and, with `pdmux_prefill_jump` "late", it is shorter than what remains,
        would miss its TTFT behind it, and the overtaken keeps the slack to absorb it; with
        "shorter", "spare" or "safe", it fits `_jump_cap_ms`, "spare" only while the queue keeps
        `pdmux_spare_slack_share` of its TTFT SLO."""
        pred, part = self.predictor, self.mixed[-1]
        own_ms = self._prefill_of(scheduler, seq, part)[1]
        deadline_ms = (seq.arrival_time + self.config.slo_ttft_ms / 1e3 - now) * 1e3
        if own_ms > deadline_ms:
            return False
        jump = self.config.pdmux_prefill_jump
        if jump in SHORTEST_FIRST_JUMPS:
            if jump == "spare" and not self._keeps_spare_slack(
                    self.queue_slack_ms(scheduler, in_flight, remaining_layers, earliest_arrival, now),
                    functools.partial(self.lost_waiting, scheduler, now)):
                return False
            return own_ms <= self._jump_cap_ms(scheduler, seq, in_flight, remaining_layers, earliest_arrival, now)
        behind_ms = pred.layer_ms(part, in_flight) * remaining_layers
        overtaken_slack_ms = self.prefill_slack_ms(earliest_arrival, in_flight, remaining_layers, now)
        return overtaken_slack_ms >= own_ms and own_ms < behind_ms and deadline_ms < behind_ms + own_ms

    def _jump_cap_ms(self, scheduler: Scheduler, first: Sequence, in_flight: PrefillShape, remaining_layers: int,
                     earliest_arrival: float, now: float) -> float:
        """The most a "shorter", "spare" or "safe" jump may take: `SHORTER_JUMP_SHARE` of what
        remains of the overtaken prefill, within that one's TTFT slack; with "safe", also within
        the least slack of the waiting requests that can still meet their TTFT (`queue_slack_ms`,
        `first` aside), so no one who would meet it misses for the jump. Under load a "shorter"
        jump turned long prompts waiting behind into misses, which the dispatcher then served
        last (H100, 13.5 req/s: three or four 14-16k-token prompts, the last 2.9-3.8 s after the last arrival)."""
        pred, part = self.predictor, self.mixed[-1]
        cap_ms = min(SHORTER_JUMP_SHARE * pred.layer_ms(part, in_flight) * remaining_layers,
                     self.prefill_slack_ms(earliest_arrival, in_flight, remaining_layers, now))
        if self.config.pdmux_prefill_jump == "safe":
            cap_ms = min(cap_ms, self.queue_slack_ms(scheduler, in_flight, remaining_layers, earliest_arrival, now,
                                                     skip=first))
        return cap_ms

    def jump_batch(self, scheduler: Scheduler, first: Sequence, in_flight: PrefillShape, remaining_layers: int,
                   earliest_arrival: float, now: float) -> tuple[list[Sequence], int]:
        """The batch that jumps, and its new tokens: `first` (`jumps_ahead` let it go) and, with
        `pdmux_jump_batch` on a "shorter", "spare" or "safe" jump, the next shortest waiting
        requests while the batch stays within `_jump_cap_ms` and each member meets its TTFT at the
        batch's end. A prompt of ~150 tokens alone reads every weight as a batch of several does
        (by the roofline, an H100 prefill layer below ~300 tokens is bound by the weights' bytes:
        about 990 TFLOP/s over 3.35 TB/s, 2 FLOPs per 2-byte weight per token), so one jump for
        several short prompts spends fewer prefill SMs than one jump each."""
        pred, part, slo_s = self.predictor, self.mixed[-1], self.config.slo_ttft_ms / 1e3
        first_hit = self._prefill_of(scheduler, first, part)[0]
        batch, tokens = [first], len(first) - first_hit
        if not self.config.pdmux_jump_batch or self.config.pdmux_prefill_jump not in SHORTEST_FIRST_JUMPS:
            return batch, tokens
        shape = PrefillShape.single(tokens, first_hit)
        cap_ms = self._jump_cap_ms(scheduler, first, in_flight, remaining_layers, earliest_arrival, now)
        deadline_ms = (first.arrival_time + slo_s - now) * 1e3
        others = sorted((self._prefill_of(scheduler, s, part) + (s,) for s in scheduler.waiting if s is not first),
                        key=lambda entry: entry[1])
        for hit, _, seq in others:
            new = len(seq) - hit
            if tokens + new > self.config.pdmux_prefill_tokens:
                break
            grown = shape + PrefillShape.single(new, hit)
            batch_ms = pred.layer_ms(part, grown) * pred.arch.num_layers
            if batch_ms > cap_ms:
                break
            seq_deadline_ms = (seq.arrival_time + slo_s - now) * 1e3
            if batch_ms > min(deadline_ms, seq_deadline_ms):
                continue  # it would miss in the batch, or make a member miss: it waits its turn
            batch.append(seq)
            shape, tokens, deadline_ms = grown, tokens + new, min(deadline_ms, seq_deadline_ms)
        return batch, tokens

    def _prefill_of(self, scheduler: Scheduler, seq: Sequence, part: Partition) -> tuple[int, float]:
        """A waiting request's cached prefix (tokens) and its whole prefill's predicted ms on `part`."""
        hit = len(scheduler.blocks.match_prefix(seq)) * scheduler.blocks.block_size
        pred = self.predictor
        return hit, pred.layer_ms(part, PrefillShape.single(len(seq) - hit, hit)) * pred.arch.num_layers

    def queue_slack_ms(self, scheduler: Scheduler, in_flight: PrefillShape, remaining_layers: int,
                       earliest_arrival: float, now: float, skip: Sequence | None = None) -> float:
        """The least TTFT slack among what a pause of prefill delays: the batch in flight and each
        waiting request that can still meet its TTFT after the prefill queued ahead of it (the
        rest of the batch in flight, then the waiting ones before it, in queue order, on the
        smallest mixed prefill partition: the slowest prefill a mixed step runs). A request
        already past hope is not counted: waiting longer does not change that it misses. The scan stops once the queue ahead holds more
        than one TTFT of prefill, beyond which no request can meet its TTFT. `skip`: a request left
        out (one about to jump ahead)."""
        pred, part, slo_ms = self.predictor, self.mixed[-1], self.config.slo_ttft_ms
        ahead_ms = pred.layer_ms(part, in_flight) * remaining_layers
        slack = self.prefill_slack_ms(earliest_arrival, in_flight, remaining_layers, now)
        for seq in scheduler.waiting:
            if ahead_ms > slo_ms:
                break
            if seq is skip:
                continue
            ahead_ms += self._prefill_of(scheduler, seq, part)[1]
            own = (seq.arrival_time - now) * 1e3 + slo_ms - ahead_ms
            if own >= 0:
                slack = min(slack, own)
        return slack

    def prefill_slack_ms(self, earliest_arrival: float, prefill: PrefillShape, remaining_layers: int,
                         now: float | None = None) -> float:
        """Time left to the prefill batch's earliest TTFT deadline after its predicted remaining
        layers (on the smallest mixed prefill partition: the slowest it could resume on)."""
        now = self.clock.now() if now is None else now
        deadline = earliest_arrival + self.config.slo_ttft_ms / 1e3
        return (deadline - now) * 1e3 - self.predictor.layer_ms(self.mixed[-1], prefill) * remaining_layers

    def order_waiting(self, scheduler: Scheduler, now: float | None = None) -> None:
        """The waiting queue in `dispatch` order: fewest-misses (below), fcfs, or EDF on TTFT
        deadlines (arrival + SLO - predicted prefill), where cached multi-turn prompts go first
        when the most urgent request keeps enough slack and requests that can no longer meet
        their TTFT are deferred behind those that can (still served, counted as misses)."""
        if self.config.dispatch == "fcfs" or len(scheduler.waiting) < 2:
            return
        now = self.clock.now() if now is None else now
        if self.config.dispatch == "fewest-misses":
            self._order_for_fewest_misses(scheduler, now)
            return
        slo_s = self.config.slo_ttft_ms / 1e3
        rows = []
        for seq in scheduler.waiting:
            hit, prefill_ms = self._prefill_of(scheduler, seq, self.prefill_alone)
            prefill_s = prefill_ms / 1e3
            deadline = seq.arrival_time + slo_s - prefill_s
            rows.append((deadline < now, deadline, hit, prefill_s, seq))
        rows.sort(key=lambda r: (r[0], r[1]))
        head_slack = rows[0][1] - now
        cached = [r for r in rows if r[2] and not r[0] and r[3] < head_slack]
        ordered = cached + [r for r in rows if not (r[2] and not r[0] and r[3] < head_slack)]
        scheduler.waiting.clear()
        scheduler.waiting.extend(r[4] for r in ordered)

    def _order_for_fewest_misses(self, scheduler: Scheduler, now: float) -> None:
        """Moore-Hodgson on TTFT due times (arrival + SLO): in due order, and whenever the request
        just placed would finish its prefill late, the longest prefill placed so far goes behind
        the rest, which for prefills run one after another leaves the fewest TTFT misses. Under a
        burst of long prompts the short ones behind them then meet their TTFT and one long prompt
        misses, where EDF lets the long ones through and many short ones miss. Requests that
        cannot meet their TTFT even first are deferred too; the deferred keep due order. Cached
        multi-turn prompts go first when every placed request still meets its TTFT behind them
        (their blocks are in the cache now, and may not be later)."""
        part, slo_s = self.mixed[0], self.config.slo_ttft_ms / 1e3  # where prefill runs on most steps
        rows = []
        for seq in scheduler.waiting:
            hit, prefill_ms = self._prefill_of(scheduler, seq, part)
            rows.append((seq.arrival_time + slo_s, prefill_ms / 1e3, hit, seq))
        rows.sort(key=lambda r: r[0])
        placed, deferred, done_at = [], [], now
        for row in rows:
            if now + row[1] > row[0]:  # late even if it went first
                deferred.append(row)
                continue
            placed.append(row)
            done_at += row[1]
            if done_at > row[0]:
                longest = max(placed, key=lambda r: r[1])
                placed.remove(longest)
                deferred.append(longest)
                done_at -= longest[1]
        cached_first = [r for r in placed if r[2]] + [r for r in placed if not r[2]]
        if _all_on_time(cached_first, now):
            placed = cached_first
        deferred.sort(key=lambda r: r[0])
        scheduler.waiting.clear()
        scheduler.waiting.extend(r[3] for r in placed + deferred)

    def record(self, decision: StepDecision, decode_batch: int, prefill_tokens: int, measured_decode_ms: float | None,
               measured_prefill_ms: list[float] | None = None, prefill_jobs: int = 0) -> None:
        """Counts the step and, with `--trace`, writes its decision, its inputs and what was
        measured: this step's decode and each prefill block that finished since the last step."""
        self.num_steps += 1
        if self.trace is None:
            return
        row = {"step": self.num_steps, "t": self.clock.stamp(), "split": decision.partition.name, "gang": decision.gang,
               "gang_behind": decision.gang_behind, "jumped": decision.jumped,
               "decode_batch": decode_batch, "prefill_tokens": prefill_tokens, "prefill_jobs": prefill_jobs,
               "predicted_decode_ms": decision.predicted_decode_ms, "measured_decode_ms": measured_decode_ms,
               "predicted_prefill_ms": decision.predicted_prefill_ms, "measured_prefill_blocks_ms": measured_prefill_ms or [],
               "decode_budget_ms": decision.decode_budget_ms,
               "host_ms": decision.host_ms, **self.trace_tags}
        self.trace.write(json.dumps(row) + "\n")
        self.trace.flush()
