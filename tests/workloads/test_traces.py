"""Shipped traces: Mooncake hash blocks become shared token blocks; Azure rows become requests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from pdtune.workloads.traces import (
    SHIPPED,
    TRACE_DIR,
    TRACES,
    azure_trace,
    mooncake_trace,
)

from pdtune.errors import InputFileError

BLOCK = 512


def _records(name: str, n: int) -> list[dict]:
    with open(TRACE_DIR / SHIPPED[name][0]) as f:
        return [json.loads(next(f)) for _ in range(n)]


@pytest.mark.parametrize("name", ["mooncake-conversation", "mooncake-synthetic"])
def test_mooncake_blocks_follow_hash_ids(name: str) -> None:
    records = _records(name, 300)
    w = mooncake_trace(name, vocab_size=1000, seed=4, limit=300)
    by_id = {r.request_id: r for r in w.requests}
    blocks: dict[int, list[int]] = {}
    reused = 0
    for i, record in enumerate(records):
        r = by_id[str(i)]
        assert len(r.prompt_token_ids) == record["input_length"]
        assert r.max_tokens == max(record["output_length"], 1)
        assert r.arrival_s == pytest.approx((record["timestamp"] - records[0]["timestamp"]) / 1000)
        for k, h in enumerate(record["hash_ids"]):
            block = r.prompt_token_ids[k * BLOCK:(k + 1) * BLOCK]
            if h in blocks:
                n = min(len(block), len(blocks[h]))  # a last block may be cut short
                assert block[:n] == blocks[h][:n]
                reused += 1
            elif len(block) == BLOCK:
                blocks[h] = block
    assert reused > 100
    assert len({tuple(b) for b in blocks.values()}) == len(blocks)  # different ids, different blocks
    assert all(10 <= t < 1000 for r in w.requests for t in r.prompt_token_ids)


def test_mooncake_seed_changes_tokens_not_lengths() -> None:
    a, b, c = (mooncake_trace("mooncake-synthetic", seed=s, limit=20) for s in (1, 1, 2))
    assert a.requests == b.requests
    assert [len(r.prompt_token_ids) for r in a.requests] == [len(r.prompt_token_ids) for r in c.requests]
    assert a.requests[0].prompt_token_ids != c.requests[0].prompt_token_ids


def test_azure_matches_csv() -> None:
    with open(TRACE_DIR / SHIPPED["azure-code"][0]) as f:
        rows = list(csv.DictReader(f))[:500]
    w = azure_trace("azure-code", seed=0, limit=500, time_scale=0.5)
    stamps = np.array([r["TIMESTAMP"] for r in rows], dtype="datetime64[ns]")
    seconds = (stamps - stamps[0]) / np.timedelta64(1, "s")
    assert [r.arrival_s for r in w.requests] == pytest.approx(list(seconds * 0.5), abs=1e-6)
    assert [len(r.prompt_token_ids) for r in w.requests] == [int(r["ContextTokens"]) for r in rows]
    assert [r.max_tokens for r in w.requests] == [int(r["GeneratedTokens"]) for r in rows]
    assert w.metadata["source"].startswith("Azure LLM inference trace 2023") and w.name == "azure-code"


def test_registry_and_clamps() -> None:
    assert set(TRACES) == {"azure-code", "azure-conv", "mooncake-conversation", "mooncake-synthetic"}
    for name, load in TRACES.items():
        w = load(limit=50, max_prompt_len=1000, max_output_len=16)
        assert len(w) == 50 and w.name == name
        assert max(len(r.prompt_token_ids) for r in w.requests) <= 1000 and max(r.max_tokens for r in w.requests) <= 16


def _bad(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"timestamp": 5, "input_length": 600, "output_length": 3, "hash_ids": [1]}', "1 hash_ids for input_length"),
        ('{"timestamp": 5, "input_length": 10, "output_length": 3, "hash_ids": [-1]}', "'hash_ids'"),
        ('{"timestamp": 5, "input_length": 10, "output_length": 3', "not valid JSON"),
        ('{"input_length": 10, "output_length": 3, "hash_ids": [1]}', "'timestamp'"),
    ],
)
def test_bad_mooncake_line(tmp_path: Path, line: str, message: str) -> None:
    good = '{"timestamp": 0, "input_length": 10, "output_length": 3, "hash_ids": [0]}'
    with pytest.raises(InputFileError, match=rf"t.jsonl:3: .*{message}"):
        mooncake_trace(_bad(tmp_path, "t.jsonl", [good, "", line]))


def test_bad_azure_lines(tmp_path: Path) -> None:
    header, good = "TIMESTAMP,ContextTokens,GeneratedTokens", "2023-11-16 18:17:03.9799600,10,2"
    with pytest.raises(InputFileError, match=r"t.csv:3: "):
        azure_trace(_bad(tmp_path, "t.csv", [header, good, "yesterday,10,2"]))
    with pytest.raises(InputFileError, match=r"t.csv:2: token counts"):
        azure_trace(_bad(tmp_path, "t.csv", [header, "2023-11-16 18:17:04,-3,2"]))
    with pytest.raises(InputFileError, match=r"t.csv:1: expected the header"):
        azure_trace(_bad(tmp_path, "t.csv", ["a,b,c", good]))
