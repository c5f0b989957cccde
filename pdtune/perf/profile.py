"""`pdtune profile`: measures decode and prefill on every SM partition of a pdmux engine and fits
the performance model (pdtune.perf.perf_model) whose predictions become the planner's priors."""

from __future__ import annotations

import csv
import json
import os
import statistics
from dataclasses import dataclass
from typing import Callable

import torch

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.errors import PdtuneError
from pdtune.executor.partitions import Partition
from pdtune.perf import step_bench
from pdtune.perf.environment import environment
from pdtune.perf.model_costs import decode_bytes, prefill_flops
from pdtune.perf.pdmux_bench import decode_beside_prefill_ms, on_stream, partition_decode, prefill_block
from pdtune.perf.perf_model import KIND, PartitionFit, fit_line
from pdtune.perf.timing import time_ms

CSV_COLUMNS = ("partition", "prefill_sms", "decode_sms", "phase", "batch", "context", "bytes", "alone_ms",
               "beside_prefill_ms", "tokens", "flops_per_layer", "layer_ms")
NO_CONTENTION_NOTE = ("no SM partitions run concurrently here (CPU, simulated executor): decode beside prefill "
                      "is not measured (null) and every contention factor is 1.0")


@dataclass(frozen=True)
class ProfileConfig:
    engine: EngineConfig  # mode "pdmux"; its splits are the partitions profiled
    batches: tuple[int, ...] = (1, 16, 64)
    contexts: tuple[int, ...] = (512, 2048)
    prefill_tokens: tuple[int, ...] = (512, 2048, 8192)
    gang: int = 2  # prefill layers per timed block, and in the block decode runs beside
    iters: int = 10
    out: str = "results/profile.json"  # the CSV of the samples goes beside it

    def __post_init__(self) -> None:
        if self.engine.mode != "pdmux":
            raise PdtuneError(f"profile needs a pdmux engine, got mode {self.engine.mode!r}")
        if self.engine.tensor_parallel_size > 1 or self.engine.data_parallel_size > 1:
            # its timing loops drive rank 0's model directly; the other ranks would wait forever
            raise PdtuneError("profile measures one process on one GPU; profiling tensor- or data-parallel "
                              "engines is not built")
        lists = {"batches": self.batches, "contexts": self.contexts, "prefill-tokens": self.prefill_tokens}
        for name, values in lists.items():
            if not values or min(values) < 1:
                raise PdtuneError(f"--{name} takes positive integers, got {list(values)}")
        # Each line needs two distinct x: decode's bytes grow with batch x context.
        if len({b * c for b in self.batches for c in self.contexts}) < 2:
            raise PdtuneError("the decode fit needs two or more distinct batch x context products")
        if len(set(self.prefill_tokens)) < 2:
            raise PdtuneError("the prefill fit needs two or more distinct --prefill-tokens")
        if self.gang < 1 or self.iters < 1:
            raise PdtuneError("--gang and --iters must be at least 1")


def fit_partition(decode: list[dict], prefill: list[dict]) -> PartitionFit:
    """Decode ms = a + b * bytes read; layer ms = c + d * FLOPs per layer; contention factor =
    median of decode beside prefill over decode alone (1.0 where never measured). `decode` rows
    hold bytes, alone_ms and beside_prefill_ms (or None); `prefill` rows flops_per_layer, layer_ms."""
    ratios = [r["beside_prefill_ms"] / r["alone_ms"] for r in decode if r["beside_prefill_ms"] is not None]
    return PartitionFit(
        fit_line([r["bytes"] for r in decode], [r["alone_ms"] for r in decode]) if decode else None,
        fit_line([r["flops_per_layer"] for r in prefill], [r["layer_ms"] for r in prefill]) if prefill else None,
        statistics.median(ratios) if ratios else 1.0,
    )


def _check_fits(engine: Engine, cfg: ProfileConfig) -> None:
    """Every sample must fit the context length and the KV pool (the graphs' widths follow the former)."""
    longest = max(max(cfg.contexts) + 1, max(cfg.prefill_tokens))
    if longest > engine.max_model_len:
        raise PdtuneError(f"the longest sample needs {longest} tokens of context; the engine has "
                          f"{engine.max_model_len}: raise --max-model-len")
    bs = engine.config.block_size
    need = max(max(cfg.batches) * -(-(max(cfg.contexts) + 1) // bs), -(-max(cfg.prefill_tokens) // bs))
    if need > engine.num_kv_blocks:
        raise PdtuneError(f"the largest sample needs {need * bs} KV tokens; the pool holds "
                          f"{engine.kv_capacity_tokens}: lower --batches, --contexts or --prefill-tokens")


@torch.inference_mode()
def _measure(engine: Engine, part: Partition, cfg: ProfileConfig, gang: int,
             contention_block: Callable[[], object]) -> tuple[list[dict], list[dict]]:
    """Decode alone (and beside a prefill block where the partitions run concurrently) per
    (batch, context) on its decode SMs; prefill ms per layer per token count on its prefill SMs."""
    arch, itemsize, dev = engine.loaded.arch, engine.loaded.dtype.itemsize, engine.runner.device
    concurrent = part.prefill_stream is not None and part.decode_stream is not None
    decode, prefill = [], []
    for batch in cfg.batches if part.decode_sms else ():
        for context in cfg.contexts:
            step = partition_decode(engine, part, step_bench.decode_inputs(engine, batch, context))
            decode.append(dict(batch=batch, context=context, bytes=decode_bytes(arch, itemsize, batch, context),
                               alone_ms=time_ms(step, dev, iters=cfg.iters),
                               beside_prefill_ms=decode_beside_prefill_ms(part, step, contention_block, cfg.iters)
                               if concurrent else None))
    for tokens in cfg.prefill_tokens if part.prefill_sms else ():
        block = on_stream(part.prefill_stream, prefill_block(engine, tokens, gang))
        prefill.append(dict(tokens=tokens, flops_per_layer=prefill_flops(arch, tokens) / arch.num_layers,
                            layer_ms=time_ms(block, dev, iters=cfg.iters) / gang))
    return decode, prefill


def _write(report: dict, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    rows = [{"partition": p["name"], "prefill_sms": p["prefill_sms"], "decode_sms": p["decode_sms"], "phase": phase,
             **sample} for p in report["partitions"] for phase in ("decode", "prefill")
            for sample in p["samples"][phase]]
    with open(os.path.splitext(path)[0] + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def run_profile(cfg: ProfileConfig) -> dict:
    """Profiles every partition of one pdmux engine (the mixed splits, decode alone, prefill
    alone), fits each, and saves the model as JSON (plus a CSV of the samples); returns the JSON."""
    engine = Engine(cfg.engine)
    try:
        _check_fits(engine, cfg)
        step_bench.fill_kv_randomly(engine)
        gang = min(cfg.gang, engine.loaded.arch.num_layers)
        with torch.inference_mode():
            contention_block = prefill_block(engine, max(cfg.prefill_tokens), gang)
        parts, concurrent = [], False
        for part in engine.stepper.executor.partitions:
            decode, prefill = _measure(engine, part, cfg, gang, contention_block)
            concurrent |= any(r["beside_prefill_ms"] is not None for r in decode)
            parts.append({"name": part.name, "requested": list(part.requested), "prefill_sms": part.prefill_sms,
                          "decode_sms": part.decode_sms, **fit_partition(decode, prefill).to_json(),
                          "samples": {"decode": decode, "prefill": prefill}})
        config = engine.config
        report = {
            "kind": KIND, "environment": environment(), "model": engine.loaded.name, "dtype": str(engine.loaded.dtype),
            "device": engine.runner.device.type, "tensor_parallel_size": config.tensor_parallel_size,
            "data_parallel_size": config.data_parallel_size, "total_sms": engine.stepper.planner.predictor.total_sms,
            "contention_measured": concurrent, "contention_note": None if concurrent else NO_CONTENTION_NOTE,
            "settings": {"batches": list(cfg.batches), "contexts": list(cfg.contexts),
                         "prefill_tokens": list(cfg.prefill_tokens), "gang": gang, "iters": cfg.iters,
                         "contention_prefill_tokens": max(cfg.prefill_tokens)},
            "partitions": parts,
        }
    finally:
        engine.close()
    _write(report, cfg.out)
    return report
