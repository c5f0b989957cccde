"""SLO-aware dispatch across data-parallel replicas: the replica predicted to meet the request's
TTFT and TPOT, preferring the one that holds its cached prefix (multi-turn affinity)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pdtune.model.arch import ModelArch
from pdtune.perf.model_costs import PrefillShape, batch_prefill_flops, kv_bytes_per_token, num_params
from pdtune.perf.perf_model import PerfModel
from pdtune.planner.predictor import H100_COPY_BYTES_PER_S, H100_MATMUL_FLOPS_PER_S
from pdtune.scheduler.block_manager import chain_hash


@dataclass
class ReplicaLoad:
    """What a replica last reported, plus what was sent to it since."""

    waiting_tokens: int = 0  # prompt tokens queued there, not yet prefilled
    running: int = 0  # sequences holding KV
    context_tokens: int = 0  # tokens those sequences hold
    sent_tokens: int = 0  # prompt tokens dispatched since the last report


class StepCost:
    """A whole-GPU replica's prefill and decode times: the fits of a `pdtune profile` model's
    whole-GPU partitions (prefill alone, decode alone) where one is given, else rooflines at the
    replicas' measured copy and matmul rates (the H100's when there is no GPU to measure)."""

    def __init__(self, arch: ModelArch, itemsize: int, copy_bytes_per_s: float = H100_COPY_BYTES_PER_S,
                 matmul_flops_per_s: float = H100_MATMUL_FLOPS_PER_S, perf_model: PerfModel | None = None):
        self.arch, self.itemsize, self.bw, self.rate = arch, itemsize, copy_bytes_per_s, matmul_flops_per_s
        parts = perf_model.partitions.values() if perf_model else ()
        self.prefill_fit = next((p.fit for p in parts if not p.decode_sms), None)
        self.decode_fit = next((p.fit for p in parts if not p.prefill_sms), None)

    def prefill_s(self, shape: PrefillShape) -> float:
        if not shape.tokens:
            return 0.0
        if self.prefill_fit is not None:
            return self.prefill_fit.layer_ms(shape) * self.arch.num_layers / 1e3
        return batch_prefill_flops(self.arch, shape) / self.rate

    def decode_s(self, batch: int, context_tokens: int) -> float:
        if self.decode_fit is not None:
            return self.decode_fit.decode_ms(batch, context_tokens) / 1e3
        return (num_params(self.arch) * self.itemsize + context_tokens * kv_bytes_per_token(self.arch, self.itemsize)) / self.bw


class SLODispatcher:
    def __init__(self, num_replicas: int, block_size: int, cost: StepCost, slo_ttft_s: float, slo_tpot_s: float,
                 cached_blocks_per_replica: int):
        self.loads = [ReplicaLoad() for _ in range(num_replicas)]
        self.block_size, self.cost = block_size, cost
        self.slo_ttft_s, self.slo_tpot_s = slo_ttft_s, slo_tpot_s
        self.capacity = cached_blocks_per_replica
        # prefix block hashes each replica has seen, least recently used first (its cache's likely content)
        self.seen: list[OrderedDict[bytes, None]] = [OrderedDict() for _ in range(num_replicas)]

    def _hashes(self, prompt: list[int]) -> list[bytes]:
        hashes, parent = [], b""
        for i in range(len(prompt) // self.block_size):
            parent = chain_hash(parent, prompt[i * self.block_size:(i + 1) * self.block_size])
            hashes.append(parent)
        return hashes

    def predict(self, replica: int, prompt_len: int, cached_tokens: int) -> tuple[float, float]:
        """(TTFT, TPOT) the request would see on `replica` given its queue (each queued prompt
        taken to be as long as this one: only their token count is known) and decode batch."""
        load, cost = self.loads[replica], self.cost
        queued = load.waiting_tokens + load.sent_tokens
        queue = PrefillShape(queued, queued * min(queued, prompt_len))
        ttft = cost.prefill_s(queue) + cost.prefill_s(PrefillShape.single(prompt_len - cached_tokens, cached_tokens)) + \
            cost.decode_s(load.running, load.context_tokens)
        tpot = cost.decode_s(load.running + 1, load.context_tokens + prompt_len)
        return ttft, tpot

    def choose(self, prompt: list[int]) -> int:
        hashes = self._hashes(prompt)
        rows = []
        for r, seen in enumerate(self.seen):
            cached = next((i for i, h in enumerate(hashes) if h not in seen), len(hashes)) * self.block_size
            ttft, tpot = self.predict(r, len(prompt), cached)
            meets = ttft <= self.slo_ttft_s and tpot <= self.slo_tpot_s
            rows.append((not meets, -cached if meets else ttft, ttft, r))
        replica = min(rows)[3]
        seen = self.seen[replica]
        for h in hashes:
            seen[h] = None
            seen.move_to_end(h)
        while len(seen) > self.capacity:
            seen.popitem(last=False)
        self.loads[replica].sent_tokens += len(prompt)
        return replica

    def report(self, replica: int, waiting_tokens: int, running: int, context_tokens: int) -> None:
        self.loads[replica] = ReplicaLoad(waiting_tokens, running, context_tokens, 0)
