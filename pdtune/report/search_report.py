"""Rich display for search: one line per trial (with the best so far) and a table of the best trials."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from pdtune.report.bench_report import LiveBenchProgress
from pdtune.search.runner import TrialRow


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _plan(row: TrialRow) -> str:
    split = "-" if row.split is None else "/".join(map(str, row.split))
    return f"split {split}, gang {row.gang}, prefill {row.prefill_tokens}"


class LiveSearchProgress:
    """Live request progress of each run, then a line per finished trial."""

    def __init__(self, console: Console, trials: int):
        self.console, self.trials, self.done = console, trials, 0

    def run(self, label: str) -> LiveBenchProgress:
        return LiveBenchProgress(self.console, label)

    def trial(self, row: TrialRow, best: TrialRow | None) -> None:
        self.done += 1
        stopped = (" (stopped early)" if row.stopped_early else "") + (" (fell behind)" if row.fell_behind else "")
        best_text = f"; best so far #{best.number}: {_num(best.attainment, '.1%')}" if best is not None else ""
        self.console.print(f"trial {self.done}/{self.trials} (#{row.number}) {_plan(row)}: attainment "
                           f"{_num(row.attainment, '.1%')}{stopped}, p90 TTFT {_num(row.ttft_p90_ms, ',.0f')} ms, "
                           f"p90 TPOT {_num(row.tpot_p90_ms, ',.1f')} ms{best_text}")


def search_table(result: dict, top: int = 5) -> Table:
    """The best finished trials of the study (every machine's; by attainment, then headroom under
    the SLO), and the adaptive policy's run."""
    s = result["search"]
    done = [TrialRow(**t) for t in s["trials"] if t["score"] is not None]
    done.sort(key=lambda r: -r.score)
    notes = (["* stopped early: below the target for certain; unserved requests count as misses"]
             if any(r.stopped_early for r in done) else []) + \
            (["+ fell behind: a first token over one TTFT after the last arrival; ranked below every trial that kept up"]
             if any(r.fell_behind for r in done) else [])
    machines = {r.machine for r in done}
    one_machine = len(machines) == 1  # then named in the title, not on every row
    where = f" on {next(iter(machines)) or 'one machine'}" if one_machine else ""
    table = Table(title=f"search {s['study']}: {s['workload']} at {s['rate']:g} req/s, SLO {s['slo']} "
                        f"({len(done)} trials{where})", caption="\n".join(notes) or None)
    columns = ("trial", "split (P/D)", "gang", "prefill tokens", "attainment", "headroom", "TTFT p90 ms", "TPOT p90 ms")
    for col in columns + (() if one_machine else ("machine",)):
        table.add_column(col, justify="left" if col == "machine" else "right")
    for r in done[:top]:
        table.add_row(str(r.number), "/".join(map(str, r.split)), str(r.gang), str(r.prefill_tokens),
                      f"{r.attainment:.1%}{'*' if r.stopped_early else ''}{'+' if r.fell_behind else ''}",
                      _num(r.headroom, "+.0%"), _num(r.ttft_p90_ms, ",.0f"), _num(r.tpot_p90_ms, ",.1f"),
                      *(() if one_machine else (r.machine or "-",)))
    a = s["adaptive"]
    table.add_row("adaptive", "-", "-", "-", f"{a['attainment']:.1%}", _num(a["headroom"], "+.0%"),
                  _num(a["ttft_p90_ms"], ",.0f"), _num(a["tpot_p90_ms"], ",.1f"),
                  *(() if one_machine else ("this run",)), style="italic")
    return table
