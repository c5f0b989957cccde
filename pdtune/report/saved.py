"""Reads any result pdtune saves (bench folder or JSON, search config, profile model) for `report`."""

from __future__ import annotations

import json
import os
from collections import Counter

from pdtune.bench.runner import load_bench
from pdtune.errors import InputFileError
from pdtune.perf.perf_model import KIND as PERF_MODEL_KIND


def load_saved(path: str) -> tuple[str, dict]:
    """("bench" | "search" | "profile", its data); anything else is a clear error naming the file."""
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


def combine_benches(benches: list[tuple[str, dict]]) -> dict:
    """Several saved bench results (path, data) as one, for side-by-side tables and plots. A mode
    label found in more than one of them (two pdmux runs with different flags) gets its result's
    folder name, so their runs and goodput sweeps stay apart instead of one replacing the other."""
    seen = Counter(mode for _, data in benches for mode in {s["mode"] for s in data["summaries"]})

    def label(path: str, mode: str) -> str:
        return f"{mode} [{_result_name(path)}]" if seen[mode] > 1 else mode

    summaries, runs, goodput = [], [], {}
    for path, data in benches:
        summaries += [dict(s, mode=label(path, s["mode"])) for s in data["summaries"]]
        runs += [dict(r, mode=label(path, r["mode"])) for r in data["runs"]]
        goodput.update({label(path, mode): g for mode, g in data.get("goodput", {}).items()})
    return dict(benches[0][1], summaries=summaries, runs=runs, goodput=goodput)
