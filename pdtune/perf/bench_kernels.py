"""bench-kernels: decode step time vs batch and context, prefill throughput vs tokens, each beside
its roofline and beside `transformers` measured in the same run."""

from __future__ import annotations

import gc
import json
import os
from dataclasses import asdict, dataclass, field

import torch

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.errors import PdtuneError
from pdtune.perf import hf_baseline, step_bench
from pdtune.perf.environment import environment
from pdtune.perf.model_costs import decode_bytes, num_params, prefill_flops
from pdtune.perf.timing import measure_ceilings


@dataclass(frozen=True)
class KernelBenchConfig:
    engine: EngineConfig
    batches: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256)
    contexts: tuple[int, ...] = (1024, 4096, 16384)
    prefill_tokens: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384)
    hf_decode_points: tuple[tuple[int, int], ...] = ((1, 1024), (64, 1024))
    # Also time each batch (of 2 or more) with its first sequence this long: the straggler case
    # of a serving mix, where one long context must not leave the other SMs idle.
    long_context: int | None = None
    compare_transformers: bool = True
    out_dir: str = "results/bench-kernels"


@dataclass
class KernelBenchResult:
    environment: dict
    model: str
    params: int
    dtype: str
    kv_capacity_tokens: int
    ceilings: dict
    decode: list[dict] = field(default_factory=list)
    prefill: list[dict] = field(default_factory=list)


def _decode_row(engine: Engine, batch: int, context: int, ceil, itemsize: int,
                long_context: int | None = None) -> dict | None:
    graph_ms = step_bench.decode_step_ms(engine, batch, context, True, long_context)
    if graph_ms is None and engine.runner.graphs is not None:
        return None  # does not fit the KV pool (or the graph buckets)
    eager_ms = step_bench.decode_step_ms(engine, batch, context, False, long_context)
    if eager_ms is None:
        return None
    steady_ms = step_bench.decode_step_ms(engine, batch, context, graph_ms is not None, long_context, back_to_back=True)
    graphs = engine.runner.graphs
    libraries = graphs.gemm_libraries.get(graphs.bucket(batch), {}) if graph_ms is not None else {}
    kv_tokens = batch * context if long_context is None else (batch - 1) * context + long_context
    floor_ms = decode_bytes(engine.loaded.arch, itemsize, 1, kv_tokens) / ceil.copy_bytes_per_s * 1e3
    return dict(batch=batch, context=context, long_context=long_context, graph_ms=graph_ms, eager_ms=eager_ms,
                roofline_ms=floor_ms, graph_over_roofline=(graph_ms or eager_ms) / floor_ms,
                back_to_back_ms=steady_ms, back_to_back_over_roofline=steady_ms / floor_ms,
                gemm_libraries=",".join(f"{name}:{lib}" for name, lib in libraries.items()) or None)


def _decode_rows(engine: Engine, cfg: KernelBenchConfig, ceil, itemsize: int) -> list[dict]:
    points = [(b, c, None) for c in cfg.contexts for b in cfg.batches]
    if cfg.long_context is not None:
        points += [(b, c, cfg.long_context) for c in cfg.contexts for b in cfg.batches if b > 1]
    rows = [_decode_row(engine, b, c, ceil, itemsize, long) for b, c, long in points]
    return [r for r in rows if r is not None]


def _prefill_rows(engine: Engine, cfg: KernelBenchConfig, ceil) -> list[dict]:
    rows = []
    for tokens in cfg.prefill_tokens:
        ms = step_bench.prefill_ms(engine, tokens)
        if ms is None:
            continue
        paged_ms = step_bench.prefill_ms(engine, tokens, fresh=False)
        floor_ms = prefill_flops(engine.loaded.arch, tokens) / ceil.matmul_flops_per_s * 1e3
        rows.append(dict(tokens=tokens, pdtune_ms=ms, pdtune_tok_s=tokens / ms * 1e3, paged_kernel_ms=paged_ms,
                         roofline_ms=floor_ms, roofline_tok_s=tokens / floor_ms * 1e3))
    return rows


def _add_transformers(result: KernelBenchResult, hf_cfg: dict, cfg: KernelBenchConfig, dtype, device) -> None:
    model = hf_baseline.build_hf_model(hf_cfg, dtype, device)
    for row in result.prefill:
        try:
            ms = hf_baseline.hf_prefill_ms(model, row["tokens"], device)
            row.update(transformers_ms=ms, transformers_tok_s=row["tokens"] / ms * 1e3,
                       speedup_vs_transformers=ms / row["pdtune_ms"])
        except torch.OutOfMemoryError:
            row.update(transformers_ms=None)
            torch.cuda.empty_cache()
    for batch, context in cfg.hf_decode_points:
        row = next((r for r in result.decode if r["batch"] == batch and r["context"] == context
                    and r["long_context"] is None), None)
        if row is None:
            continue
        ms = hf_baseline.hf_decode_step_ms(model, batch, context, device)
        row.update(transformers_ms=ms, speedup_vs_transformers=ms / (row["graph_ms"] or row["eager_ms"]))
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _check_lengths(cfg: KernelBenchConfig, max_model_len: int) -> None:
    """A decode step at context c holds c + 1 tokens; none may pass the engine's context."""
    longest = max([*cfg.contexts, cfg.long_context or 0]) + 1
    if longest > max_model_len or max(cfg.prefill_tokens) > max_model_len:
        raise PdtuneError(f"bench-kernels: contexts (+1 token), --long-context and --prefill-tokens must fit "
                          f"--max-model-len {max_model_len}; the longest asks {max(longest, max(cfg.prefill_tokens))}")


def run_kernel_bench(cfg: KernelBenchConfig) -> KernelBenchResult:
    engine = Engine(cfg.engine)
    _check_lengths(cfg, engine.max_model_len)
    loaded = engine.loaded
    device, dtype = loaded.device, loaded.dtype
    ceil = measure_ceilings(device, dtype)
    step_bench.fill_kv_randomly(engine)
    result = KernelBenchResult(
        environment=environment(), model=loaded.name, params=num_params(loaded.arch), dtype=str(dtype),
        kv_capacity_tokens=engine.kv_capacity_tokens, ceilings=asdict(ceil),
    )
    result.decode = _decode_rows(engine, cfg, ceil, dtype.itemsize)
    result.prefill = _prefill_rows(engine, cfg, ceil)
    hf_cfg = engine.loaded.hf_config
    del engine, loaded
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if cfg.compare_transformers:
        _add_transformers(result, hf_cfg, cfg, dtype, device)
    save(result, cfg.out_dir)
    return result


def save(result: KernelBenchResult, out_dir: str) -> list[str]:
    import pandas as pd

    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, n) for n in ("bench-kernels.json", "decode.csv", "prefill.csv")]
    with open(paths[0], "w") as f:
        json.dump(asdict(result), f, indent=1)
    pd.DataFrame(result.decode).to_csv(paths[1], index=False)
    pd.DataFrame(result.prefill).to_csv(paths[2], index=False)
    from pdtune.report.plots import plot_kernel_bench

    return paths + plot_kernel_bench(result, out_dir)
