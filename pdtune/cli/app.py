"""The `pdtune` command: a Typer root that registers one function per subcommand."""

from __future__ import annotations

import typer

from pdtune.cli.bench import bench
from pdtune.cli.bench_batch import bench_batch
from pdtune.cli.bench_kernels import bench_kernels
from pdtune.cli.bench_pdmux import bench_pdmux
from pdtune.cli.profile import profile
from pdtune.cli.report import report
from pdtune.cli.run_batch import run_batch
from pdtune.cli.search import search

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Benchmark and tune SLO-oriented LLM serving with an in-process PD-multiplexed engine.")
app.command("run-batch")(run_batch)
app.command("bench")(bench)
app.command("report")(report)
app.command("bench-kernels")(bench_kernels)
app.command("bench-batch")(bench_batch)
app.command("bench-pdmux")(bench_pdmux)
app.command("search")(search)
app.command("profile")(profile)


@app.callback()
def main() -> None:
    """Benchmark and tune SLO-oriented LLM serving with an in-process PD-multiplexed engine."""
