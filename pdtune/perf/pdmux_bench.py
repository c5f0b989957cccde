"""bench-pdmux: per SM split, decode step time alone and beside a concurrent prefill block on the
other partition (the bandwidth-contention slowdown), and prefill layer time; granted SMs reported.
`LaunchTimer` times these through the engine's own pdmux launches, for `profile` too."""

from __future__ import annotations

import json
import os
import statistics

import torch

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.executor.model_runner import StepInputs
from pdtune.executor.partitions import Partition
from pdtune.executor.pdmux import PrefillJob
from pdtune.perf import step_bench
from pdtune.perf.environment import environment
from pdtune.scheduler.scheduler import StepPlan

WARMUP = 2  # samples dropped before the median: the first launches compile and allocate


class LaunchTimer:
    """Times steps through `PdmuxExecutor.launch_step`, so a sample is what the planner observes
    online (decode by its CUDA events, a prefill block by its own), and under tensor parallelism
    every rank runs it (rank 0 sends each launch)."""

    def __init__(self, engine: Engine, iters: int):
        self.executor, self.iters = engine.stepper.executor, iters

    def _job(self, inputs: StepInputs) -> PrefillJob:
        return PrefillJob(StepPlan(), inputs, len(self.executor.model.layers))

    def decode_ms(self, part: Partition, inputs: StepInputs, beside: StepInputs | None = None, gang: int = 0) -> float:
        """Median decode step on the partition's decode SMs, alone or beside the first `gang`
        layers of the prefill `beside` on its prefill SMs (launched after the decode, as the
        engine does)."""
        ex, samples = self.executor, []
        for _ in range(self.iters + WARMUP):
            job = self._job(beside) if beside is not None else None
            launch = ex.launch_step((part, inputs), job, part, gang)
            samples.append(ex.finish_decode(launch)[1])
            if job is not None:
                job.done.synchronize()
        return statistics.median(samples[WARMUP:])

    def layer_ms(self, part: Partition, inputs: StepInputs, gang: int) -> float:
        """Median time per layer of a `gang`-layer block on the partition's prefill SMs, timed
        by its events as the engine times it (after the inputs' upload and the embedding)."""
        ex, samples = self.executor, []
        for _ in range(self.iters + WARMUP):
            job = self._job(inputs)
            ex.launch_step(None, job, part, gang)
            job.done.synchronize()
            samples.append(job.last_block.ms() / gang)
        return statistics.median(samples[WARMUP:])


@torch.inference_mode()
def contention(engine: Engine, batch: int, context: int, prefill_tokens: int, gang: int, iters: int = 10) -> list[dict]:
    timer = LaunchTimer(engine, iters)
    decode = step_bench.decode_step_inputs(engine, batch, context)
    prefill = step_bench.prefill_step_inputs(engine, prefill_tokens)
    rows = []
    for part in engine.stepper.executor.partitions:
        row = {"split": part.name, "requested": list(part.requested), "prefill_sms": part.prefill_sms,
               "decode_sms": part.decode_sms, "batch": batch, "context": context, "prefill_tokens": prefill_tokens}
        if part.decode_sms:
            row["decode_alone_ms"] = timer.decode_ms(part, decode)
        if part.prefill_sms:
            row["prefill_layer_alone_ms"] = timer.layer_ms(part, prefill, gang)
        if part.decode_stream is not None and part.prefill_stream is not None:  # concurrent only on a GPU
            row["decode_with_prefill_ms"] = timer.decode_ms(part, decode, prefill, gang)
            row["slowdown"] = row["decode_with_prefill_ms"] / row["decode_alone_ms"]
        rows.append(row)
    return rows


def run_pdmux_bench(config: EngineConfig, batch: int, context: int, prefill_tokens: int, gang: int, out_dir: str) -> dict:
    engine = Engine(config)
    try:
        step_bench.fill_kv_randomly(engine)
        rows = contention(engine, batch, context, prefill_tokens, gang)
        report = {"environment": environment(), "model": engine.loaded.name, "dtype": str(engine.loaded.dtype),
                  "rows": rows}
    finally:
        engine.close()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench-pdmux.json"), "w") as f:
        json.dump(report, f, indent=1)
    import pandas as pd

    pd.DataFrame(rows).to_csv(os.path.join(out_dir, "bench-pdmux.csv"), index=False)
    return report
