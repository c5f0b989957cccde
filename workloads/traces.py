"""Real traces replayed as workloads: Azure LLM inference (CSV) and Mooncake (JSONL with prefix hashes)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pdtune.errors import InputFileError
from pdtune.workloads.arrivals import replay
from pdtune.workloads.request import Workload, WorkloadRequest, json_object
from pdtune.workloads.tokens import check_vocab, hashed_blocks, random_tokens, token_list

TRACE_DIR = Path(__file__).parent / "traces"
_AZURE = "Azure LLM inference trace 2023 (Azure/AzurePublicDataset; Splitwise, ISCA'24), CC-BY-4.0"
_MOONCAKE = "Mooncake FAST'25 traces (kvcache-ai/Mooncake FAST25-release/traces), Apache-2.0"
SHIPPED: dict[str, tuple[str, str]] = {  # name -> (file in TRACE_DIR, source)
    "azure-code": ("azure-llm-2023-code.csv", f"{_AZURE}, code"),
    "azure-conv": ("azure-llm-2023-conv.csv", f"{_AZURE}, conversation"),
    "mooncake-conversation": ("mooncake-conversation.jsonl", f"{_MOONCAKE}, conversation_trace.jsonl"),
    "mooncake-synthetic": ("mooncake-synthetic.jsonl", f"{_MOONCAKE}, synthetic_trace.jsonl"),
}


def trace_path(name_or_path: str | Path) -> tuple[str, Path, str]:
    """(name, file, source) for a shipped trace name or a user's own file."""
    if str(name_or_path) in SHIPPED:
        file, source = SHIPPED[str(name_or_path)]
        return str(name_or_path), TRACE_DIR / file, source
    return Path(name_or_path).stem, Path(name_or_path), f"user trace {name_or_path}"


def azure_trace(
    name_or_path: str | Path = "azure-conv", vocab_size: int = 32_000, seed: int = 0, time_scale: float = 1.0,
    limit: int | None = None, max_prompt_len: int | None = None, max_output_len: int | None = None,
) -> Workload:
    """CSV TIMESTAMP,ContextTokens,GeneratedTokens; arrival = seconds since the first timestamp.

    The trace records lengths only, so prompts are independent random ids (no prefix reuse).
    A zero length counts as 1 (a request needs a prompt token and makes at least one token).
    """
    name, path, source = trace_path(name_or_path)
    check_vocab(vocab_size)
    lines = _lines(path)
    header = [h.strip() for h in next(csv.reader([lines[0][1]]))] if lines else []
    if header != ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
        raise InputFileError(f"{path}:1: expected the header TIMESTAMP,ContextTokens,GeneratedTokens, got {header}")
    rng = np.random.default_rng(seed)
    times, requests = [], []
    for n, line in lines[1:][:limit]:
        row = next(csv.reader([line]))
        try:
            if len(row) != 3:
                raise ValueError(f"expected 3 fields, got {len(row)}")
            stamp, prompt, output = np.datetime64(row[0].strip(), "ns"), int(row[1]), int(row[2])
        except ValueError as e:
            raise InputFileError(f"{path}:{n}: {e}") from None
        if prompt < 0 or output < 0:
            raise InputFileError(f"{path}:{n}: token counts must be >= 0, got {prompt}, {output}")
        ids = random_tokens(rng, _cap(max(prompt, 1), max_prompt_len), vocab_size)
        times.append(stamp.astype(np.int64) / 1e9)
        requests.append(WorkloadRequest(str(len(requests)), 0.0, token_list(ids), _cap(max(output, 1), max_output_len)))
    meta = _metadata("azure", path, source, seed, time_scale, limit, vocab_size, max_prompt_len, max_output_len)
    return _timed(name, requests, times, time_scale, meta)


def mooncake_trace(
    name_or_path: str | Path = "mooncake-conversation", vocab_size: int = 32_000, seed: int = 0,
    time_scale: float = 1.0, limit: int | None = None, max_prompt_len: int | None = None,
    max_output_len: int | None = None, block_size: int = 512,
) -> Workload:
    """JSONL {timestamp (ms), input_length, output_length, hash_ids}; each hash id is one block of tokens.

    A block's ids are a pure function of (seed, hash id), so equal hash ids give equal blocks and
    a prefix cache hits exactly where the trace says; the last block is cut to input_length.
    """
    name, path, source = trace_path(name_or_path)
    check_vocab(vocab_size)
    times, requests = [], []
    for n, line in _lines(path)[:limit]:
        record = _mooncake_record(path, n, line, block_size)
        blocks = hashed_blocks(np.array(record["hash_ids"]), block_size, vocab_size, seed).ravel()
        ids = blocks[: _cap(record["input_length"], max_prompt_len)]
        output = _cap(max(record["output_length"], 1), max_output_len)
        times.append(record["timestamp"] / 1000)
        requests.append(WorkloadRequest(str(len(requests)), 0.0, token_list(ids), output))
    meta = _metadata("mooncake", path, source, seed, time_scale, limit, vocab_size, max_prompt_len, max_output_len,
                     block_size=block_size)
    return _timed(name, requests, times, time_scale, meta)


TRACES: dict[str, Callable[..., Workload]] = {
    name: partial(azure_trace if file.endswith(".csv") else mooncake_trace, name) for name, (file, _) in SHIPPED.items()
}


def _cap(n: int, cap: int | None) -> int:
    return n if cap is None else min(n, cap)


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) for every non-empty line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read trace {path}: {e}") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _timed(name: str, requests: list[WorkloadRequest], times: list[float], time_scale: float,
           metadata: dict[str, Any]) -> Workload:
    """Each request at its own replayed time (a stable sort, so an unsorted trace keeps its pairs)."""
    for request, t in zip(requests, replay(times, time_scale)):
        request.arrival_s = float(t)
    return Workload(name, requests, metadata)


def _mooncake_record(path: Path, n: int, line: str, block_size: int) -> dict[str, Any]:
    record = json_object(path, n, line)

    def is_int(v: Any, least: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= least

    ts, hashes = record.get("timestamp"), record.get("hash_ids")
    if not (isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts) and ts >= 0):
        raise InputFileError(f"{path}:{n}: 'timestamp' must be milliseconds >= 0, got {ts!r}")
    if not is_int(record.get("input_length"), 1) or not is_int(record.get("output_length"), 0):
        raise InputFileError(f"{path}:{n}: 'input_length' must be an integer >= 1 and 'output_length' >= 0")
    if not isinstance(hashes, list) or not all(is_int(h, 0) for h in hashes):
        raise InputFileError(f"{path}:{n}: 'hash_ids' must be a list of integers >= 0")
    if len(hashes) != math.ceil(record["input_length"] / block_size):
        raise InputFileError(
            f"{path}:{n}: {len(hashes)} hash_ids for input_length {record['input_length']} "
            f"(expected one per {block_size}-token block)"
        )
    return record


def _metadata(kind: str, path: Path, source: str, seed: int, time_scale: float, limit: int | None, vocab_size: int,
              max_prompt_len: int | None, max_output_len: int | None, **params: Any) -> dict[str, Any]:
    params.update(time_scale=time_scale, limit=limit, vocab_size=vocab_size, max_prompt_len=max_prompt_len,
                  max_output_len=max_output_len)
    return {"trace": kind, "path": str(path), "source": source, "seed": seed, "params": params}
