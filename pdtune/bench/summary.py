"""Per-run figures: throughput, latency percentiles, SLO attainment; and goodput by bisection."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Callable

from pdtune.bench.serve import RequestRecord, RunResult
from pdtune.metrics import latency_summary
from pdtune.model.arch import ModelArch
from pdtune.perf.model_costs import PrefillShape, batch_prefill_flops
from pdtune.slo import SLO, parse_slo


def attainment(result: RunResult, slo: SLO) -> float:
    """Share of all requests (failed ones count as misses) that met every bound of the SLO."""
    return records_attainment(result.records, slo)


def records_attainment(records: list[RequestRecord], slo: SLO) -> float:
    if not records:
        return 0.0
    return sum(r.error is None and slo.met(r.ttft_s, r.tpot_s, r.itl_s) for r in records) / len(records)


def backlog_s(records: list[RequestRecord]) -> float | None:
    """Seconds from the last arrival to the last first token: how far behind its arrivals the
    engine ended the run (None when nothing was served)."""
    firsts = [r.arrival_s + r.ttft_s for r in records if r.error is None and r.ttft_s is not None]
    if not firsts:
        return None
    return max(0.0, max(firsts) - max(r.arrival_s for r in records))


def fell_behind(records: list[RequestRecord], slo: SLO) -> bool:
    """Whether a first token came more than one TTFT SLO after the last arrival. A workload is
    finite: a dispatcher that defers requests it cannot serve in time (fewest-misses) pushes them
    past the last arrival, where serving them delays nobody. A burst of 100 mixed requests at
    672 req/s met the SLO for 91% that way (H200, session 12), a rate no engine sustains. An
    engine that keeps up with a rate has every first token within a TTFT of the last arrival."""
    return backlog_exceeds_ttft(backlog_s(records), slo)


def backlog_exceeds_ttft(backlog: float | None, slo: SLO) -> bool:
    return backlog is not None and backlog > slo.ttft_s


def probe_fell_behind(point: tuple) -> bool:
    """A goodput probe is (rate, attainment, stopped early, fell behind); points saved before the
    check have no fourth field."""
    return len(point) > 3 and bool(point[3])


def probe_passes(point: tuple, target: float) -> bool:
    """A probe passes when it reached the target and kept up with its arrivals."""
    return point[1] >= target and not probe_fell_behind(point)


def slo_misses(records: list[RequestRecord], slo: SLO) -> dict[str, int]:
    """How many requests missed each bound (one may miss several), and how many failed or were
    not served (a probe that stopped early): which bound decides an attainment."""
    counts = {"ttft": 0, "tpot": 0, **({"itl": 0} if slo.itl_s is not None else {}), "unserved": 0}
    for r in records:
        if r.error is not None:
            counts["unserved"] += 1
            continue
        for bound in slo.missed(r.ttft_s, r.tpot_s, r.itl_s):
            counts[bound] += 1
    return counts


def saved_records(report: dict) -> list[list[RequestRecord]]:
    """Each saved run's request records, as the summaries were made from."""
    derived = ("token_times_s",)  # results saved before it was dropped (arrival, TTFT and gaps give it) hold it
    return [[RequestRecord(**{k: v for k, v in r.items() if k not in derived}) for r in run["records"]]
            for run in report["runs"]]


def with_slo_misses(report: dict) -> dict:
    """A saved result whose summaries predate the miss counts, with them computed from its
    records against the SLO it was served at."""
    served = report["config"].get("slo")
    if not served or all("slo_misses" in s for s in report["summaries"]):
        return report
    slo = parse_slo(served)
    summaries = [dict(s, slo_misses=slo_misses(recs, slo)) for s, recs in zip(report["summaries"], saved_records(report))]
    return dict(report, summaries=summaries)


def rescore(report: dict, slo: SLO) -> dict:
    """A saved bench result scored against another SLO from its request records: each run's
    attainment, and each goodput sweep's result as its served probes establish it (a bracket
    taken from an earlier run held for the old SLO, so it is dropped; a probe that stopped early
    counted its unserved requests as misses, so its attainment stays a lower bound, and one
    below the target that its unserved requests could have lifted to it decides nothing)."""
    runs = report["runs"]
    records = saved_records(report)
    shares = [records_attainment(recs, slo) for recs in records]
    summaries = [dict(s, slo=str(slo), slo_attainment=a, slo_misses=slo_misses(recs, slo))
                 for s, a, recs in zip(report["summaries"], shares, records)]
    goodput = {}
    for mode, old in report.get("goodput", {}).items():
        points = [(run["rate"], a, run["extra"].get("stopped_early", False), fell_behind(recs, slo))
                  for run, a, recs, s in zip(runs, shares, records, summaries) if run["mode"] == mode
                  and not (run["extra"].get("stopped_early") and a < old["target"]
                           <= a + s["slo_misses"]["unserved"] / max(len(recs), 1))]
        goodput[mode] = asdict(partial_goodput(points, old["target"]))
    config = dict(report["config"], slo=str(slo), slo_served=report["config"].get("slo"))
    return dict(report, config=config, summaries=summaries, goodput=goodput)


def records_prefill_flops(arch: ModelArch, records: list[RequestRecord]) -> float:
    """The prefill FLOPs of every request: its prompt's tokens after those it found cached. A
    request that failed or went unserved counts its whole prompt too, since the ceiling is about
    the workload's work, not the part this run got to."""
    shape = sum((PrefillShape.single(r.prompt_tokens - r.cached_tokens, r.cached_tokens) for r in records),
                PrefillShape())
    return batch_prefill_flops(arch, shape)


def prefill_ceiling_rate(result: RunResult) -> float | None:
    """The request rate (req/s) at which the run's prefill alone would keep the GPUs' matmuls
    busy at their measured rate: no mode sustains more, so it says how far from what the GPU can
    do a goodput is (a short run can pass it by draining its backlog within one TTFT; the goodput
    table marks that). None without a measured rate (a CPU) or prefill FLOPs."""
    matmul_flops_per_s, flops = result.extra.get("matmul_flops_per_s"), result.extra.get("prefill_flops")
    if not matmul_flops_per_s or not flops:
        return None
    return len(result.records) / (flops / matmul_flops_per_s)


def summarize_run(result: RunResult, slo: SLO | None) -> dict:
    ok = [r for r in result.records if r.error is None]
    out_tokens = sum(r.output_tokens for r in ok)
    summary = {
        "mode": result.mode, "rate": result.rate, "concurrency": result.concurrency,
        "requests": len(result.records), "failed": len(result.records) - len(ok),
        "wall_s": result.wall_s, "request_throughput": len(ok) / result.wall_s if result.wall_s else 0.0,
        "output_tokens_per_s": out_tokens / result.wall_s if result.wall_s else 0.0,
        "prefix_cache_hit_rate": result.prefix_cache_hit_rate, "steps": result.steps,
        "harness_overhead": result.harness_overhead,
        "kernel_compiles": result.extra.get("kernel_compiles"),
        "cuda_mallocs": result.extra.get("cuda_mallocs"),
        "cuda_alloc_retries": result.extra.get("cuda_alloc_retries"),
        "stopped_early": result.extra.get("stopped_early", False),
        "backlog_s": backlog_s(result.records),
        "prefill_ceiling_rate": prefill_ceiling_rate(result),
        "ttft_s": latency_summary([r.ttft_s for r in ok]),
        "tpot_s": latency_summary([r.tpot_s for r in ok if r.tpot_s is not None]),
        "itl_s": latency_summary([x for r in ok for x in r.itl_s]),
        "e2e_s": latency_summary([r.e2e_s for r in ok]),
    }
    if slo is not None:
        summary["slo"] = str(slo)
        summary["slo_attainment"] = attainment(result, slo)
        summary["slo_misses"] = slo_misses(result.records, slo)
    return summary


def repeat_spread(summaries: list[dict], records: list[list[RequestRecord]] | None = None) -> dict[str, dict]:
    """Per mode run more than once at one load: each run's p90 TTFT and TPOT and their spread
    (largest over smallest, minus one), the check that two runs of one seed measure alike. With
    the runs' `records` (aligned with `summaries`), also each later run's median per-request
    change against the first: a drift all requests share (a warm-up the first run paid), where a
    p90's own noise moves a few requests."""
    by_mode: dict[str, list[int]] = {}
    for i, s in enumerate(summaries):
        by_mode.setdefault(s["mode"], []).append(i)
    out = {}
    for mode, indices in by_mode.items():
        if len(indices) < 2:
            continue
        row = {}
        for metric in ("ttft_s", "tpot_s"):
            p90 = [summaries[i][metric]["p90"] for i in indices]
            finite = [x for x in p90 if x is not None and x > 0]
            row[metric] = {"p90": p90, "spread": max(finite) / min(finite) - 1 if len(finite) == len(p90) else None}
            if records is not None:
                first = records[indices[0]]
                row[metric]["median_change"] = [_median_change(first, records[i], metric) for i in indices[1:]]
        out[mode] = row
    return out


def saved_repeat_spread(report: dict) -> dict[str, dict]:
    """`repeat_spread` of a saved result from its request records (results saved before the
    per-request figure have only the p90s)."""
    return repeat_spread(report["summaries"], saved_records(report))


def _median_change(first: list[RequestRecord], later: list[RequestRecord], metric: str) -> float | None:
    """The median over the requests both runs served of later / first - 1 for one latency."""
    base = {r.request_id: getattr(r, metric) for r in first if r.error is None and getattr(r, metric)}
    changes = [getattr(r, metric) / base[r.request_id] - 1 for r in later
               if r.error is None and getattr(r, metric) is not None and r.request_id in base]
    return statistics.median(changes) if changes else None


def against_baseline(summaries: list[dict], baseline: str = "chunked") -> list[dict]:
    """Every run served at a rate the baseline mode was served at too, with its p90 TTFT and TPOT
    against the baseline's there (the mean of the baseline's runs at that rate): what a mode buys
    in latency at a load the baseline carries. Rows in rate order, the baseline's first."""
    at_rate: dict[float, list[dict]] = {}
    for s in summaries:
        if s.get("rate") is not None:
            at_rate.setdefault(round(s["rate"], 6), []).append(s)
    rows = []
    for _, runs in sorted(at_rate.items()):
        base = [s for s in runs if s["mode"] == baseline]
        if not base or len(base) == len(runs):
            continue
        p90 = {m: statistics.fmean(s[m]["p90"] for s in base) for m in ("ttft_s", "tpot_s")}
        for s in sorted(runs, key=lambda s: s["mode"] != baseline):
            row = {"rate": s["rate"], "mode": s["mode"], "slo_attainment": s.get("slo_attainment"),
                   "stopped_early": s.get("stopped_early", False)}
            for m in ("ttft_s", "tpot_s"):
                value = row[f"{m[:-2]}_p90_s"] = s[m]["p90"]
                against = s["mode"] != baseline and p90[m] > 0 and value == value  # NaN: no second token
                row[f"{m[:-2]}_p90_change"] = value / p90[m] - 1 if against else None
            rows.append(row)
    return rows


@dataclass
class GoodputResult:
    goodput: float  # highest rate (req/s) found whose attainment reached the target; 0 if none
    target: float
    points: list[tuple[float, float, bool, bool]]  # (rate, attainment, stopped early, fell behind) of every run made
    failing_rate: float | None = None  # lowest rate tried above `goodput` that missed the target
    complete: bool = True  # False: the search was cut short (the results so far of a sweep in progress)
    bracket: tuple[float, float] | None = None  # (passing, failing) rates taken from an earlier run, not re-served


def goodput_bound(goodput: dict) -> tuple[str, float]:
    """A saved goodput as far as the rates its sweep served establish it: ("< ", R) when no rate
    passed (R the lowest that failed; "0.00" would read as a measured zero), (">= ", G) when none
    failed (the doubling never failed, or the failing end is a `--goodput-bracket` rate taken on
    trust), and ("", G) only when a served pass lies below a served failure. A sweep with no
    probes gives its figure as is."""
    served = {p[0] for p in goodput.get("points", [])}
    good, failing = goodput["goodput"], goodput.get("failing_rate")
    if not served:
        return "", good
    if good not in served and failing is not None:
        return "< ", failing
    if failing is None or failing not in served:
        return ">= ", good
    return "", good


def goodput_ratio_text(goodput: dict, baseline: dict) -> str:
    """One goodput over another as far as their served rates establish both ("-" where the
    bounds leave it open): 13.5 over 8.75 is "1.54x", >= 9.6 over 6.0 ">= 1.60x"."""
    (above, rate), (base_above, base) = goodput_bound(goodput), goodput_bound(baseline)
    if rate <= 0 or base <= 0:
        return "-"
    ratio = f"{rate / base:.2f}x"
    if above == base_above == "":
        return ratio
    if above in ("", ">= ") and base_above in ("", "< "):
        return f">= {ratio}"
    if above in ("", "< ") and base_above in ("", ">= "):
        return f"{'<' if above else '<='} {ratio}"
    return "-"


def goodput_text(goodput: dict) -> str:
    bound, rate = goodput_bound(goodput)
    return f"{bound}{rate:.2f}"


def sustained_at_least(rate: float, num_requests: int, ttft_s: float) -> float:
    """The rate a probe that passed at `rate` shows the engine sustains. It prefilled its
    `num_requests` within one TTFT of the last arrival, so within about N / rate + TTFT seconds:
    an engine sustaining C passes up to C / (1 - C x TTFT / N), which for 100 mixed requests at a
    2 s TTFT is 1.46 C."""
    return rate / (1 + rate * ttft_s / num_requests)


def sustained_text(goodput: dict, num_requests: int, ttft_s: float) -> str:
    """The goodput table's "sustains >=": none where no rate passed."""
    bound, rate = goodput_bound(goodput)
    return "-" if bound == "< " or rate <= 0 else f"{sustained_at_least(rate, num_requests, ttft_s):.2f}"


def failing_text(goodput: dict) -> str:
    """The goodput table's "fails at": the lowest failing rate, marked when the sweep never served
    it (a bracket's end, assumed to fail)."""
    failing = goodput.get("failing_rate")
    if failing is None:
        return "-"
    served = {p[0] for p in goodput.get("points", [])}
    return f"{failing:.2f}" if failing in served or not served else f"{failing:.2f} (bracket)"


def partial_goodput(points: list[tuple], target: float,
                    bracket: tuple[float, float] | None = None) -> GoodputResult:
    """What the probes made so far establish (with a bracket's rates counted as measured): the
    highest passing rate below the lowest failing one."""
    known = list(points) + ([(bracket[0], target, False), (bracket[1], 0.0, False)] if bracket else [])
    failing = min((p[0] for p in known if not probe_passes(p, target)), default=None)
    good = max((p[0] for p in known if probe_passes(p, target) and (failing is None or p[0] < failing)), default=0.0)
    return GoodputResult(good, target, list(points), failing, complete=False, bracket=bracket)


def swept_goodput(points: list[tuple], target: float) -> dict:
    """The goodput a finished set of runs at chosen rates establishes (a rate sweep, or single
    runs joined from several results), as saved results hold it."""
    return asdict(partial_goodput(points, target)) | {"complete": True}


def find_goodput(attainment_at: Callable[[float], tuple[float, bool, bool]], start_rate: float, target: float = 0.9,
                 iterations: int = 5, max_doublings: int = 8,
                 bracket: tuple[float, float] | None = None) -> GoodputResult:
    """Doubles the rate from `start_rate` until attainment drops below `target`, then bisects
    between the last good and first bad rate. Assumes attainment falls as the rate grows.
    `attainment_at` runs a probe: its attainment, whether it stopped early (then below target)
    and whether it fell behind its arrivals (then it fails whatever its attainment).
    A `bracket` (a passing and a failing rate an earlier run measured) skips the doubling: a long
    probe costs minutes of a GPU, and re-serving rates already known buys nothing."""
    points: list[tuple[float, float, bool, bool]] = []

    def run(rate: float) -> bool:
        points.append((rate, *attainment_at(rate)))
        return probe_passes(points[-1], target)

    if bracket is not None:
        good, bad = bracket
        if not 0 <= good < bad:
            raise ValueError(f"goodput bracket needs a passing rate below the failing one, got {bracket}")
    else:
        good, bad = 0.0, None
        rate = start_rate
        for _ in range(max_doublings):
            if run(rate):
                good, rate = rate, rate * 2
            else:
                bad = rate
                break
        if bad is None:
            return GoodputResult(good, target, points)
    for _ in range(iterations):
        mid = (good + bad) / 2
        if run(mid):
            good = mid
        else:
            bad = mid
    return GoodputResult(good, target, points, bad, bracket=bracket)
