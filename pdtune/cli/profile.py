"""`pdtune profile`: measure the model on every SM partition and fit the pdmux planner's model."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:.4g}"


def profile(
    model: o.Model = None, load_format: o.LoadFormat = None, dtype: o.Dtype = None, device: o.Device = None,
    max_model_len: Annotated[Optional[int], typer.Option(
        "--max-model-len", help="Context length (default: the longest sample).")] = None,
    batches: Annotated[str, typer.Option(help="Decode batch sizes, comma-separated.")] = "1,16,64",
    contexts: Annotated[str, typer.Option(help="Cached tokens per decoding sequence, comma-separated.")] = "512,2048",
    prefill_tokens: Annotated[str, typer.Option(help="Prefill lengths, comma-separated.")] = "512,2048,8192",
    reused_tokens: Annotated[str, typer.Option(help="Cached prefix under each prefill, comma-separated "
                                                    "(0 and a positive count at least).")] = "0,2048",
    splits: Annotated[Optional[str], typer.Option(help="Prefill/decode SM splits to profile, e.g. 104/28,72/60 "
                                                       "(default: the engine's); a pdmux engine interpolates "
                                                       "the splits between them.")] = None,
    tensor_parallel_size: o.TensorParallelSize = None,
    gang: Annotated[int, typer.Option(help="Prefill layers per timed block (and beside each decode step).")] = 2,
    iters: Annotated[int, typer.Option(help="Timed repetitions per sample (the median is kept).")] = 10,
    out: Annotated[Optional[str], typer.Option("--out", help="JSON of the model (default results/profile-<model>"
                                                         ".json); a CSV of the samples goes beside it.")] = None,
) -> None:
    """Decode and prefill times per SM split, fitted per partition; use the JSON with --perf-model."""
    console = Console()
    with user_errors(console):
        from pdtune.config import build_engine_config
        from pdtune.perf.profile import ProfileConfig, run_profile

        b, c = o.int_list(batches, "batches"), o.int_list(contexts, "contexts")
        p = o.int_list(prefill_tokens, "prefill-tokens")
        r = o.int_list(reused_tokens, "reused-tokens", minimum=0)
        engine = build_engine_config(None, model=model, load_format=load_format, dtype=dtype, device=device,
                                     mode="pdmux", max_model_len=max_model_len or max(max(c) + 1, max(p) + max(r)),
                                     max_num_seqs=max(b), max_num_batched_tokens=max(p),
                                     tensor_parallel_size=tensor_parallel_size,
                                     **({"pdmux_splits": o.split_list(splits)} if splits else {}))
        name = os.path.splitext(os.path.basename(engine.model.rstrip("/")))[0]
        cfg = ProfileConfig(engine, b, c, p, r, gang, iters, out or os.path.join("results", f"profile-{name}.json"))
        with console.status("profiling ..."):
            report = run_profile(cfg)
        table = Table(title=f"{report['model']}, {report['dtype']}, {report['total_sms']} SMs: decode ms = a + b * "
                            "context tokens + c * batch (x contention beside prefill); prefill ms per layer = c0 + "
                            "c1 * tokens + c2 * tokens^2 + c3 * tokens x reused")
        columns = {"a ms": ("decode", "const", 1), "b ms/1k tok": ("decode", "context_tokens", 1e3),
                   "c ms/seq": ("decode", "batch", 1), "c0 ms": ("layer", "const", 1),
                   "c1 ms/1k tok": ("layer", "tokens", 1e3), "c2 ms/M tok^2": ("layer", "square", 1e6),
                   "c3 ms/M tok^2": ("layer", "cross", 1e6)}
        for col in ("P/D SMs", "asked", *columns, "rms ms", "contention"):
            table.add_column(col, justify="right")
        for part in report["partitions"]:
            fits = {"decode": part["decode_fit"], "layer": part["layer_fit"]}
            coef = [_fmt(fits[phase]["coef_ms"][term] if fits[phase] else None, scale)
                    for phase, term, scale in columns.values()]
            rms = "/".join(_fmt(f["rms_residual_ms"]) for f in fits.values() if f)
            table.add_row(part["name"], "/".join(map(str, part["requested"])), *coef, rms,
                          _fmt(part["contention_factor"]))
        console.print(table)
        if report["contention_note"]:
            console.print(f"note: {report['contention_note']}")
        console.print(f"saved {cfg.out} (and the samples as CSV); use it with --perf-model {cfg.out} "
                      f'or {{"engine": {{"perf_model": "{cfg.out}"}}}} in a --config file')
