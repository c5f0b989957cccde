"""`pdtune report`: re-render tables and plots from saved bench results, side by side."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from pdtune.cli.errors import user_errors


def report(
    results: Annotated[list[str], typer.Argument(help="bench.json (or .json.gz) files, or their folders.")],
    out: Annotated[Optional[str], typer.Option("--out", help="Folder for the re-rendered plots.")] = None,
) -> None:
    """Tables of each saved run, then one table comparing them all; plots again with --out."""
    console = Console()
    with user_errors(console):
        import os

        from pdtune.bench.runner import load_bench
        from pdtune.report.bench_report import bench_table, goodput_table
        from pdtune.report.plots import plot_bench

        loaded = [(path, load_bench(path)) for path in results]
        for file, data in loaded:
            console.print(bench_table(data, title=file))
            if data.get("goodput"):
                console.print(goodput_table(data))
        combined = dict(loaded[0][1], summaries=[s for _, d in loaded for s in d["summaries"]],
                        runs=[r for _, d in loaded for r in d["runs"]],
                        goodput={m: g for _, d in loaded for m, g in d.get("goodput", {}).items()})
        if len(loaded) > 1:
            console.print(bench_table(combined, title="all runs side by side"))
        if out:
            os.makedirs(out, exist_ok=True)
            console.print(f"plots: {', '.join(plot_bench(combined, out))}")
