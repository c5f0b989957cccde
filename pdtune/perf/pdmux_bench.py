"""bench-pdmux: per SM split, decode step time alone and beside a concurrent prefill block on the
other partition (the bandwidth-contention slowdown), and prefill layer time; granted SMs reported."""

from __future__ import annotations

import json
import os
from typing import Callable

import torch

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.executor.partitions import Partition
from pdtune.perf import step_bench
from pdtune.perf.environment import environment
from pdtune.perf.timing import time_ms


def on_stream(stream: torch.cuda.Stream | None, fn: Callable[[], object]) -> Callable[[], None]:
    """`fn` launched on `stream` after the current stream's work, the current stream then waiting
    for it, so that events on the current stream bracket it; None (a CPU) runs it as it is."""
    if stream is None:
        return fn

    def run():
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            fn()
        torch.cuda.current_stream().wait_stream(stream)

    return run


def partition_decode(engine: Engine, part: Partition, inputs: tuple[torch.Tensor, ...]) -> Callable[[], object]:
    """One decode step on the partition's decode SMs: its CUDA graph where one was captured for
    the batch, else eager (a CPU, `enforce_eager`)."""
    graphs = engine.stepper.executor.graphs.get(part.name)
    if graphs is not None and graphs.bucket(len(inputs[0])) is not None:
        return lambda: graphs.run(*inputs)
    return on_stream(part.decode_stream, step_bench.eager_decode_fn(engine, inputs))


def prefill_block(engine: Engine, tokens: int, gang: int, reused: int = 0) -> Callable[[], object]:
    """The first `gang` layers of one `tokens`-token prefill (after `reused` cached tokens), as
    the engine launches a block."""
    ids, positions, meta = step_bench.prefill_inputs(engine, tokens, reused=reused)
    model = engine.runner.model
    hidden = model.embed(ids)
    return lambda: model.forward_layers(hidden, None, positions, meta, 0, gang)


def decode_beside_prefill_ms(part: Partition, decode: Callable[[], object], block: Callable[[], object],
                             iters: int) -> float:
    """Median decode step time while a prefill block runs on the partition's prefill SMs (GPU)."""
    samples = []
    for _ in range(iters + 2):
        with torch.cuda.stream(part.prefill_stream):
            block()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(part.decode_stream)
        decode()
        end.record(part.decode_stream)
        torch.cuda.synchronize()  # benchmark only: both partitions drained between samples
        samples.append(start.elapsed_time(end))
    samples = sorted(samples[2:])
    return samples[len(samples) // 2]


@torch.inference_mode()
def contention(engine: Engine, batch: int, context: int, prefill_tokens: int, gang: int, iters: int = 10) -> list[dict]:
    ex = engine.stepper.executor
    inputs = step_bench.decode_inputs(engine, batch, context)
    block = prefill_block(engine, prefill_tokens, gang)
    dev = engine.runner.device
    rows = []
    for part in ex.partitions:
        graphs = ex.graphs.get(part.name)
        row = {"split": part.name, "requested": list(part.requested), "prefill_sms": part.prefill_sms,
               "decode_sms": part.decode_sms, "batch": batch, "context": context, "prefill_tokens": prefill_tokens}
        decode = partition_decode(engine, part, inputs)
        if graphs is not None:
            row["decode_alone_ms"] = time_ms(decode, dev, iters=iters)
        if part.prefill_stream is not None:
            row["prefill_layer_alone_ms"] = time_ms(on_stream(part.prefill_stream, block), dev, iters=iters) / gang
        if graphs is not None and part.prefill_stream is not None:
            row["decode_with_prefill_ms"] = decode_beside_prefill_ms(part, decode, block, iters)
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
