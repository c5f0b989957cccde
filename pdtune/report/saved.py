"""Reads any result pdtune saves (bench folder or JSON, search config, profile model) for `report`."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import MISSING, fields

from pdtune.bench.runner import load_bench
from pdtune.bench.summary import (against_baseline, backlog_exceeds_ttft, failing_text, goodput_bound,
                                  goodput_ratio_text, swept_goodput)
from pdtune.config import EngineConfig, prefill_jump_name
from pdtune.errors import InputFileError
from pdtune.perf.perf_model import KIND as PERF_MODEL_KIND
from pdtune.report.trace_report import is_trace, read_trace
from pdtune.slo import parse_slo


def load_saved(path: str) -> tuple[str, dict | list]:
    """("bench" | "search" | "profile" | "trace", its data; a trace's rows); anything else is a
    clear error naming the file."""
    if is_trace(path):
        return "trace", read_trace(path)
    if os.path.isfile(path) and path.endswith(".json"):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputFileError(f"{path}: not a readable pdtune result ({exc})") from None
        if isinstance(data, dict) and data.get("kind") == PERF_MODEL_KIND:
            return "profile", data
        if isinstance(data, dict) and isinstance(data.get("search"), dict) and data["search"].get("kind") == "pdtune-search":
            return "search", data
    return "bench", load_bench(path)


def _result_name(path: str) -> str:
    """A saved bench result's folder name (its own, or the folder of its JSON file)."""
    path = os.path.normpath(path)
    return os.path.basename(os.path.dirname(path) if path.endswith((".json", ".json.gz")) else path)


# What a result saved before an engine setting existed ran with: the setting's default, which is
# what the code did before it (new settings come in off), but for those that came in on
_ENGINE_DEFAULTS = {f.name: f.default if f.default is not MISSING else f.default_factory()
                    for f in fields(EngineConfig) if f.default is not MISSING or f.default_factory is not MISSING}
_ENGINE_DEFAULTS.update(pdmux_prefill_behind=False, pdmux_jump_batch=False,  # on since session 24's runs
                        pdmux_spare_none_lost=False)  # on since session 25

# Bench settings that vary between runs of one setup: the load and how it was searched.
_PER_RUN = ("rate", "concurrency", "goodput", "goodput_iterations", "goodput_bracket", "save_workload", "repeat", "modes")

# Engine settings only pdmux reads: a chunked run served beside pdmux modes (given --perf-model for
# them) is the same setup as one served alone
_PDMUX_ONLY = tuple(f.name for f in fields(EngineConfig) if f.name.startswith("pdmux_")) + ("dispatch",)


def _shown_mode(data: dict, mode: str) -> tuple[str, dict]:
    """A mode as the report shows it, and the planner settings its runs recorded that its label
    hides: "pdmux@FILE" is "pdmux" with the file's settings, so it joins pdmux runs given the
    same settings as flags (a result saved before runs recorded them keeps its label)."""
    if "@" not in mode:
        return mode, {}
    settings = next((r.get("extra", {}).get("planner", {}).get("settings") for r in data["runs"] if r["mode"] == mode),
                    None)
    return ("pdmux", settings) if settings else (mode, {})


def _setup(data: dict, mode: str) -> tuple[str, str]:
    """The mode as shown (`_shown_mode`) and what makes its runs from two saved results runs of
    the same setup: the engine and workload configs and the GPU, bar the load, the goodput search,
    where files were written and, for a mode other than pdmux, the settings only pdmux reads (a
    profile is told by its file name; a setting the result predates counts at its default; a
    `pdmux@FILE` run's are the file's)."""
    config = {"simulate": False, **{k: v for k, v in data["config"].items() if k not in _PER_RUN and k != "engine"}}
    shown, settings = _shown_mode(data, mode)
    engine = {**_ENGINE_DEFAULTS, **data["config"].get("engine", {}), "trace_path": None, **settings}
    if not mode.startswith("pdmux"):
        single = engine.get("data_parallel_size", 1) == 1  # replicas' dispatcher reads the profile too
        engine = {k: v for k, v in engine.items() if k not in _PDMUX_ONLY and not (single and k == "perf_model")}
    if engine.get("perf_model"):
        engine["perf_model"] = os.path.basename(engine["perf_model"])
    if "pdmux_prefill_jump" in engine:
        engine["pdmux_prefill_jump"] = prefill_jump_name(engine["pdmux_prefill_jump"])
    return shown, json.dumps([config, engine, data.get("environment", {}).get("gpu")], sort_keys=True, default=str)


def _single_run_point(summary: dict) -> tuple | None:
    """A run served at one rate as a goodput probe: (rate, attainment, stopped early, fell behind)."""
    if summary.get("rate") is None or summary.get("slo_attainment") is None:
        return None
    behind = backlog_exceeds_ttft(summary.get("backlog_s"), parse_slo(summary["slo"]))
    return summary["rate"], summary["slo_attainment"], summary.get("stopped_early", False), behind


def combine_benches(benches: list[tuple[str, dict]]) -> dict:
    """Several saved bench results (path, data) as one, for side-by-side tables and plots. Runs of
    a mode from results of the same setup (`_setup`) share its label, so single runs at several
    rates and goodput probes make one attainment curve and one goodput, established by the rates
    they served (a `--goodput-bracket` end taken on trust counts only while one sweep stands
    alone). A mode served in different setups (two pdmux runs with different flags) gets the
    name of each setup, so they stay apart: the file of a `pdmux@FILE` label, else the folder of
    its first result, numbered where two setups would share it. Results served at different SLOs
    give no goodput together (`report --slo` scores them all against one)."""
    # per result: each mode label as shown, and its setup
    setups = [{s["mode"]: _setup(data, s["mode"]) for s in data["summaries"]} for _, data in benches]
    # (shown mode, setup) -> its name: the file of a pdmux@FILE label, else the folder of its
    # first result; a name two setups of one mode would share gets a number
    names: dict[tuple[str, str], str] = {}
    for (path, _), setup in zip(benches, setups):
        for mode, shown in setup.items():
            if shown not in names:
                name = os.path.basename(mode.partition("@")[2]).removesuffix(".json") or _result_name(path)
                taken = sum(1 for (m, _), n in names.items() if m == shown[0] and n.split(" #")[0] == name)
                names[shown] = f"{name} #{taken + 1}" if taken else name
    setups_per_mode = Counter(mode for mode, _ in names)

    def label(mode: str, setup: dict[str, tuple[str, str]]) -> str:
        shown = setup[mode]
        return f"{shown[0]} [{names[shown]}]" if setups_per_mode[shown[0]] > 1 else shown[0]

    summaries, runs, sources = [], [], {}
    for (_, data), setup in zip(benches, setups):
        summaries += [dict(s, mode=label(s["mode"], setup)) for s in data["summaries"]]
        runs += [dict(r, mode=label(r["mode"], setup)) for r in data["runs"]]
        swept = data.get("goodput", {})
        for mode, g in swept.items():
            sources.setdefault(label(mode, setup), []).append(g)
        target = data["config"].get("attainment_target", 0.9)
        for s in data["summaries"]:
            point = None if s["mode"] in swept else _single_run_point(s)
            if point is not None:
                sources.setdefault(label(s["mode"], setup), []).append({"target": target, "points": [point]})
    goodput = {}
    if len({data["config"].get("slo") for _, data in benches}) > 1:
        sources = {}
    for mode, found in sources.items():
        if len(found) == 1 and "goodput" in found[0]:
            goodput[mode] = found[0]
        else:
            points = sorted(tuple(p) for g in found for p in g["points"])
            goodput[mode] = swept_goodput(points, found[0]["target"])
    return dict(benches[0][1], summaries=summaries, runs=runs, goodput=goodput)


def goodput_rows(report: dict) -> list[dict]:
    """The goodput table as data: one row per mode, its goodput as far as the served rates
    establish it (`bound` "" for a measured figure, ">= " or "< " for an open end)."""
    baseline = report["goodput"].get("chunked")
    rows = []
    for mode, g in report["goodput"].items():
        bound, rate = goodput_bound(g)
        rows.append({"mode": mode, "bound": bound.strip(), "goodput_req_s": rate, "fails_at": failing_text(g),
                     "vs_chunked": "" if baseline is None or mode == "chunked" else goodput_ratio_text(g, baseline),
                     "attainment_target": g["target"],
                     "probes": " ".join(f"{p[0]:g}:{p[1]:.3f}{'*' if p[2] else ''}{'+' if p[3] else ''}"
                                        for p in sorted(g["points"]))})
    return rows


def save_combined(report: dict, out_dir: str) -> list[str]:
    """The side-by-side runs as data next to their plots: summary.csv (a row per run), goodput.csv
    (a row per mode; probes as rate:attainment, * stopped early, + fell behind), vs-chunked.csv
    (p90 TTFT and TPOT against chunked's at the rates both served) and report.json (all three
    with the configs; the request records stay in the results read)."""
    import pandas as pd

    os.makedirs(out_dir, exist_ok=True)
    names = ("summary.csv", "goodput.csv", "vs-chunked.csv", "report.json")
    paths = [os.path.join(out_dir, name) for name in names]
    rows, against = goodput_rows(report), against_baseline(report["summaries"])
    pd.json_normalize(report["summaries"]).to_csv(paths[0], index=False)
    pd.DataFrame(rows).to_csv(paths[1], index=False)
    pd.DataFrame(against, columns=list(against[0]) if against else ["rate", "mode"]).to_csv(paths[2], index=False)
    with open(paths[3], "w") as f:
        json.dump({k: v for k, v in report.items() if k != "runs"} | {"goodput_rows": rows, "vs_chunked_rows": against},
                  f, indent=1, default=str)
    return paths
