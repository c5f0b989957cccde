"""Decode attention with the merge in a second kernel (BEFORE.py: `git show
940367a:kernels/decode_attention.py`) against the merge inside the split kernel (the last chunk
of a sequence to finish merges it; commit 763e1de), on one paged KV pool, per layer of the
Llama-3.1-8B shape, each timed as a CUDA graph of one step's 32 layers with the work plan made
once a step (as the engine runs it). bench-kernels could not tell the two apart: its 1 x 1k
step moves 4-8% between machines of the kind, more than the merge launches it removes.
Session 15 ran it with the package at 763e1de (the in-launch merge) and found it slower at batch
1 (1 x 1k 10.1 -> 16.7 us a layer, 1 x 16k 24.8 -> 58.3 us), so the two-kernel version is back;
to run it again, check 763e1de's kernels/decode_attention.py out first.

python decode_merge.py BEFORE.py OUT_DIR"""

import importlib.util
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../decode-skew")
import decode_skew as ds  # noqa: E402

from pdtune import kernels as k  # noqa: E402
from pdtune.perf.environment import environment  # noqa: E402

CASES = [c for c in ds.CASES if c[0] in ("1 x 1k", "1 x 16k", "64 x 1k", "16 x 16k", "256 x 1k",
                                         "20: 2 x 16k + 7.9k + 17 x 300", "64: 16k + 63 x 1k")]


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("pdtune.kernels.decode_attention_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(before_path: str, out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    before = load_module(before_path)
    need = max(sum(-(-n // ds.BLOCK) for n in lens) for _, lens in CASES)
    k_cache = torch.randn(need, ds.BLOCK, ds.KV_HEADS, ds.DIM, device=dev, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    scale = ds.DIM ** -0.5
    rows = []
    for name, lens in CASES:
        table, seq_lens, q = ds.paged_batch(lens, need, dev, dtype)
        ref = k.paged_decode_attention_ref(q, k_cache, v_cache, table, seq_lens, scale).float()
        sides = {"before": (before.plan_decode_work, before.paged_decode_attention),
                 "now": (k.plan_decode_work, k.paged_decode_attention)}
        row = dict(case=name, batch=len(lens), kv_tokens=sum(lens))
        for side, (plan_fn, attend) in sides.items():
            plan = plan_fn(seq_lens, ds.KV_HEADS)
            row[f"max_abs_err_{side}"] = (attend(q, k_cache, v_cache, table, seq_lens, scale, plan).float()
                                          - ref).abs().max().item()

            def step(plan_fn=plan_fn, attend=attend):
                plan = plan_fn(seq_lens, ds.KV_HEADS)
                for _ in range(ds.LAYERS):
                    attend(q, k_cache, v_cache, table, seq_lens, scale, plan)

            row[f"{side}_us"] = ds.graph_layer_ms(step, dev) * 1e3
        row["speedup"] = row["before_us"] / row["now_us"]
        rows.append(row)
        print(f"{name:34s} before {row['before_us']:8.2f} us  now {row['now_us']:8.2f} us  x{row['speedup']:5.3f}"
              f"  err {row['max_abs_err_before']:.1e}/{row['max_abs_err_now']:.1e}", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decode-merge.json"), "w") as f:
        json.dump(dict(environment=environment(" ".join(sys.argv)), per_layer=rows), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
