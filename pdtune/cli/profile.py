"""`pdtune profile`: measure the model on every SM partition and fit the pdmux planner's model."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer
from rich.console import Console

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors


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
    tensor_parallel_size: o.TensorParallelSize = None, block_size: o.BlockSize = None,
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
        from pdtune.report.profile_report import profile_table

        b, c = o.int_list(batches, "batches"), o.int_list(contexts, "contexts")
        p = o.int_list(prefill_tokens, "prefill-tokens")
        r = o.int_list(reused_tokens, "reused-tokens", minimum=0)
        engine = build_engine_config(None, model=model, load_format=load_format, dtype=dtype, device=device,
                                     mode="pdmux", max_model_len=max_model_len or max(max(c) + 1, max(p) + max(r)),
                                     max_num_seqs=max(b), max_num_batched_tokens=max(p),
                                     tensor_parallel_size=tensor_parallel_size, block_size=block_size,
                                     **({"pdmux_splits": o.split_list(splits)} if splits else {}))
        name = os.path.splitext(os.path.basename(engine.model.rstrip("/")))[0]
        cfg = ProfileConfig(engine, b, c, p, r, gang, iters, out or os.path.join("results", f"profile-{name}.json"))
        with console.status("profiling ..."):
            report = run_profile(cfg)
        console.print(profile_table(report))
        if report["contention_note"]:
            console.print(f"note: {report['contention_note']}")
        console.print(f"saved {cfg.out} (and the samples as CSV); use it with --perf-model {cfg.out} "
                      f'or {{"engine": {{"perf_model": "{cfg.out}"}}}} in a --config file')
