"""Workloads from users' files: ShareGPT JSON, OpenAI Batch JSONL, and traces in Azure or Mooncake format."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pdtune.errors import InputFileError
from pdtune.request.openai_batch import BatchRequest, read_batch_file
from pdtune.workloads.request import Workload, WorkloadRequest
from pdtune.workloads.traces import azure_trace, mooncake_trace, trace_path

HUMAN = ("human", "user")
MODEL = ("gpt", "chatgpt", "assistant")


def sharegpt_file(
    path: str | Path, tokenize: Callable[[str], list[int]], num_requests: int | None = None, seed: int | None = None,
    max_prompt_len: int | None = None, max_output_len: int | None = None,
) -> Workload:
    """First human turn as the prompt; the model turn right after it sets max_tokens (its token count).

    Conversations without that pair are skipped. seed=None keeps file order, else a seeded
    shuffle picks which num_requests conversations run. A file cut off mid-way (a partial
    download) is read up to its last complete conversation and marked truncated in the metadata.
    """
    text = _read(path)
    pairs, total, truncated = [], 0, False
    for conversation, complete in _stream_list(path, text):
        if not complete:
            truncated = True
            break
        total += 1
        pair = _first_exchange(conversation)
        if pair:
            pairs.append((total - 1, *pair))
    if seed is not None:
        pairs = [pairs[i] for i in np.random.default_rng(seed).permutation(len(pairs))]
    requests = []
    for index, prompt, answer in pairs:
        if num_requests is not None and len(requests) >= num_requests:
            break
        ids = list(tokenize(prompt))[:max_prompt_len]
        if ids:
            max_tokens = len(tokenize(answer)) if max_output_len is None else min(len(tokenize(answer)), max_output_len)
            requests.append(WorkloadRequest(str(index), 0.0, ids, max(max_tokens, 1)))
    meta = _metadata("sharegpt", path, seed, num_requests=num_requests, max_prompt_len=max_prompt_len,
                     max_output_len=max_output_len, conversations=total, usable=len(pairs), truncated=truncated)
    return Workload(Path(path).stem, requests, meta)


def openai_batch_file(path: str | Path, encode: Callable[[BatchRequest], list[int]]) -> Workload:
    """An OpenAI Batch input file: prompt ids from encode (e.g. a chat template), max_tokens from each body.

    Unlike run-batch, which turns a bad line into an error record, a workload must be whole:
    any invalid line rejects the file.
    """
    requests, errors = read_batch_file(path)
    if errors:
        raise InputFileError(f"{path}: {len(errors)} invalid line(s), the first: {errors[0].message}")
    out = []
    for r in requests:
        ids = list(encode(r))
        if not ids:
            raise InputFileError(f"{path}: line {r.line_number}: the prompt encodes to no tokens")
        out.append(WorkloadRequest(r.custom_id, 0.0, ids, r.params.max_tokens))
    return Workload(Path(path).stem, out, _metadata("openai-batch", path, None))


def trace_file(path: str | Path, **kwargs: Any) -> Workload:
    """A shipped trace name, or a file: .csv is Azure, .jsonl/.json Mooncake, else told by its first line.

    Keyword arguments go to azure_trace or mooncake_trace (vocab_size, seed, time_scale, limit, ...).
    """
    _, file, _ = trace_path(path)
    if file.suffix.lower() == ".csv":
        return azure_trace(path, **kwargs)
    if file.suffix.lower() in (".jsonl", ".json"):
        return mooncake_trace(path, **kwargs)
    first = next((line for line in _read(file).splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        return mooncake_trace(path, **kwargs)
    if first.startswith("TIMESTAMP"):
        return azure_trace(path, **kwargs)
    raise InputFileError(f"{file}: neither an Azure CSV (TIMESTAMP,...) nor a Mooncake JSONL trace")


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read {path}: {e}") from None


def _stream_list(path: str | Path, text: str) -> Iterator[tuple[Any, bool]]:
    """(item, True) for each element of a top-level JSON list, then (None, False) if the text stops mid-list.

    raw_decode one element at a time, so a truncated file still gives its complete elements. An
    element that fails where the text ends (within a cut-off literal such as `fal`, or in a
    string running to the end) is the cut; one that fails anywhere else is an error naming its line.
    """
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        raise InputFileError(f"{path}: expected a JSON list of conversations")
    pos += 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if text.startswith("]", pos):
            return
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            if len(text.rstrip()) - e.pos > len("fals") and not e.msg.startswith("Unterminated string"):
                raise InputFileError(f"{path}: line {e.lineno}: {e.msg}") from None
            yield None, False
            return
        yield item, True


def _first_exchange(conversation: Any) -> tuple[str, str] | None:
    """(first human message, the model reply right after it), or None."""
    turns = conversation.get("conversations") if isinstance(conversation, dict) else None
    if not isinstance(turns, list):
        return None
    for turn, reply in zip(turns, turns[1:]):
        if isinstance(turn, dict) and turn.get("from") in HUMAN:
            if isinstance(reply, dict) and reply.get("from") in MODEL and isinstance(turn.get("value"), str) \
                    and isinstance(reply.get("value"), str):
                return turn["value"], reply["value"]
            return None
    return None


def _metadata(loader: str, path: str | Path, seed: int | None, **params: Any) -> dict[str, Any]:
    return {"loader": loader, "path": str(path), "seed": seed, "params": params}
