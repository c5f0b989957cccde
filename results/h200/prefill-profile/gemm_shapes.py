"""The 8B shape's projections at prefill row counts, fused as pdtune runs them (qkv in one GEMM,
gate and up in one) against split as transformers runs them (q, k, v; gate, up), bf16, each timed
alone by CUDA events; with pdtune's engine weights and with fresh random ones of the same shape.
kernel_profile.py found pdtune's prefill GEMMs 14.5 ms slower than transformers' (165.8 against
151.2 ms at 8192 tokens) with the same cuBLAS kernels for most calls. "gate,up split into one
buffer" writes the two halves of the fused layout (torch.mm out= a column slice, leading dimension
2 x intermediate), so SiLU-mul could read them as it reads the fused output. Usage: python gemm_shapes.py OUT_DIR"""
import csv
import json
import os
import sys

import torch
import torch.nn.functional as F

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.perf.environment import environment
from pdtune.perf.timing import time_ms


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    engine = Engine(EngineConfig(model="llama-3.1-8b", load_format="dummy", max_model_len=4096,
                                 max_num_batched_tokens=8192, max_num_seqs=16, gpu_memory_utilization=0.5))
    a = engine.loaded.arch
    qkv, o, gate_up, down = (p.weight for p in engine.runner.model.projections())
    q_w, k_w, v_w = (w.contiguous() for w in qkv.split([a.q_size, a.kv_size, a.kv_size]))
    gate_w, up_w = (w.contiguous() for w in gate_up.split(a.intermediate_size))
    dev = qkv.device
    rows = []
    for m in (512, 2048, 8192):
        x = torch.randn(m, a.hidden_size, device=dev, dtype=qkv.dtype)
        h = torch.randn(m, a.intermediate_size, device=dev, dtype=qkv.dtype)
        cases = {
            "qkv fused": [(x, qkv)], "q,k,v split": [(x, q_w), (x, k_w), (x, v_w)],
            "o": [(x, o)],
            "gate_up fused": [(x, gate_up)], "gate,up split": [(x, gate_w), (x, up_w)],
            "down": [(h, down)],
        }
        halves = torch.empty(m, 2 * a.intermediate_size, device=dev, dtype=qkv.dtype)
        into_halves = [(gate_w, halves[:, :a.intermediate_size]), (up_w, halves[:, a.intermediate_size:])]
        ms = time_ms(lambda: [torch.mm(x, w.t(), out=dst) for w, dst in into_halves], dev, iters=20, warmup=3)
        flops = 2 * m * gate_up.shape[0] * gate_up.shape[1]
        rows.append(dict(rows=m, case="gate,up split into one buffer", weights="engine", ms=ms, tflops=flops / ms / 1e9))
        print(f"{m:5d} {'gate,up -> buf':<14} {'engine':<6} {ms:7.3f} ms {flops / ms / 1e9:6.0f} TFLOP/s")
        for name, calls in cases.items():
            for weights in ("engine", "fresh"):
                pairs = calls if weights == "engine" else [(inp, torch.randn_like(w) * 0.02) for inp, w in calls]
                ms = time_ms(lambda: [F.linear(inp, w) for inp, w in pairs], dev, iters=20, warmup=3)
                flops = sum(2 * inp.shape[0] * w.shape[0] * w.shape[1] for inp, w in pairs)
                rows.append(dict(rows=m, case=name, weights=weights, ms=ms, tflops=flops / ms / 1e9))
                print(f"{m:5d} {name:<14} {weights:<6} {ms:7.3f} ms {flops / ms / 1e9:6.0f} TFLOP/s")
    with open(os.path.join(out, "gemm-shapes.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "gemm-shapes.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
