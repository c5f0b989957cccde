"""Rich display for run-batch: a live progress bar and the end-of-run summary table."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pdtune.batch.runner import BatchResult


class RichBatchProgress:
    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]run-batch"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
        )
        self.task = None
        self.tokens = 0
        self.failed = 0
        self.start_time = time.perf_counter()

    def __enter__(self) -> "RichBatchProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def start(self, total: int, already_done: int) -> None:
        self.start_time = time.perf_counter()
        self.task = self.progress.add_task("batch", total=total, completed=already_done, rate="", failed="")
        if already_done:
            self.console.print(f"resuming: {already_done} of {total} results already in the output file")

    def advance(self, completion_tokens: int, failed: bool) -> None:
        self.tokens += completion_tokens
        self.failed += failed
        rate = self.tokens / max(time.perf_counter() - self.start_time, 1e-9)
        self.progress.update(self.task, advance=1, rate=f"{rate:,.1f} tok/s",
                             failed=f"[red]{self.failed} failed" if self.failed else "")

    def model_ready(self) -> None:
        self.start_time = time.perf_counter()  # tokens/s counts serving time, not loading

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")


def _ms(summary: dict[str, float]) -> str:
    return " / ".join(f"{summary[k] * 1e3:,.0f}" if summary[k] == summary[k] else "-" for k in ("p50", "p90", "p99"))


def summary_table(result: BatchResult) -> Table:
    s = result.summary
    table = Table(title="run-batch summary", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("lines in file", f"{result.total_lines}"),
        ("already done (resumed)", f"{result.already_done}"),
        ("requests ok / failed (this run)", f"{s.requests_ok} / {s.requests_failed}"),
        ("prompt / completion tokens", f"{s.prompt_tokens:,} / {s.completion_tokens:,}"),
        ("prefix-cache hit rate", f"{s.prefix_cache_hit_rate:.1%}"),
        ("preemptions", f"{s.preemptions}"),
        ("wall time", f"{s.wall_time_s:,.2f} s"),
        ("throughput", f"{s.output_tokens_per_s:,.1f} out tok/s, {s.total_tokens_per_s:,.1f} tok/s, "
                       f"{s.requests_per_s:,.2f} req/s"),
        ("TTFT p50 / p90 / p99 (ms)", _ms(s.ttft_s)),
        ("TPOT p50 / p90 / p99 (ms)", _ms(s.tpot_s)),
        ("E2E p50 / p90 / p99 (ms)", _ms(s.e2e_s)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table
