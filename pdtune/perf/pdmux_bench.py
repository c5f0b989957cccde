"""bench-pdmux: per SM split, decode step time alone and beside a concurrent prefill block on the
other partition (the bandwidth-contention slowdown), and prefill layer time; granted SMs reported."""

from __future__ import annotations

import json
import os

import torch

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.perf import step_bench
from pdtune.perf.environment import environment
from pdtune.perf.timing import time_ms


@torch.inference_mode()
def contention(engine: Engine, batch: int, context: int, prefill_tokens: int, gang: int, iters: int = 10) -> list[dict]:
    ex = engine.stepper.executor
    model = ex.model
    decode = step_bench.decode_inputs(engine, batch, context)
    ids, positions, meta = step_bench.prefill_inputs(engine, prefill_tokens)
    dev = engine.runner.device
    rows = []
    for part in ex.partitions:
        graphs = ex.graphs.get(part.name)
        row = {"split": part.name, "requested": list(part.requested), "prefill_sms": part.prefill_sms,
               "decode_sms": part.decode_sms, "batch": batch, "context": context, "prefill_tokens": prefill_tokens}
        if graphs is not None:
            row["decode_alone_ms"] = time_ms(lambda: graphs.run(*decode), dev, iters=iters)
        if part.prefill_stream is not None:
            hidden = model.embed(ids)

            def layers():
                with torch.cuda.stream(part.prefill_stream):
                    model.forward_layers(hidden, None, positions, meta, 0, gang)
                torch.cuda.current_stream().wait_stream(part.prefill_stream)

            row["prefill_layer_alone_ms"] = time_ms(layers, dev, iters=iters) / gang
        if graphs is not None and part.prefill_stream is not None:
            samples = []
            for _ in range(iters + 2):
                with torch.cuda.stream(part.prefill_stream):
                    model.forward_layers(hidden, None, positions, meta, 0, gang)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(part.decode_stream)
                graphs.run(*decode)
                end.record(part.decode_stream)
                torch.cuda.synchronize()  # benchmark only: both partitions drained between samples
                samples.append(start.elapsed_time(end))
            samples = sorted(samples[2:])
            row["decode_with_prefill_ms"] = samples[len(samples) // 2]
            row["slowdown"] = row["decode_with_prefill_ms"] / row["decode_alone_ms"]
        rows.append(row)
    return rows


def run_pdmux_bench(config: EngineConfig, batch: int, context: int, prefill_tokens: int, gang: int, out_dir: str) -> dict:
    engine = Engine(config)
    step_bench.fill_kv_randomly(engine)
    rows = contention(engine, batch, context, prefill_tokens, gang)
    report = {"environment": environment(), "model": engine.loaded.name, "dtype": str(engine.loaded.dtype), "rows": rows}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench-pdmux.json"), "w") as f:
        json.dump(report, f, indent=1)
    import pandas as pd

    pd.DataFrame(rows).to_csv(os.path.join(out_dir, "bench-pdmux.csv"), index=False)
    return report
