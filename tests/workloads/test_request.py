"""Workload files: a round trip, and bad lines named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pdtune.workloads.arrivals import apply_arrivals
from pdtune.workloads.generators import mooncake_conversation_like
from pdtune.workloads.request import (
    Workload,
    WorkloadRequest,
    load_workload,
    save_workload,
)

from pdtune.errors import InputFileError


def test_round_trip(tmp_path: Path) -> None:
    w = apply_arrivals(mooncake_conversation_like(num_requests=50, seed=3, max_prompt_len=2000), rate=5.0)
    save_workload(w, tmp_path / "w.jsonl")
    back = load_workload(tmp_path / "w.jsonl")
    assert back.name == w.name and back.requests == w.requests
    assert back.metadata == json.loads(json.dumps(w.metadata))  # tuples come back as lists


def test_helpers() -> None:
    w = Workload("t", [WorkloadRequest("b", 2.0, [11, 12, 13], 5), WorkloadRequest("a", 0.5, [11], 1)])
    assert [r.request_id for r in w.requests] == ["a", "b"]  # sorted by arrival
    assert (w.mean_prompt_len, w.mean_output_len, w.duration) == (2.0, 3.0, 1.5)
    retimed = w.with_arrivals([9.0, 1.0], note="x")
    assert [r.arrival_s for r in retimed.requests] == [1.0, 9.0] and retimed.metadata == {"note": "x"}
    assert Workload("empty", []).duration == 0.0 and Workload("empty", []).mean_prompt_len == 0.0


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


HEADER = json.dumps({"name": "w", "metadata": {}})
GOOD = {"request_id": "0", "arrival_s": 0.0, "prompt_token_ids": [11, 12], "max_tokens": 4, "session_id": None,
        "turn": 0}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({**GOOD, "max_tokens": 0}), "'max_tokens' must be a positive integer"),
        (json.dumps({**GOOD, "prompt_token_ids": []}), "'prompt_token_ids'"),
        (json.dumps({**GOOD, "arrival_s": -1}), "'arrival_s'"),
        (json.dumps({**GOOD, "request_id": "1"}).replace('"1"', "1"), "'request_id' must be a string"),
        (json.dumps(GOOD), "duplicate request_id"),
        (json.dumps({**GOOD, "request_id": "1", "session_id": "s", "turn": 0}), "turn 0 of session 's'"),
    ],
)
def test_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    first = json.dumps({**GOOD, "session_id": "s", "turn": 1})
    with pytest.raises(InputFileError, match=rf"bad.jsonl:3: .*{message}"):
        load_workload(_write(tmp_path, [HEADER, first, line]))


def test_bad_header_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"bad.jsonl:1: header"):
        load_workload(_write(tmp_path, [json.dumps({"metadata": {}}), json.dumps(GOOD)]))
    with pytest.raises(InputFileError, match="cannot read"):
        load_workload(tmp_path / "missing.jsonl")
