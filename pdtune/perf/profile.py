"""`pdtune profile`: measures decode and prefill on every SM partition of a pdmux engine and fits
the performance model (pdtune.perf.perf_model) whose predictions become the planner's priors."""

from __future__ import annotations

import csv
import json
import os
import statistics
from dataclasses import dataclass

import torch

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.errors import PdtuneError
from pdtune.executor.model_runner import StepInputs
from pdtune.executor.partitions import Partition
from pdtune.perf import step_bench
from pdtune.perf.environment import environment
from pdtune.perf.model_costs import PrefillShape
from pdtune.perf.pdmux_bench import LaunchTimer
from pdtune.perf.perf_model import DECODE_TERMS, KIND, LAYER_TERMS, VERSION, PartitionFit, fit_linear, separable

CSV_COLUMNS = ("partition", "prefill_sms", "decode_sms", "phase", "batch", "context", "context_tokens", "alone_ms",
               "beside_prefill_ms", "tokens", "reused", "square", "cross", "layer_ms")
NO_CONTENTION_NOTE = ("no SM partitions run concurrently here (CPU, simulated executor): decode beside prefill "
                      "is not measured (null) and every contention factor is 1.0")


def decode_sample(batch: int, context: int) -> dict:
    """A decode sample's terms (pdtune.perf.perf_model.DECODE_TERMS)."""
    return dict(batch=batch, context=context, context_tokens=batch * context)


def prefill_sample(tokens: int, reused: int) -> dict:
    """A prefill sample's terms (LAYER_TERMS): one sequence, `reused` tokens cached."""
    shape = PrefillShape.single(tokens, reused)
    return dict(tokens=tokens, reused=reused, square=shape.square, cross=shape.cross)


@dataclass(frozen=True)
class ProfileConfig:
    engine: EngineConfig  # mode "pdmux"; its splits are the partitions profiled
    batches: tuple[int, ...] = (1, 16, 64)
    contexts: tuple[int, ...] = (512, 2048)
    prefill_tokens: tuple[int, ...] = (512, 2048, 8192)
    reused_tokens: tuple[int, ...] = (0, 2048)  # cached prefix under each prefill sample
    gang: int = 2  # prefill layers per timed block, and in the block decode runs beside
    iters: int = 10
    out: str = "results/profile.json"  # the CSV of the samples goes beside it

    def __post_init__(self) -> None:
        if self.engine.mode != "pdmux":
            raise PdtuneError(f"profile needs a pdmux engine, got mode {self.engine.mode!r}")
        if self.engine.data_parallel_size > 1:
            raise PdtuneError("profile measures one replica: drop --data-parallel-size (the fit applies to each "
                              "replica of that size)")
        lists = {"batches": self.batches, "contexts": self.contexts, "prefill-tokens": self.prefill_tokens}
        for name, values in lists.items():
            if not values or min(values) < 1:
                raise PdtuneError(f"--{name} takes positive integers, got {list(values)}")
        if not self.reused_tokens or min(self.reused_tokens) < 0:
            raise PdtuneError(f"--reused-tokens takes integers of 0 or more, got {list(self.reused_tokens)}")
        if not separable([decode_sample(b, c) for b in self.batches for c in self.contexts], DECODE_TERMS):
            raise PdtuneError("the decode fit (constant + context tokens + batch) needs two or more --batches and "
                              "two or more --contexts")
        if not separable([prefill_sample(t, r) for t in self.prefill_tokens for r in self.reused_tokens], LAYER_TERMS):
            raise PdtuneError("the prefill fit (constant + tokens + tokens^2 + tokens x reused) needs three or more "
                              "--prefill-tokens and --reused-tokens with 0 and a positive count")
        if self.gang < 1 or self.iters < 1:
            raise PdtuneError("--gang and --iters must be at least 1")


def fit_partition(decode: list[dict], prefill: list[dict]) -> PartitionFit:
    """Decode ms = a + b * context tokens + c * batch; prefill layer ms = c0 + c1 * tokens + c2 *
    tokens^2 + c3 * tokens x reused; contention factor = median of decode beside prefill over
    decode alone (1.0 where never measured). `decode` rows hold their terms, alone_ms and
    beside_prefill_ms (or None); `prefill` rows their terms and layer_ms."""
    ratios = [r["beside_prefill_ms"] / r["alone_ms"] for r in decode if r["beside_prefill_ms"] is not None]
    return PartitionFit(
        fit_linear(decode, [r["alone_ms"] for r in decode], DECODE_TERMS) if decode else None,
        fit_linear(prefill, [r["layer_ms"] for r in prefill], LAYER_TERMS) if prefill else None,
        statistics.median(ratios) if ratios else 1.0,
    )


def _check_fits(engine: Engine, cfg: ProfileConfig) -> None:
    """Every sample must fit the context length and the KV pool (the graphs' widths follow the former)."""
    longest_prefill = max(cfg.prefill_tokens) + max(cfg.reused_tokens)
    longest = max(max(cfg.contexts) + 1, longest_prefill)
    if longest > engine.max_model_len:
        raise PdtuneError(f"the longest sample needs {longest} tokens of context; the engine has "
                          f"{engine.max_model_len}: raise --max-model-len")
    bs = engine.config.block_size
    need = max(max(cfg.batches) * -(-(max(cfg.contexts) + 1) // bs), -(-longest_prefill // bs))
    if need > engine.num_kv_blocks:
        raise PdtuneError(f"the largest sample needs {need * bs} KV tokens; the pool holds "
                          f"{engine.kv_capacity_tokens}: lower --batches, --contexts or --prefill-tokens")


@torch.inference_mode()
def _measure(engine: Engine, part: Partition, cfg: ProfileConfig, gang: int,
             contention: StepInputs) -> tuple[list[dict], list[dict]]:
    """Decode alone (and beside a prefill block where the partitions run concurrently) per
    (batch, context) on its decode SMs; prefill ms per layer per (tokens, reused) on its prefill SMs."""
    timer = LaunchTimer(engine, cfg.iters)
    concurrent = part.prefill_stream is not None and part.decode_stream is not None
    decode, prefill = [], []
    for batch in cfg.batches if part.decode_sms else ():
        for context in cfg.contexts:
            inputs = step_bench.decode_step_inputs(engine, batch, context)
            decode.append(dict(decode_sample(batch, context), alone_ms=timer.decode_ms(part, inputs),
                               beside_prefill_ms=timer.decode_ms(part, inputs, contention, gang) if concurrent else None))
    for tokens in cfg.prefill_tokens if part.prefill_sms else ():
        for reused in cfg.reused_tokens:
            inputs = step_bench.prefill_step_inputs(engine, tokens, reused=reused)
            prefill.append(dict(prefill_sample(tokens, reused), layer_ms=timer.layer_ms(part, inputs, gang)))
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
        contention = step_bench.prefill_step_inputs(engine, max(cfg.prefill_tokens))
        parts, concurrent = [], False
        for part in engine.stepper.executor.partitions:
            decode, prefill = _measure(engine, part, cfg, gang, contention)
            concurrent |= any(r["beside_prefill_ms"] is not None for r in decode)
            parts.append({"name": part.name, "requested": list(part.requested), "prefill_sms": part.prefill_sms,
                          "decode_sms": part.decode_sms, **fit_partition(decode, prefill).to_json(),
                          "samples": {"decode": decode, "prefill": prefill}})
        config = engine.config
        report = {
            "kind": KIND, "version": VERSION, "environment": environment(), "model": engine.loaded.name, "dtype": str(engine.loaded.dtype),
            "device": engine.runner.device.type, "tensor_parallel_size": config.tensor_parallel_size,
            "block_size": config.block_size, "data_parallel_size": config.data_parallel_size, "total_sms": engine.stepper.planner.predictor.total_sms,
            "contention_measured": concurrent, "contention_note": None if concurrent else NO_CONTENTION_NOTE,
            "settings": {"batches": list(cfg.batches), "contexts": list(cfg.contexts),
                         "prefill_tokens": list(cfg.prefill_tokens), "reused_tokens": list(cfg.reused_tokens),
                         "gang": gang, "iters": cfg.iters,
                         "contention_prefill_tokens": max(cfg.prefill_tokens)},
            "partitions": parts,
        }
    finally:
        engine.close()
    _write(report, cfg.out)
    return report
