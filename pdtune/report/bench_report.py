"""Rich display for bench: live progress per mode and the final table, one column per run."""

from __future__ import annotations

import statistics
import time

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from pdtune.bench.summary import (against_baseline, failing_text, goodput_bound, goodput_ratio_text, goodput_text,
                                  probe_fell_behind, sustained_text)
from pdtune.metrics import percentile
from pdtune.slo import parse_slo


class LiveBenchProgress:
    """Requests done, current request and token rates, running p90 TTFT and TPOT."""

    # The line is redrawn 4 times a second; recomputing it on every step that finished a request
    # was about half the harness's time per step (results/cpu/harness), whose whole reached 2% of
    # the engine's time on ShareGPT-like runs on the H200.
    REFRESH_S = 0.25

    def __init__(self, console: Console, mode: str):
        self.console, self.mode = console, mode
        self.live = Live(console=console, transient=True, refresh_per_second=1 / self.REFRESH_S)
        self.start = self.last_update = time.perf_counter()

    def update(self, done: int, total: int, records) -> None:
        now = time.perf_counter()
        if not self.live.is_started:
            self.live.start()
            self.start = now
        elif done < total and now - self.last_update < self.REFRESH_S:
            return
        self.last_update = now
        ok = [r for r in records if r.error is None]
        elapsed = max(now - self.start, 1e-9)
        ttft = percentile([r.ttft_s for r in ok], 90) * 1e3 if ok else float("nan")
        tpots = [r.tpot_s for r in ok if r.tpot_s is not None]
        tpot = percentile(tpots, 90) * 1e3 if tpots else float("nan")
        self.live.update(f"[bold]{self.mode}[/]: {done}/{total} requests, {len(ok) / elapsed:.2f} req/s, "
                         f"{sum(r.output_tokens for r in ok) / elapsed:,.0f} out tok/s, "
                         f"p90 TTFT {ttft:,.0f} ms, p90 TPOT {tpot:,.1f} ms")
        if done >= total:
            self.live.stop()


def _ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1e3:,.1f}"


def _rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2f}"


def bench_table(report: dict, title: str | None = None) -> Table:
    table = Table(title=title or f"bench: {report['workload']['name']} ({report['workload']['requests']} requests)")
    table.add_column("")
    runs = report["summaries"]
    for s in runs:
        load = f"{s['rate']:.2f} req/s" if s["rate"] else (f"{s['concurrency']} users" if s["concurrency"] else "trace")
        table.add_column(f"{escape(s['mode'])}\n{load}", justify="right")  # "pdmux [folder]" is no markup tag
    rows = [
        ("requests (failed)", lambda s: f"{s['requests']} ({s['failed']})"),
        ("throughput req/s", lambda s: f"{s['request_throughput']:.2f}"),
    ]
    if any(s.get("prefill_ceiling_rate") is not None for s in runs):  # measured on a GPU only; .get: saved before it
        rows.append(("prefill ceiling req/s", lambda s: _rate(s.get("prefill_ceiling_rate"))))
    rows += [
        ("output tok/s", lambda s: f"{s['output_tokens_per_s']:,.0f}"),
        ("prefix-cache hit rate", lambda s: f"{s['prefix_cache_hit_rate']:.1%}"),
    ]
    for metric in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        for q in ("p50", "p90", "p99"):
            rows.append((f"{metric[:-2].upper()} {q} (ms)", lambda s, m=metric, q=q: _ms(s[m][q])))
    if runs and "slo_attainment" in runs[0]:
        rows.append((f"SLO attainment ({runs[0]['slo']})", lambda s: f"{s['slo_attainment']:.1%}"))
    if runs and "slo_misses" in runs[0]:  # results saved before the breakdown lack it
        bounds = [b for b in runs[0]["slo_misses"] if b != "unserved"]
        rows.append((f"missed {' / '.join(b.upper() for b in bounds)} / failed or unserved",
                     lambda s: " / ".join(str(s.get("slo_misses", {}).get(b, "-")) for b in [*bounds, "unserved"])))
    if any("backlog_s" in s for s in runs):  # absent from results saved before it was measured
        rows.append(("last first token after last arrival (s)",
                     lambda s: "-" if s.get("backlog_s") is None else f"{s['backlog_s']:.2f}"))
    if any(s.get("stopped_early") for s in runs):  # .get: results saved before probes could stop early
        rows.append(("stopped early (unserved = missed)", lambda s: "yes" if s.get("stopped_early") else "no"))
    rows.append(("harness overhead / step", lambda s: f"{s['harness_overhead']:.2%}"))
    for key, label in (("kernel_compiles", "kernel compiles in run"), ("cuda_mallocs", "CUDA mallocs in run"),
                       ("cuda_alloc_retries", "CUDA alloc retries in run")):
        if any(s.get(key) is not None for s in runs):  # counted on a GPU only
            rows.append((label, lambda s, key=key: str(s.get(key, "-"))))
    for name, fn in rows:
        table.add_row(name, *(fn(s) for s in runs))
    return table


LABEL_WIDTH, RUN_WIDTH = 42, 13  # the row labels' column and one run's, as rich draws them


def bench_tables(report: dict, width: int, title: str | None = None) -> list[Table]:
    """`bench_table` cut into tables of as many runs as fit `width` columns: a goodput sweep
    saves 8-16 runs, whose columns rich would otherwise squeeze to one character each."""
    runs = report["summaries"]
    per_table = max(1, (width - LABEL_WIDTH) // RUN_WIDTH)
    if len(runs) <= per_table:
        return [bench_table(report, title)]
    title = title or f"bench: {report['workload']['name']} ({report['workload']['requests']} requests)"
    return [bench_table(dict(report, summaries=runs[i:i + per_table]),
                        f"{title}, runs {i + 1}-{min(i + per_table, len(runs))} of {len(runs)}")
            for i in range(0, len(runs), per_table)]


def repeat_lines(report: dict) -> list[str]:
    """One line per mode served several times at one load: the p90s of each run and their spread."""
    lines = []
    for mode, row in report.get("repeatability", {}).items():
        parts = []
        for metric, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT")):
            p90 = " / ".join(_ms(x) for x in row[metric]["p90"])
            spread = row[metric]["spread"]
            changes = [c for c in row[metric].get("median_change", []) if c is not None]  # saved before: absent
            drift = f"; median request {', '.join(f'{c:+.1%}' for c in changes)} in later runs" if changes else ""
            parts.append(f"p90 {name} {p90} ms (spread {'-' if spread is None else f'{spread:.1%}'}{drift})")
        lines.append(f"{mode}, {len(row['ttft_s']['p90'])} runs of one seed: " + "; ".join(parts))
    return lines


def _stopped(point) -> bool:
    """Whether a goodput probe stopped early; points saved before probes could are (rate, attainment)."""
    return len(point) > 2 and bool(point[2])


def _probe_text(point) -> str:
    return f"{point[0]:.2f}: {point[1]:.1%}{'*' if _stopped(point) else ''}{'+' if probe_fell_behind(point) else ''}"


def _mode_prefill_ceiling(report: dict, mode: str) -> float | None:
    """The median prefill ceiling of a mode's runs (probes at different rates hit the prefix
    cache differently); None when none was measured (a CPU, a result saved before it)."""
    ceilings = [s["prefill_ceiling_rate"] for s in report.get("summaries", [])
                if s["mode"] == mode and s.get("prefill_ceiling_rate") is not None]
    return statistics.median(ceilings) if ceilings else None


def _above_ceiling(goodput: dict, ceiling: float | None) -> bool:
    """Whether a goodput passed the rate its prefill could sustain: a run of a few requests can,
    by draining the backlog within one TTFT of the last arrival, so the figure is not a sustained
    rate (LooGLE's 40 requests at a 10 s TTFT passed 112% of it on the H200)."""
    bound, rate = goodput_bound(goodput)
    return ceiling is not None and bound != "< " and rate > ceiling


def _of_ceiling(goodput: dict, ceiling: float | None) -> str:
    if ceiling is None:
        return "-"
    bound, rate = goodput_bound(goodput)
    return f"{bound}{rate / ceiling:.0%}{'!' if _above_ceiling(goodput, ceiling) else ''}"


def goodput_table(report: dict) -> Table:
    """One row per mode: the goodput (and its share of the runs' prefill ceiling, where measured)
    and the attainment at every rate the sweep tried."""
    points = [p for g in report["goodput"].values() for p in g["points"]]
    served = report["config"].get("slo_served")  # set when `rescore` scored the runs against another SLO
    rescored = f"; rescored, served at {served}" if served else ""
    notes = (["* stopped early: below the target for certain; its unserved requests count as misses"]
             if any(_stopped(p) for p in points) else []) + \
            (["+ fell behind: a first token came over one TTFT after the last arrival, so the probe fails"]
             if any(probe_fell_behind(p) for p in points) else []) + \
            (["(bracket): a --goodput-bracket rate this sweep did not serve, taken as failing"]
             if any(failing_text(g).endswith("(bracket)") for g in report["goodput"].values()) else [])
    notes.append("sustains >=: what the passing probe shows the engine sustains; its requests were all prefilled "
                 "within requests / rate + one TTFT")
    ceilings = {mode: _mode_prefill_ceiling(report, mode) for mode in report["goodput"]}
    notes += (["! above the prefill ceiling: the run ended before its backlog outgrew one TTFT, so the rate is "
               "not sustained; serve more requests to measure one"]
              if any(_above_ceiling(g, ceilings[mode]) for mode, g in report["goodput"].items()) else [])
    table = Table(title=f"goodput ({report['config']['slo']}, attainment >= "
                        f"{next(iter(report['goodput'].values()))['target']:.0%}{rescored})",
                  caption="\n".join(notes))
    table.add_column("mode", no_wrap=True)
    table.add_column("goodput req/s", justify="right")
    measured = any(c is not None for c in ceilings.values())
    if measured:
        table.add_column("of ceiling", justify="right")
    table.add_column("sustains >=", justify="right")
    table.add_column("fails at", justify="right")
    baseline = report["goodput"].get("chunked") if len(report["goodput"]) > 1 else None
    if baseline is not None:
        table.add_column("vs chunked", justify="right")
    table.add_column("rate: attainment")
    num_requests, ttft_s = report["workload"]["requests"], parse_slo(report["config"]["slo"]).ttft_s
    for mode, g in report["goodput"].items():
        cut = "" if g.get("complete", True) or served else " (search cut short)"
        ratio = [] if baseline is None else ["-" if mode == "chunked" else goodput_ratio_text(g, baseline)]
        table.add_row(escape(mode), f"{goodput_text(g)}{cut}", *([_of_ceiling(g, ceilings[mode])] if measured else []),
                      sustained_text(g, num_requests, ttft_s), failing_text(g), *ratio,
                      ", ".join(_probe_text(p) for p in sorted(g["points"])))
    return table


def _change(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}"


def against_baseline_table(report: dict, baseline: str = "chunked") -> Table | None:
    """p90 TTFT and TPOT of each mode against the baseline's at the rates both were served at,
    the baseline's goodput marked: the latency a mode saves at a load the baseline just carries.
    None where no rate had the baseline and another mode."""
    rows = against_baseline(report["summaries"], baseline)
    if not rows:
        return None
    goodput = report.get("goodput", {}).get(baseline)
    bound, carried = goodput_bound(goodput) if goodput else ("< ", 0.0)
    notes = [f"{baseline}'s goodput: {goodput_text(goodput)} req/s"] if goodput else []
    if any(r["stopped_early"] for r in rows):
        notes.append("* stopped early: its p90s are of the requests served before it stopped")
    table = Table(title=f"p90 latency (ms) against {baseline} at the same rate", caption="\n".join(notes) or None)
    for name in ("req/s", "mode", "SLO met", "TTFT p90", f"vs {baseline}", "TPOT p90", f"vs {baseline}"):
        if name == "mode":  # a pdmux@FILE label folds where the terminal is narrow
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, justify="right")
    for r in rows:
        at_goodput = bound == "" and abs(r["rate"] - carried) < 1e-6  # a measured goodput, not a bound
        rate = f"{r['rate']:.2f}{f' ({baseline} goodput)' if at_goodput else ''}"
        met = "-" if r["slo_attainment"] is None else f"{r['slo_attainment']:.1%}{'*' if r['stopped_early'] else ''}"
        table.add_row(rate, escape(r["mode"]), met, _ms(r["ttft_p90_s"]), _change(r["ttft_p90_change"]),
                      _ms(r["tpot_p90_s"]), _change(r["tpot_p90_change"]))
    return table
