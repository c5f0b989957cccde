"""User files: ShareGPT (whole or cut off), OpenAI Batch, and trace format detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pdtune.workloads.loaders import openai_batch_file, sharegpt_file, trace_file
from pdtune.workloads.traces import SHIPPED, TRACE_DIR

from pdtune.errors import InputFileError
from pdtune.request.openai_batch import BatchRequest


def tokenize(text: str) -> list[int]:
    return [10 + len(word) for word in text.split()]


def _conversation(i: int) -> dict:
    return {"id": f"c{i}", "conversations": [
        {"from": "human", "value": "question " * (i + 1)},
        {"from": "gpt", "value": "answer " * (2 * i + 1)},
        {"from": "human", "value": "later turns are ignored"},
    ]}


CONVERSATIONS = [_conversation(i) for i in range(6)] + [
    {"id": "no-reply", "conversations": [{"from": "human", "value": "hello"}]},
    {"id": "gpt-first", "conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "x"}]},
]


def test_sharegpt_first_exchange(tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(CONVERSATIONS, indent=2))
    w = sharegpt_file(path, tokenize, max_output_len=8)
    assert [len(r.prompt_token_ids) for r in w.requests] == [1, 2, 3, 4, 5, 6]
    assert [r.max_tokens for r in w.requests] == [1, 3, 5, 7, 8, 8]
    assert w.metadata["params"]["conversations"] == 8 and not w.metadata["params"]["truncated"]
    picked = sharegpt_file(path, tokenize, num_requests=3, seed=1)
    assert len(picked) == 3 and picked.requests == sharegpt_file(path, tokenize, num_requests=3, seed=1).requests


@pytest.mark.parametrize("cut", [0.05, 0.3, 0.55, 0.8, 0.999])
def test_sharegpt_truncated_file_keeps_complete_conversations(tmp_path: Path, cut: float) -> None:
    pieces = [json.dumps(c, indent=2) for c in CONVERSATIONS]
    ends = [len("[\n") + sum(len(p) + len(",\n") for p in pieces[:i]) + len(pieces[i]) for i in range(len(pieces))]
    text = "[\n" + ",\n".join(pieces) + "\n]"
    size = int(len(text) * cut)
    path = tmp_path / "sg.json"
    path.write_text(text[:size])
    w = sharegpt_file(path, tokenize)
    complete = sum(end <= size for end in ends)
    assert w.metadata["params"]["truncated"] and w.metadata["params"]["conversations"] == complete
    assert len(w) == min(complete, 6)


def test_sharegpt_corrupt_element_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    text = json.dumps(CONVERSATIONS, indent=2).replace('"from": "gpt"', '"from" "gpt"', 1)
    path.write_text(text)
    line = text[: text.index('"from" "gpt"')].count("\n") + 1
    with pytest.raises(InputFileError, match=rf"sg.json: line {line}: Expecting ':'"):
        sharegpt_file(path, tokenize)


def test_openai_batch_file(tmp_path: Path) -> None:
    lines = [
        {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
         "body": {"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 7}},
        {"custom_id": "b", "method": "POST", "url": "/v1/completions", "body": {"prompt": [11, 12]}},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(map(json.dumps, lines)) + "\n")

    def encode(r: BatchRequest) -> list[int]:
        return tokenize(r.messages[-1]["content"]) if r.is_chat else list(r.prompt)

    w = openai_batch_file(path, encode)
    assert [(r.request_id, r.prompt_token_ids, r.max_tokens) for r in w.requests] == [
        ("a", [13, 13, 15], 7), ("b", [11, 12], 256)]
    path.write_text(path.read_text() + '{"custom_id": "c"}\n')
    with pytest.raises(InputFileError, match="line 3"):
        openai_batch_file(path, encode)


def test_trace_file_detects_the_format(tmp_path: Path) -> None:
    assert trace_file("azure-conv", limit=5).metadata["trace"] == "azure"
    for name in ("azure-code", "mooncake-synthetic"):
        src = TRACE_DIR / SHIPPED[name][0]
        copy = tmp_path / f"{name}.txt"  # no telling extension: the first line decides
        copy.write_text("\n".join(src.read_text().splitlines()[:6]) + "\n")  # the CSV: header + 5
        w = trace_file(copy, vocab_size=2000)
        assert len(w) == (5 if name == "azure-code" else 6) and w.metadata["trace"] == name.split("-")[0]
    (tmp_path / "x.txt").write_text("hello\n")
    with pytest.raises(InputFileError, match="neither"):
        trace_file(tmp_path / "x.txt")
