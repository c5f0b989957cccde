"""`pdtune run-batch` end to end on the tiny preset: mixed lines, resume after interruptions, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from pdtune.api import LLM
from pdtune.batch.runner import run_batch
from pdtune.cli.app import app

TINY = ["--model", "tiny", "--load-format", "dummy"]
runner = CliRunner()


def line(cid, prompt=None, messages=None, **body):
    url = "/v1/chat/completions" if messages is not None else "/v1/completions"
    body.update({"messages": messages} if messages is not None else {"prompt": prompt})
    body.setdefault("max_tokens", 8)
    body.setdefault("temperature", 0)
    return json.dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})


def write_input(path, n=12):
    lines = [line(f"r{i:02d}", prompt=f"question number {i} " * (1 + i % 4)) if i % 2 else
             line(f"r{i:02d}", messages=[{"role": "user", "content": f"hello {i}"}], model="gpt-4o-mini")
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def answers(path):
    """custom_id -> what the model produced (ids and timestamps differ between runs)."""
    out = {}
    for raw in path.read_text().splitlines():
        rec = json.loads(raw)
        if rec["response"] is None:
            out[rec["custom_id"] or rec["error"]["line"]] = rec["error"]["code"]
        else:
            choice = rec["response"]["body"]["choices"][0]
            out[rec["custom_id"]] = (choice.get("message", {}).get("content", choice.get("text")),
                                     choice["finish_reason"], rec["response"]["body"]["usage"])
    assert len(out) == len(path.read_text().splitlines()), "a custom_id was written twice"
    return out


def invoke(*args):
    return runner.invoke(app, ["run-batch", *args, *TINY])


def test_mixed_good_and_bad_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        line("ok-chat", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]),
        "{not json",
        "",
        line("ok-text", prompt="once upon a time"),
        line("neg", prompt="x", max_tokens=-3),
        line("hot", prompt="x", temperature="hot"),
        line("topp", prompt="x", top_p=1.5),
        json.dumps({"custom_id": "badurl", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}),
        json.dumps({"custom_id": "msgs", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": "hi"}}),
        line("toolong", prompt=[5] * 5000),
        line("ids", prompt=[10, 20, 30]),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    metrics = tmp_path / "m.json"
    result = invoke(str(src), "-o", str(out), "--metrics-json", str(metrics))
    assert result.exit_code == 0, result.output
    got = answers(out)
    assert got[2] == "invalid_json"  # unreadable custom_id: keyed by its line number
    assert {k: got[k] for k in ("neg", "hot", "topp", "msgs")} == dict.fromkeys(("neg", "hot", "topp", "msgs"), "invalid_parameter")
    assert got["badurl"] == "invalid_url" and got["toolong"] == "prompt_too_long"
    for cid in ("ok-chat", "ok-text", "ids"):
        text, reason, usage = got[cid]
        assert reason == "length" and usage["completion_tokens"] == 8
        assert usage["total_tokens"] == usage["prompt_tokens"] + 8
    assert got["ids"][2]["prompt_tokens"] == 3
    m = json.loads(metrics.read_text())
    assert m["requests_ok"] == 3 and m["requests_failed"] == 7 and m["completion_tokens"] == 24
    assert set(m["ttft_s"]) == {"p50", "p90", "p99", "mean"}


class StopAfter:
    """A progress display that interrupts the run like Ctrl-C after `n` results."""

    def __init__(self, n):
        self.n = n

    def start(self, total, already_done):
        pass

    def warn(self, message):
        pass

    def model_ready(self):
        pass

    def advance(self, completion_tokens, failed):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def make_tiny():
    return LLM("tiny", load_format="dummy")


@pytest.mark.parametrize("stop_after", [1, 5, 11])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, stop_after):
    src = write_input(tmp_path / "in.jsonl")
    full = tmp_path / "full.jsonl"
    run_batch(src, full, make_tiny)
    part = tmp_path / "part.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_batch(src, part, make_tiny, StopAfter(stop_after))
    assert len(part.read_text().splitlines()) == stop_after
    resumed = run_batch(src, part, make_tiny)
    assert resumed.already_done == stop_after and resumed.summary.requests_ok == 12 - stop_after
    assert answers(part) == answers(full)


def test_a_torn_last_line_is_repaired_on_resume(tmp_path):
    src = write_input(tmp_path / "in.jsonl")
    full = tmp_path / "full.jsonl"
    run_batch(src, full, make_tiny)
    data = full.read_bytes()
    lines = data.splitlines(keepends=True)
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"".join(lines[:4]) + lines[4][: len(lines[4]) // 2])  # power loss mid-line
    result = invoke(str(src), "-o", str(torn))
    assert result.exit_code == 0, result.output
    assert answers(torn) == answers(full)


def test_kill_9_mid_run_then_resume(tmp_path):
    src = write_input(tmp_path / "in.jsonl", n=40)
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "pdtune.cli", "run-batch", str(src), "-o", str(out), *TINY, "--max-num-seqs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_bytes().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(out.read_bytes().splitlines())
    assert 3 <= written < 40
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    full = tmp_path / "full.jsonl"
    run_batch(src, full, lambda: LLM("tiny", load_format="dummy", max_num_seqs=2))
    assert answers(out) == answers(full)


def test_duplicate_custom_ids_are_rejected_up_front(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(line("a", prompt="x") + "\n" + line("a", prompt="y") + "\n")
    result = invoke(str(src), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 1 and "'a'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").read_text() == ""


@pytest.mark.parametrize("args,message", [
    (["missing.jsonl", "-o", "o.jsonl"], "input file not found"),
    (["IN", "-o", "o.jsonl", "--model", "no-such-preset"], "neither a folder"),
    (["IN", "-o", "o.jsonl", "--model", "/nonexistent/folder/"], "neither a folder"),
    (["IN", "-o", "o.jsonl", "--mode", "bogus"], "mode must be one of"),
    (["IN", "-o", "o.jsonl", "--mode", "chunked", "--trace", "t.jsonl"], "--trace records pdmux steps"),
])
def test_user_errors_end_with_one_line_and_a_non_zero_exit(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path / "in.jsonl", n=2)
    args = [str(tmp_path / "in.jsonl") if a == "IN" else a for a in args]
    result = runner.invoke(app, ["run-batch", *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
