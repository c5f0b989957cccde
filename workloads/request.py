"""Workload requests, and their JSONL file format (a header line, then one request a line)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pdtune.errors import InputFileError
from pdtune.workloads.tokens import token_list


@dataclass
class WorkloadRequest:
    """One request: its prompt as token ids, so a workload is model-independent up to vocab_size."""

    request_id: str
    arrival_s: float  # seconds from the start of the run
    prompt_token_ids: list[int]
    max_tokens: int
    session_id: str | None = None  # turns of one conversation or agent run share it
    turn: int = 0  # 0-based position in its session


@dataclass
class Workload:
    """Requests sorted by arrival (a stable sort: equal arrivals keep their order, so turns stay in order)."""

    name: str
    requests: list[WorkloadRequest]
    metadata: dict[str, Any] = field(default_factory=dict)  # generator or trace, params, seed, source

    def __post_init__(self) -> None:
        self.requests = sorted(self.requests, key=lambda r: r.arrival_s)

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def mean_prompt_len(self) -> float:
        return float(np.mean([len(r.prompt_token_ids) for r in self.requests])) if self.requests else 0.0

    @property
    def mean_output_len(self) -> float:
        return float(np.mean([r.max_tokens for r in self.requests])) if self.requests else 0.0

    @property
    def duration(self) -> float:
        """Seconds from the first arrival to the last."""
        return self.requests[-1].arrival_s - self.requests[0].arrival_s if self.requests else 0.0

    def with_arrivals(self, arrival_times: Iterable[float], **metadata: Any) -> Workload:
        """The same requests retimed: sorted times are given out in request order, which keeps
        every session's turns in order. Extra keyword arguments are added to the metadata."""
        times = np.sort(np.asarray(list(arrival_times), dtype=float))
        if len(times) != len(self.requests):
            raise ValueError(f"{len(times)} arrival times for {len(self.requests)} requests")
        requests = [replace(r, arrival_s=float(t)) for r, t in zip(self.requests, times)]
        return Workload(self.name, requests, {**self.metadata, **metadata})


def save_workload(workload: Workload, path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"name": workload.name, "metadata": workload.metadata}) + "\n")
        for r in workload.requests:
            f.write(json.dumps(vars(r), separators=(",", ":")) + "\n")  # asdict would copy every token


def load_workload(path: str | Path) -> Workload:
    """Read a file written by save_workload; any bad line raises InputFileError naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read workload file {path}: {e}") from None
    if not lines:
        raise InputFileError(f"{path}: empty file, expected a header line")
    header = json_object(path, 1, lines[0])
    if not isinstance(header.get("name"), str) or not isinstance(header.get("metadata"), dict):
        raise InputFileError(f"{path}:1: header must be an object with 'name' (string) and 'metadata' (object)")
    requests: list[WorkloadRequest] = []
    last_turn: dict[str, tuple[int, float]] = {}
    seen: set[str] = set()
    for n, line in enumerate(lines[1:], start=2):
        if line.strip():
            r = _request(path, n, json_object(path, n, line))
            if r.request_id in seen:
                raise InputFileError(f"{path}:{n}: duplicate request_id {r.request_id!r}")
            seen.add(r.request_id)
            if r.session_id is not None:
                turn, arrival = last_turn.get(r.session_id, (-1, 0.0))
                if r.turn <= turn or r.arrival_s < arrival:
                    raise InputFileError(
                        f"{path}:{n}: turn {r.turn} of session {r.session_id!r} must have a higher turn and "
                        f"no earlier arrival than its turn {turn} on an earlier line"
                    )
                last_turn[r.session_id] = (r.turn, r.arrival_s)
            requests.append(r)
    return Workload(header["name"], requests, header["metadata"])


def json_object(path: str | Path, n: int, line: str) -> dict:
    """One line of a JSONL file as an object, or an error naming the file and line."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise InputFileError(f"{path}:{n}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise InputFileError(f"{path}:{n}: expected a JSON object")
    return obj


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _request(path: str | Path, n: int, obj: dict) -> WorkloadRequest:
    def check(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise InputFileError(f"{path}:{n}: '{key}' must be {expected}, got {repr(obj.get(key))[:60]}")

    ids, arrival, turn = obj.get("prompt_token_ids"), obj.get("arrival_s"), obj.get("turn", 0)
    check(isinstance(obj.get("request_id"), str), "request_id", "a string")
    check(isinstance(arrival, (int, float)) and not isinstance(arrival, bool) and math.isfinite(arrival)
          and arrival >= 0, "arrival_s", "a finite number >= 0")
    check(isinstance(ids, list) and bool(ids) and set(map(type, ids)) == {int} and 0 <= min(ids) and max(ids) < 2**31,
          "prompt_token_ids", "a non-empty list of token ids")  # map(type): fast on 100k-token prompts
    check(_is_int(obj.get("max_tokens")) and obj["max_tokens"] >= 1, "max_tokens", "a positive integer")
    check(obj.get("session_id") is None or isinstance(obj["session_id"], str), "session_id", "a string or null")
    check(_is_int(turn) and turn >= 0, "turn", "an integer >= 0")
    return WorkloadRequest(
        request_id=obj["request_id"],
        arrival_s=float(arrival),
        prompt_token_ids=token_list(np.array(ids, dtype=np.int64)),
        max_tokens=obj["max_tokens"],
        session_id=obj.get("session_id"),
        turn=turn,
    )
