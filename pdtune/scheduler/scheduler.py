"""Request queues, KV admission and preemption by recompute; the planner decides what each step runs."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from pdtune.errors import InvalidRequestError, PromptTooLongError
from pdtune.request.sequence import Sequence, Status
from pdtune.scheduler.block_manager import BlockManager


@dataclass
class ScheduledChunk:
    """`num_new_tokens` tokens of `seq` starting at its first uncomputed one."""

    seq: Sequence
    num_new_tokens: int

    @property
    def completes(self) -> bool:
        """Whether this chunk reaches the sequence's last token, so a token is sampled."""
        return self.seq.num_computed_tokens + self.num_new_tokens == len(self.seq)


@dataclass
class StepPlan:
    chunks: list[ScheduledChunk] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)

    @property
    def num_tokens(self) -> int:
        return sum(c.num_new_tokens for c in self.chunks)

    def __bool__(self) -> bool:
        return bool(self.chunks)


def check_prompt_fits(n: int, max_model_len: int, block_size: int, num_blocks: int) -> None:
    """Raises for a prompt that could never be served, whatever else is running."""
    if n == 0:
        raise InvalidRequestError("the prompt is empty")
    if n >= max_model_len:
        raise PromptTooLongError(
            f"the prompt has {n} tokens but the model's context is {max_model_len} tokens (prompt plus at least one output token)"
        )
    need = -(-(n + 1) // block_size)
    if need > num_blocks:
        raise PromptTooLongError(f"the prompt needs {need} KV blocks but the pool has {num_blocks}")


class Scheduler:
    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int, max_model_len: int):
        self.blocks = block_manager
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_model_len = max_model_len
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []  # admitted, holding KV blocks, oldest first
        self.num_preemptions = 0
        self.protected: set[int] = set()  # ids of sequences whose KV is being written elsewhere (pdmux prefill)

    def add(self, seq: Sequence) -> None:
        check_prompt_fits(seq.num_prompt_tokens, self.max_model_len, self.blocks.block_size, self.blocks.num_blocks)
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def _preempt(self, seq: Sequence, plan: StepPlan) -> None:
        """Frees a sequence's KV; it goes back to the front of the queue and recomputes later."""
        self.running.remove(seq)
        self.blocks.free_sequence(seq)
        seq.status = Status.WAITING
        seq.num_computed_tokens = 0
        seq.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(seq)
        plan.preempted.append(seq)

    def schedule_running(self, plan: StepPlan, budget: int, decode_only: bool = False,
                         prefill_only: bool = False) -> int:
        """Schedules the admitted sequences (decodes, then unfinished prefill chunks; or only the
        one or the other) oldest first, preempting the youngest when KV blocks run out. Returns the
        budget left."""
        scheduled = {id(c.seq) for c in plan.chunks}
        for seq in list(self.running):
            if seq.status != Status.RUNNING or id(seq) in scheduled or id(seq) in self.protected or budget <= 0:
                continue
            if seq.awaits_last_token(self.max_model_len):
                continue
            remaining = seq.num_uncomputed_tokens
            if (decode_only and remaining != 1) or (prefill_only and remaining == 1):
                continue
            num_new = min(remaining, budget)
            while not self.blocks.can_append(seq, num_new):
                victim = next((s for s in reversed(self.running) if id(s) not in self.protected), seq)
                self._preempt(victim, plan)
                plan.chunks = [c for c in plan.chunks if c.seq is not victim]
                if victim is seq:
                    break
            if seq.status != Status.RUNNING:
                continue
            self.blocks.append_slots(seq, num_new)
            plan.chunks.append(ScheduledChunk(seq, num_new))
            budget -= num_new
        return budget

    def schedule_waiting(self, plan: StepPlan, budget: int, allow_chunking: bool,
                         admits: Callable[[Sequence], bool] | None = None, max_chunk: int | None = None) -> int:
        """Admits waiting sequences in queue order while KV blocks, seats, the token budget and
        `admits` (a planner's own limit) last. Without chunking a prompt over the budget goes
        alone, whole, or with `max_chunk` cut to that many tokens (its rest follows as prefill
        chunks of `schedule_running`)."""
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if admits is not None and not admits(seq):
                break
            hit = self.blocks.match_prefix(seq)
            remaining = len(seq) - len(hit) * self.blocks.block_size
            if remaining > budget and not allow_chunking and plan.chunks:
                break
            num_new = min(remaining, budget) if allow_chunking else min(remaining, max_chunk or remaining)
            if not self.blocks.can_allocate(seq, num_new, hit):
                break
            self.waiting.popleft()
            self.blocks.allocate(seq, hit)
            self.blocks.append_slots(seq, num_new)
            seq.status = Status.RUNNING
            self.running.append(seq)
            plan.chunks.append(ScheduledChunk(seq, num_new))
            budget -= num_new
        return budget

    def has_unfinished_prefill(self) -> bool:
        """Whether an admitted prompt still has tokens to prefill beyond its last one (which a
        decode step computes) and no step holds it."""
        return any(s.status == Status.RUNNING and s.num_uncomputed_tokens > 1 and id(s) not in self.protected
                   for s in self.running)

    def commit(self, plan: StepPlan, publish: bool = True) -> None:
        """Records the KV the step wrote; called once the step has run (or, overlapped, once the
        tokens it read are on the host). A sequence that finished meanwhile is left alone.
        `publish=False` leaves the blocks it filled unshared until `publish` (the step still runs
        on a stream that other streams' prefills do not wait for)."""
        for chunk in plan.chunks:
            if chunk.seq.status != Status.RUNNING:
                continue
            chunk.seq.num_computed_tokens += chunk.num_new_tokens
        if publish:
            self.publish(plan)

    def publish(self, plan: StepPlan) -> None:
        """Makes the blocks the step filled findable by later prompts (its KV is written)."""
        for chunk in plan.chunks:
            if chunk.seq.status == Status.RUNNING:
                self.blocks.commit_full_blocks(chunk.seq)

    def finish(self, seq: Sequence, reason: str) -> None:
        # Overlapped scheduling may have preempted it while its last token was on the GPU.
        (self.running if seq.status == Status.RUNNING else self.waiting).remove(seq)
        seq.status = Status.FINISHED
        seq.finish_reason = reason
        self.blocks.free_sequence(seq)

    def abort_waiting(self) -> list[Sequence]:
        """Finishes every sequence not admitted yet with reason "abort", so a caller can stop
        early; waiting sequences hold no KV blocks (preemption freed them), so none are freed."""
        aborted = list(self.waiting)
        self.waiting.clear()
        for seq in aborted:
            seq.status = Status.FINISHED
            seq.finish_reason = "abort"
        return aborted
