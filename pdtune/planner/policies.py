"""Step policies: what one engine step runs, given the scheduler's queues."""

from __future__ import annotations

from pdtune.scheduler.scheduler import Scheduler, StepPlan


class SequentialPolicy:
    """Prefill batches first, decode only when no prompt can be admitted (vLLM before chunked prefill).

    Decode stalls while a prefill batch runs: that is the TPOT cost this baseline shows.
    """

    name = "sequential"

    def plan(self, scheduler: Scheduler) -> StepPlan:
        plan = StepPlan()
        scheduler.schedule_waiting(plan, scheduler.max_num_batched_tokens, allow_chunking=False)
        if not plan:
            scheduler.schedule_running(plan, budget=scheduler.max_num_seqs, decode_only=True)
        return plan


class ChunkedPolicy:
    """Sarathi-Serve: every running decode first, then prefill chunks in the leftover token budget."""

    name = "chunked"

    def plan(self, scheduler: Scheduler) -> StepPlan:
        plan = StepPlan()
        budget = scheduler.schedule_running(plan, scheduler.max_num_batched_tokens, decode_only=True)
        budget = scheduler.schedule_running(plan, budget)
        scheduler.schedule_waiting(plan, budget, allow_chunking=True)
        return plan


POLICIES = {p.name: p for p in (SequentialPolicy, ChunkedPolicy)}


def make_policy(mode: str):
    return POLICIES[mode]()
