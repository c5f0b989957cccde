"""`pdtune report`: re-render tables and plots from saved results (bench runs side by side)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from pdtune.cli.errors import user_errors


def report(
    results: Annotated[list[str], typer.Argument(help="bench.json (or .json.gz) files or their folders, search "
                                                      "configs, profile models, pdmux traces (.jsonl, .jsonl.gz).")],
    out: Annotated[Optional[str], typer.Option(
        "--out", help="Folder for the re-rendered plots, the runs' summary and goodput as CSV and JSON, and the "
                      "traces' summary as CSV.")] = None,
    slo: Annotated[Optional[str], typer.Option(
        help="Score the saved bench runs against this SLO instead, from their request records "
             "(e.g. ttft=2s,tpot=30ms,itl=50ms).")] = None,
) -> None:
    """Tables of each saved result (a trace: what the planner chose, per run); bench runs then side by side in one
    table, plotted and saved with --out."""
    console = Console()
    with user_errors(console):
        import os

        from pdtune.bench.summary import rescore, saved_repeat_spread, with_slo_misses
        from pdtune.report.bench_report import against_baseline_table, bench_tables, goodput_table, repeat_lines
        from pdtune.report.plots import plot_bench
        from pdtune.report.profile_report import profile_table
        from pdtune.report.saved import combine_benches, load_saved, save_combined
        from pdtune.report.search_report import search_table
        from pdtune.report.trace_report import save_trace_summaries, summarize_trace, trace_table
        from pdtune.slo import parse_slo

        rescored = parse_slo(slo) if slo else None
        loaded = [(path, kind, with_slo_misses(data) if kind == "bench" else data)
                  for path, kind, data in ((path, *load_saved(path)) for path in results)]
        if rescored is not None:
            loaded = [(path, kind, rescore(data, rescored) if kind == "bench" else data) for path, kind, data in loaded]
        benches = [(path, data) for path, kind, data in loaded if kind == "bench"]
        traces = {path: summarize_trace(data) for path, kind, data in loaded if kind == "trace"}
        for file, kind, data in loaded:
            if kind == "profile":
                console.print(profile_table(data))
            elif kind == "search":
                console.print(search_table(data))
            elif kind == "trace":
                console.print(trace_table(traces[file], file))
            else:
                console.print(*bench_tables(data, console.width, title=file))
                if data.get("goodput"):
                    console.print(goodput_table(data))
                if (against := against_baseline_table(data)) is not None:
                    console.print(against)
                if data.get("repeatability"):
                    data = dict(data, repeatability=saved_repeat_spread(data))
                for line in repeat_lines(data):
                    console.print(line)
        saved = [save_trace_summaries(traces, out)] if out and traces else []
        if benches:
            combined = combine_benches(benches)
            if len(benches) > 1:
                console.print(*bench_tables(combined, console.width, title="all runs side by side"))
                if combined["goodput"]:
                    console.print(goodput_table(combined))
                if (against := against_baseline_table(combined)) is not None:
                    console.print(against)
            if out:
                os.makedirs(out, exist_ok=True)
                saved += save_combined(combined, out) + plot_bench(combined, out)
        if saved:
            console.print(f"saved: {', '.join(saved)}")
