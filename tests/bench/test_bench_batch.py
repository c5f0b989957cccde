"""bench-batch: every engine variant serves the same requests to the end; bad lists are refused."""

import json

from typer.testing import CliRunner

from pdtune.cli.app import app


def test_each_variant_serves_every_request(tmp_path):
    out = tmp_path / "bb"
    result = CliRunner().invoke(app, ["bench-batch", "--model", "tiny", "--requests", "12", "--prompt-len", "20",
                                      "--output-len", "5", "--transformers-requests", "0", "--max-num-seqs", "4,8",
                                      "--max-num-batched-tokens", "32,64", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench-batch.json").read_text())
    runs = report["pdtune"]
    assert [(r["engine"]["max_num_seqs"], r["engine"]["max_num_batched_tokens"]) for r in runs] == \
        [(4, 32), (4, 64), (8, 32), (8, 64)]
    assert all(r["requests_ok"] == 12 and r["completion_tokens"] == 60 for r in runs)
    assert report["transformers_generate_batch"] is None
    assert not list(out.glob("*.jsonl"))  # the request and output files are removed


def test_a_malformed_list_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["bench-batch", "--model", "tiny", "--max-num-seqs", "8,lots",
                                      "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--max-num-seqs takes comma-separated integers" in result.output
