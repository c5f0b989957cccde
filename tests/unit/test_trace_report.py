import gzip
import json
import math

import pytest
from typer.testing import CliRunner

from pdtune.cli.app import app
from pdtune.report.trace_report import summarize_trace


def _row(step, split, gang, batch, prefill_tokens=0, predicted=None, measured=None, budget=None, **tags):
    return {"step": step, "split": split, "gang": gang, "decode_batch": batch, "prefill_tokens": prefill_tokens,
            "predicted_decode_ms": predicted, "measured_decode_ms": measured, "decode_budget_ms": budget,
            "host_ms": 1.0, **tags}


ROWS = [
    _row(1, "132/0", 2, 0, 512, run="warm-up"),
    _row(2, "108/24", 1, 4, 512, 10.0, 12.0, 23.0, run="pdmux", rate=8.75),  # beside
    _row(3, "108/24", 0, 4, 512, 10.0, 25.0, 23.0, run="pdmux", rate=8.75),  # waiting; 25 > 23: over budget
    _row(4, "100/32", 2, 6, 256, 10.0, 10.0, 29.0, run="pdmux", rate=8.75, gang_behind=3,
         jumped=2),  # beside, 3 behind; two requests jumped ahead
    _row(5, "0/132", 0, 6, 256, 8.0, 8.0, 29.0, run="pdmux", rate=8.75),  # decode alone, prefill paused
    _row(6, "0/132", 0, 2, 0, 8.0, 8.0, 29.0, run="pdmux", rate=8.75),  # decode alone, nothing queued
    _row(7, "68/64", 1, 40, 1024, 12.0, 12.0, run="pdmux:sglang", rate=8.75),  # sglang plans no budget
]


def test_a_trace_is_summarized_per_run_from_its_rows():
    warm, pdmux, sglang = summarize_trace(ROWS)
    assert (warm.run, warm.rate, warm.steps, warm.prefill_alone_steps) == ("warm-up", None, 1, 1)
    assert (pdmux.run, pdmux.rate, pdmux.steps) == ("pdmux", 8.75, 5)
    assert (pdmux.beside_steps, pdmux.waiting_steps, pdmux.decode_alone_steps, pdmux.paused_steps) == (2, 1, 2, 1)
    assert pdmux.splits == [("108/24", 2), ("100/32", 1)]
    assert pdmux.decode_batch_p50 == 4 and pdmux.over_budget == pytest.approx(1 / 5)
    assert pdmux.decode_error_p50 == pytest.approx(1.0) and pdmux.decode_error_p90 == pytest.approx(1.2 + 0.6 * 1.3)
    assert pdmux.planned_tpot_p10 == 24 and pdmux.planned_tpot_p50 == 30
    assert sglang.splits == [("68/64", 1)] and sglang.over_budget is None and math.isnan(sglang.planned_tpot_p50)
    assert pdmux.behind_steps == 1 and sglang.behind_steps is None  # none of its rows recorded the field
    assert (pdmux.jump_steps, pdmux.jumped_requests) == (1, 2) and sglang.jump_steps is None
    # a trace written before rows were tagged is one run
    untagged = summarize_trace([{k: v for k, v in r.items() if k not in ("run", "rate")} for r in ROWS])
    assert [(s.run, s.steps) for s in untagged] == [("-", 7)]


def test_report_prints_and_saves_a_trace_summary_and_refuses_other_jsonl(tmp_path):
    path = tmp_path / "trace.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in ROWS)
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(path), "--out", str(tmp_path / "out")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "108/24: 67%, 100/32: 33%" in result.output and "pdmux:sglang" in result.output
    saved = (tmp_path / "out" / "trace-summary.csv").read_text().splitlines()
    assert len(saved) == 4 and "108/24:2 100/32:1" in saved[2]
    other = tmp_path / "requests.jsonl"
    other.write_text(json.dumps({"custom_id": "a", "body": {}}) + "\n")
    bad = runner.invoke(app, ["report", str(other)], env={"COLUMNS": "250"})  # the message unwrapped, whatever the path
    assert bad.exit_code == 1 and "not a pdmux trace" in bad.output and "Traceback" not in bad.output
