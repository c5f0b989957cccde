"""PNG plots of saved results (matplotlib, headless)."""

from __future__ import annotations

import os
from collections import Counter

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pdtune.bench.summary import goodput_text, probe_fell_behind  # noqa: E402


def _save(fig, out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_kernel_bench(result, out_dir: str) -> list[str]:
    """Decode step time vs batch per context with its roofline; prefill throughput vs tokens."""
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for context, long in sorted({(r["context"], r.get("long_context") or 0) for r in result.decode}):
        rows = [r for r in result.decode if r["context"] == context and (r.get("long_context") or 0) == long]
        batches = [r["batch"] for r in rows]
        name = f"context {context}" + (f", first {long}" if long else "")
        line, = ax.plot(batches, [r["graph_ms"] or r["eager_ms"] for r in rows], "o-", label=f"pdtune, {name}")
        ax.plot(batches, [r["roofline_ms"] for r in rows], "--", color=line.get_color(), label=f"roofline, {name}")
        hf = [(r["batch"], r["transformers_ms"]) for r in rows if r.get("transformers_ms")]
        if hf:
            ax.plot(*zip(*hf), "x", color=line.get_color(), markersize=9, label=f"transformers, context {context}")
    ax.set(xscale="log", yscale="log", xlabel="decode batch size", ylabel="step time (ms)",
           title=f"Decode step, {result.model} ({result.dtype})")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir, "decode-step.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    tokens = [r["tokens"] for r in result.prefill]
    ax.plot(tokens, [r["pdtune_tok_s"] for r in result.prefill], "o-", label="pdtune")
    ax.plot(tokens, [r["roofline_tok_s"] for r in result.prefill], "--", label="roofline (FLOPs / measured matmul peak)")
    hf = [(r["tokens"], r["transformers_tok_s"]) for r in result.prefill if r.get("transformers_tok_s")]
    if hf:
        ax.plot(*zip(*hf), "x-", label="transformers (sdpa)")
    ax.set(xscale="log", xlabel="prefill tokens (one sequence)", ylabel="tokens / s",
           title=f"Prefill throughput, {result.model} ({result.dtype})")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir, "prefill-throughput.png"))
    return paths


def _cdf(ax, values, label):
    values = sorted(v for v in values if v is not None)
    if values:
        ax.plot([v * 1e3 for v in values], [(i + 1) / len(values) for i in range(len(values))], label=label)


def runs_to_plot(report: dict) -> dict[str, dict]:
    """One run per mode for the latency plots, labelled with its load: the mode's last run at the
    rate the most modes were served at (the highest, on a tie), so the curves compare at one load
    where they can; a mode never served there shows its last run."""
    served = {(run["mode"], run.get("rate")) for run in report["runs"] if run.get("rate") is not None}
    modes_at = Counter(rate for _, rate in served)
    common = max(modes_at, key=lambda rate: (modes_at[rate], rate), default=None)
    chosen: dict[str, dict] = {}
    for run in report["runs"]:
        if run.get("rate") == common or chosen.get(run["mode"], {}).get("rate") != common:
            chosen[run["mode"]] = run
    return {f"{mode} @ {run['rate']:g} req/s" if run.get("rate") else mode: run for mode, run in chosen.items()}


def plot_bench(report: dict, out_dir: str) -> list[str]:
    """Latency CDFs per mode, SLO attainment vs rate per mode (goodput sweeps), and a timeline
    of TTFT and TPOT over each mode's run."""
    paths = []
    runs = runs_to_plot(report)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for mode, run in runs.items():
        ok = [r for r in run["records"] if r["error"] is None]
        _cdf(axes[0], [r["ttft_s"] for r in ok], mode)
        _cdf(axes[1], [r["tpot_s"] for r in ok], mode)
    for ax, name in zip(axes, ("TTFT", "TPOT")):
        ax.set(xlabel=f"{name} (ms)", ylabel="share of requests", xscale="log", title=f"{name} CDF")
        ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir, "latency-cdf.png"))

    if report.get("goodput"):
        fig, ax = plt.subplots(figsize=(6, 4))
        for mode, gp in report["goodput"].items():
            points = sorted(gp["points"])
            line, = ax.plot([p[0] for p in points], [p[1] for p in points], "o-",
                            label=f"{mode} (goodput {goodput_text(gp)} req/s)")
            behind = [p for p in points if probe_fell_behind(p)]
            if behind:
                ax.plot([p[0] for p in behind], [p[1] for p in behind], "x", color=line.get_color(), markersize=10)
        if any(probe_fell_behind(p) for gp in report["goodput"].values() for p in gp["points"]):
            ax.plot([], [], "x", color="black", label="fell behind its arrivals (fails)")
        target = next(iter(report["goodput"].values()))["target"]
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
        ax.set(xlabel="request rate (req/s)", ylabel="SLO attainment", ylim=(0, 1.05),
               title=f"SLO attainment vs rate ({report['config']['slo']})")
        ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir, "attainment-vs-rate.png"))

    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for mode, run in runs.items():
        ok = [r for r in run["records"] if r["error"] is None]
        axes[0].plot([r["arrival_s"] for r in ok], [r["ttft_s"] * 1e3 for r in ok], ".", label=mode, markersize=3)
        tp = [r for r in ok if r["tpot_s"] is not None]
        axes[1].plot([r["arrival_s"] for r in tp], [r["tpot_s"] * 1e3 for r in tp], ".", label=mode, markersize=3)
    axes[0].set(ylabel="TTFT (ms)", yscale="log", title="Latency over the run (by arrival time)")
    axes[1].set(ylabel="TPOT (ms)", xlabel="arrival (s from start)")
    axes[0].legend(fontsize=8)
    paths.append(_save(fig, out_dir, "timeline.png"))
    return paths
