"""The newcomer's first command: the shipped example questions on the embedded SmolLM2 model."""

import json
from pathlib import Path

import pytest

from pdtune.batch.runner import run_batch

EXAMPLE = Path(__file__).parents[2] / "workloads" / "examples" / "questions.jsonl"


@pytest.mark.slow
def test_the_example_file_gets_real_answers_from_the_embedded_model(smollm2_llm, tmp_path):
    out = tmp_path / "answers.jsonl"
    result = run_batch(EXAMPLE, out, lambda: smollm2_llm)
    records = {json.loads(line)["custom_id"]: json.loads(line) for line in out.read_text().splitlines()}
    expected_ids = {json.loads(line)["custom_id"] for line in EXAMPLE.read_text().splitlines() if line.strip()}
    assert set(records) == expected_ids and result.summary.requests_failed == 0
    for record in records.values():
        assert record["error"] is None and record["response"]["status_code"] == 200
        choice = record["response"]["body"]["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        assert len(text.split()) >= 3, record
    france = records["q01"]  # "What is the capital of France?"
    assert "Paris" in france["response"]["body"]["choices"][0]["message"]["content"]
