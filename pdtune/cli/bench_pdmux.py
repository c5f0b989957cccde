"""`pdtune bench-pdmux`: decode step time per SM split, alone and beside a concurrent prefill."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors


def bench_pdmux(
    model: Annotated[str, typer.Option("--model", "-m", help="Model folder, .gguf file or preset.")] = "llama-3.1-8b",
    load_format: o.LoadFormat = "dummy", dtype: o.Dtype = None, max_model_len: o.MaxModelLen = 8192,
    batch: Annotated[int, typer.Option(help="Decode batch size.")] = 64,
    context: Annotated[int, typer.Option(help="Cached tokens per decoding sequence.")] = 1024,
    prefill_tokens: Annotated[int, typer.Option(help="Tokens of the concurrent prefill.")] = 4096,
    gang: Annotated[int, typer.Option(help="Prefill layers launched beside each decode step.")] = 2,
    out: Annotated[str, typer.Option("--out", help="Folder for JSON and CSV results.")] = "results/bench-pdmux",
) -> None:
    """Per split: granted SMs, decode alone vs beside prefill (slowdown), prefill layer time."""
    console = Console()
    with user_errors(console):
        from pdtune.config import build_engine_config
        from pdtune.perf.pdmux_bench import run_pdmux_bench

        config = build_engine_config(None, model=model, load_format=load_format, dtype=dtype, mode="pdmux",
                                     max_model_len=max_model_len, max_num_seqs=max(batch, 1),
                                     max_num_batched_tokens=prefill_tokens)
        with console.status("benchmarking ..."):
            report = run_pdmux_bench(config, batch, context, prefill_tokens, gang, out)
        table = Table(title=f"{report['model']}: decode batch {batch} x {context} tokens, prefill {prefill_tokens} tokens")
        for col in ("split (P/D SMs)", "asked", "decode alone ms", "decode + prefill ms", "slowdown", "prefill ms/layer"):
            table.add_column(col, justify="right")
        fmt = lambda r, k: "-" if r.get(k) is None else f"{r[k]:.3f}"  # noqa: E731
        for r in report["rows"]:
            table.add_row(r["split"], "/".join(map(str, r["requested"])), fmt(r, "decode_alone_ms"),
                          fmt(r, "decode_with_prefill_ms"), fmt(r, "slowdown"), fmt(r, "prefill_layer_alone_ms"))
        console.print(table)
