"""Reads any result pdtune saves (bench folder or JSON, search config, profile model) for `report`."""

from __future__ import annotations

import json
import os

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
