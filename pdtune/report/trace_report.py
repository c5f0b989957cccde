"""Reads a pdmux `--trace` back: per run, what the planner chose (splits, decode alone, prefill
alone), how large the decode batches were, how its decode predictions held and what TPOT it
planned, so a result can be explained from its trace without ad hoc scripts."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass

from rich.table import Table

from pdtune.errors import InputFileError
from pdtune.metrics import percentile

TRACE_KEYS = {"step", "split", "gang", "decode_batch"}  # what tells a planner trace from other JSONL


def is_trace(path: str) -> bool:
    return path.endswith((".jsonl", ".jsonl.gz"))


def read_trace(path: str) -> list[dict]:
    """The trace's rows; a file that is not a planner trace is an error naming it."""
    try:
        with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path}: not a readable pdmux trace ({exc})") from None
    if not rows or not all(isinstance(r, dict) and TRACE_KEYS <= r.keys() for r in rows):
        raise InputFileError(f"{path}: not a pdmux trace (rows need {', '.join(sorted(TRACE_KEYS))})")
    return rows


@dataclass
class TraceRunSummary:
    run: str  # the row's `run` tag ("-" for a trace written before rows were tagged)
    rate: float | None
    steps: int
    beside_steps: int  # decode beside prefill layers launched in the same step
    waiting_steps: int  # a mixed split with no layers launched: the block before still ran
    decode_alone_steps: int  # decode on the whole GPU (no prefill left, or prefill paused for TPOT)
    paused_steps: int  # of those, with a prefill batch in hand: paused (TTFT slack on TPOT) or in its last block
    prefill_alone_steps: int  # prefill on the whole GPU (nothing decoding, or decode waiting)
    splits: list[tuple[str, int]]  # mixed steps per split (prefill/decode SMs), most used first
    # percentiles are NaN where no step had the figure (no decode, no budget: a policy without one)
    decode_batch_p50: float
    decode_batch_p90: float
    decode_ms_p50: float  # measured decode time of a step
    decode_ms_p90: float
    decode_error_p50: float  # measured over predicted decode time
    decode_error_p90: float
    over_budget: float | None  # share of budgeted decode steps whose measured decode exceeded the budget
    planned_tpot_p10: float  # the decode budget plus the host's time: the TPOT the step planned for
    planned_tpot_p50: float
    # steps that launched the next prefill batch's layers behind a batch's last ones (`gang_behind`);
    # None for a trace written before session 23, which did not record them
    behind_steps: int | None = None
    # steps where waiting requests jumped ahead of the prefill in flight, and those requests
    # (`jumped`); None for a trace written before session 24
    jump_steps: int | None = None
    jumped_requests: int | None = None


def _split_sms(name: str) -> tuple[int, int]:
    prefill, decode = name.split("/")
    return int(prefill), int(decode)


def summarize_run(run: str, rows: list[dict]) -> TraceRunSummary:
    sms = [_split_sms(r["split"]) for r in rows]
    mixed = [r for r, (p, d) in zip(rows, sms) if p and d]
    decoding = [r for r in rows if r["decode_batch"]]
    measured = [r for r in decoding if r.get("measured_decode_ms") is not None]
    predicted = [r for r in measured if r.get("predicted_decode_ms")]
    budgeted = [r for r in measured if r.get("decode_budget_ms") is not None]
    planned = [r["decode_budget_ms"] + r.get("host_ms", 0.0) for r in rows if r.get("decode_budget_ms") is not None]
    errors = [r["measured_decode_ms"] / r["predicted_decode_ms"] for r in predicted]
    decode_ms = [r["measured_decode_ms"] for r in measured]
    batches = [r["decode_batch"] for r in decoding]
    return TraceRunSummary(
        run=run, rate=rows[0].get("rate"), steps=len(rows),
        beside_steps=sum(1 for r in mixed if r["gang"]), waiting_steps=sum(1 for r in mixed if not r["gang"]),
        decode_alone_steps=sum(1 for r, (p, d) in zip(rows, sms) if not p and r["decode_batch"]),
        paused_steps=sum(1 for r, (p, d) in zip(rows, sms) if not p and r["decode_batch"] and r["prefill_tokens"]),
        prefill_alone_steps=sum(1 for r, (p, d) in zip(rows, sms) if not d and r["gang"]),
        splits=Counter(r["split"] for r in mixed).most_common(),
        decode_batch_p50=percentile(batches, 50), decode_batch_p90=percentile(batches, 90),
        decode_ms_p50=percentile(decode_ms, 50), decode_ms_p90=percentile(decode_ms, 90),
        decode_error_p50=percentile(errors, 50), decode_error_p90=percentile(errors, 90),
        over_budget=sum(r["measured_decode_ms"] > r["decode_budget_ms"] for r in budgeted) / len(budgeted)
        if budgeted else None,
        planned_tpot_p10=percentile(planned, 10), planned_tpot_p50=percentile(planned, 50),
        behind_steps=sum(1 for r in rows if r.get("gang_behind")) if any("gang_behind" in r for r in rows) else None,
        **_jumps(rows),
    )


def _jumps(rows: list[dict]) -> dict:
    if not any("jumped" in r for r in rows):
        return {}
    return {"jump_steps": sum(1 for r in rows if r.get("jumped")), "jumped_requests": sum(r.get("jumped", 0) for r in rows)}


def summarize_trace(rows: list[dict]) -> list[TraceRunSummary]:
    """One summary per run, in the order the runs first appear (runs of one tag at different
    rates apart; a run's warm-up counts as a run of its own)."""
    runs: dict[tuple, list[dict]] = {}
    for r in rows:
        runs.setdefault((r.get("run", "-"), r.get("rate")), []).append(r)
    return [summarize_run(run, run_rows) for (run, _), run_rows in runs.items()]


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None or value != value else format(value, fmt)


def trace_table(summaries: list[TraceRunSummary], title: str) -> Table:
    table = Table(title=title, caption="steps: beside = decode with prefill layers launched; waiting = a mixed "
                                       "split, no layers launched (the block before still ran); alone = the "
                                       "whole GPU (in brackets: with a prefill batch in hand, paused or in "
                                       "its last block). Behind: steps that launched the next prefill "
                                       "batch's layers after a batch's last ones. Jumps: steps where "
                                       "waiting requests jumped ahead of the prefill in flight (the "
                                       "requests). Decode error: "
                                       "measured over predicted.")
    for name in ("run", "req/s", "steps", "beside / waiting / decode alone (paused) / prefill alone", "behind", "jumps",
                 "mixed splits (P/D: share)", "decode batch p50 / p90", "decode ms p50 / p90",
                 "decode error p50 / p90", "over budget", "planned TPOT ms p10 / p50"):
        table.add_column(name, overflow="fold", justify="left" if name.startswith(("run", "mixed")) else "right")
    for s in summaries:
        mixed = s.beside_steps + s.waiting_steps
        splits = ", ".join(f"{name}: {count / mixed:.0%}" for name, count in s.splits[:4]) if mixed else "-"
        if len(s.splits) > 4:
            splits += f" (+{len(s.splits) - 4})"
        table.add_row(s.run, _num(s.rate, "g"), str(s.steps),
                      f"{s.beside_steps} / {s.waiting_steps} / {s.decode_alone_steps} ({s.paused_steps}) / "
                      f"{s.prefill_alone_steps}", _num(s.behind_steps, "d"),
                      "-" if s.jump_steps is None else f"{s.jump_steps} ({s.jumped_requests})",
                      splits, f"{_num(s.decode_batch_p50, 'g')} / {_num(s.decode_batch_p90, 'g')}",
                      f"{_num(s.decode_ms_p50, '.1f')} / {_num(s.decode_ms_p90, '.1f')}",
                      f"{_num(s.decode_error_p50, '.2f')} / {_num(s.decode_error_p90, '.2f')}",
                      _num(s.over_budget, ".1%"),
                      f"{_num(s.planned_tpot_p10, '.1f')} / {_num(s.planned_tpot_p50, '.1f')}")
    return table


def save_trace_summaries(traces: dict[str, list[TraceRunSummary]], out_dir: str) -> str:
    """trace-summary.csv: a row per trace and run (its splits as "P/D:steps" by use)."""
    import pandas as pd

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "trace-summary.csv")
    rows = [{"trace": trace, **asdict(s), "splits": " ".join(f"{name}:{count}" for name, count in s.splits)}
            for trace, summaries in traces.items() for s in summaries]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
