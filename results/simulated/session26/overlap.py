"""Session 26: how decode steps fared on the H100 while a prefill block launched in an earlier step
still ran, from the trace of results/h100/session24/all-8.75 (five pdmux runs). Blocks finish in
launch order, so each one measured is matched to the step that launched it (the counts agree in
every run); it starts at its launch (the step before's record time) or when the block before it
ends, and a decode step spans its measured time before its record time less the step's host time.
Prints, per run, decode steps by (their partition, the partition of a block running beside them for
over half their time; "none": no block; "part": some) with the median of measured over predicted
(for the whole GPU, 0/132, the prediction is decode alone); then prefill blocks by (their
partition, the share of their time that decode had the whole GPU) with the median of measured over
the planner's prediction for the block. Usage: python overlap.py"""

import collections
import gzip
import json
import os

import numpy as np

TRACE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "h100", "session24", "all-8.75",
                     "trace.jsonl.gz")

runs = collections.defaultdict(list)
for line in gzip.open(TRACE, "rt"):
    row = json.loads(line)
    if row["run"] != "warm-up":
        runs[row["run"]].append(row)
for run, rows in runs.items():
    blocks, queue = [], collections.deque()
    for i, row in enumerate(rows):
        for ms in row["measured_prefill_blocks_ms"]:
            queue.popleft()["ms"] = ms
        for behind in range(int(row["gang"] > 0) + int(row.get("gang_behind", 0) > 0)):
            predicted = row["predicted_prefill_ms"] if row["gang"] > 0 and not behind else None
            queue.append({"split": row["split"], "launch": rows[max(i - 1, 0)]["t"], "predicted": predicted})
            blocks.append(queue[-1])
    end = 0.0
    for b in blocks:
        if "ms" in b:
            b["start"] = max(b["launch"], end)
            b["end"] = end = b["start"] + b["ms"] / 1e3
    ratios, steps = collections.defaultdict(list), []
    for row in rows:
        if not row["measured_decode_ms"] or row["gang"] > 0:
            continue
        d_end = row["t"] - (row["host_ms"] or 0.0) / 1e3
        d_start = d_end - row["measured_decode_ms"] / 1e3
        steps.append((d_start, d_end, row["split"]))
        beside = [(min(d_end, b["end"]) - max(d_start, b["start"]), b["split"]) for b in blocks
                  if "end" in b and b["end"] > d_start and b["start"] < d_end]
        share = sum(o for o, _ in beside) / (d_end - d_start)
        key = (row["split"], max(beside)[1] if share > 0.5 else "part" if share > 0 else "none")
        ratios[key].append(row["measured_decode_ms"] / row["predicted_decode_ms"])
    print(run)
    for (split, block), values in sorted(ratios.items(), key=lambda kv: -len(kv[1])):
        if len(values) >= 10:
            print(f"  decode on {split:7s} beside {block:6s} steps {len(values):5d}  measured / predicted "
                  f"{np.median(values):.3f}")
    by_share = collections.defaultdict(list)
    for b in blocks:
        if "end" not in b or not b["predicted"]:
            continue
        whole = sum(min(e, b["end"]) - max(s, b["start"]) for s, e, split in steps
                    if split == "0/132" and e > b["start"] and s < b["end"]) / (b["end"] - b["start"])
        share = "over half" if whole > 0.5 else "under 10%" if whole < 0.1 else "10-50%"
        by_share[(b["split"], share)].append(b["ms"] / b["predicted"])
    for (split, share), values in sorted(by_share.items(), key=lambda kv: -len(kv[1])):
        if len(values) >= 10:
            print(f"  block on {split:7s} decode on the whole GPU {share:9s} blocks {len(values):4d}  measured / "
                  f"predicted {np.median(values):.3f}")
