"""The 8B shape's projections at prefill row counts, fused as pdtune runs them (qkv in one GEMM,
gate and up in one) against split as transformers runs them (q, k, v; gate, up), bf16, each timed
alone by CUDA events; with pdtune's engine weights and with fresh random ones of the same shape.
kernel_profile.py found pdtune's prefill GEMMs 14.5 ms slower than transformers' (165.8 against
151.2 ms at 8192 tokens) with the same cuBLAS kernels for most calls. "gate,up split into one
buffer" writes the two halves of the fused layout (torch.mm out= a column slice, leading dimension
2 x intermediate), so SiLU-mul could read them as it reads the fused output. Rows 1 and 64 are
decode steps (issue 5's 1 x 1k and 64 x 1k), where cuBLAS ran qkv and o at 3.1 TB/s against 4.0-4.1
for gate_up and down (kernel_profile.py); each case runs under torch's cuBLAS and cuBLASLt
backends (`torch.backends.cuda.preferred_blas_library`), whose heuristics pick kernels apart.
Session 14 found the fused gate_up faster than gate and up apart (2.69 against 2.83 ms at 8192
rows), yet kernel_profile.py saw transformers' gate and up take 1.27 ms each with another kernel
(320x128 tiles) than pdtune's fused 2.78 ms (192x192): so each case now lists the kernels it
launched, and gate and up also run on a [1, rows, hidden] input, as transformers calls them.
Usage: python gemm_shapes.py OUT_DIR [MODEL] (MODEL: a preset, llama-3.1-8b by default)"""
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

from kernel_profile import kernels_ms  # this folder's script: the script's folder is on sys.path


@torch.inference_mode()
def main(out: str, model: str = "llama-3.1-8b") -> None:
    os.makedirs(out, exist_ok=True)
    engine = Engine(EngineConfig(model=model, load_format="dummy", max_model_len=2048,
                                 max_num_batched_tokens=8192, max_num_seqs=16, gpu_memory_utilization=0.5))
    weights = dict(zip(("qkv", "o", "gate_up", "down"), (p.weight for p in engine.runner.model.projections())))
    dev = weights["qkv"].device
    rows = []
    for backend in ("cublas", "cublaslt") if dev.type == "cuda" else ("cpu",):
        if dev.type == "cuda":
            torch.backends.cuda.preferred_blas_library(backend)
        for m in (1, 64, 512, 2048, 8192):
            rows += time_cases(engine.loaded.arch, weights, m, backend)
    with open(os.path.join(out, "gemm-shapes.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "gemm-shapes.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "rows": rows}, f, indent=1)


def time_cases(a, weights: dict[str, torch.Tensor], m: int, backend: str) -> list[dict]:
    """Each projection at `m` rows, fused and split, with the engine's weights and fresh ones,
    and gate and up apart into the halves of one buffer."""
    qkv, gate_up = weights["qkv"], weights["gate_up"]
    dev, dtype = qkv.device, qkv.dtype
    q_w, k_w, v_w = (w.contiguous() for w in qkv.split([a.q_size, a.kv_size, a.kv_size]))
    gate_w, up_w = (w.contiguous() for w in gate_up.split(a.intermediate_size))
    x = torch.randn(m, a.hidden_size, device=dev, dtype=dtype)
    h = torch.randn(m, a.intermediate_size, device=dev, dtype=dtype)
    cases = {
        "qkv fused": [(x, qkv)], "q,k,v split": [(x, q_w), (x, k_w), (x, v_w)],
        "o": [(x, weights["o"])],
        "gate_up fused": [(x, gate_up)], "gate,up split": [(x, gate_w), (x, up_w)],
        "gate,up split, 3D input": [(x[None], gate_w), (x[None], up_w)],
        "down": [(h, weights["down"])],
    }
    rows = []

    def add(case: str, kind: str, fn, pairs) -> None:
        ms = time_ms(fn, dev, iters=20, warmup=3)
        flops = sum(2 * inp.numel() // inp.shape[-1] * w.shape[0] * w.shape[1] for inp, w in pairs)
        weight_bytes = sum(w.numel() * w.element_size() for _, w in pairs)
        kernels = " | ".join(name for name, _, _ in kernels_ms(fn, 3)[1]) if dev.type == "cuda" else ""
        rows.append(dict(backend=backend, rows=m, case=case, weights=kind, ms=ms, tflops=flops / ms / 1e9,
                         weight_tb_s=weight_bytes / ms / 1e9, kernels=kernels))
        print(f"{backend:<8} {m:5d} {case:<30} {kind:<6} {ms:7.3f} ms {flops / ms / 1e9:6.0f} TFLOP/s "
              f"{weight_bytes / ms / 1e9:5.2f} TB/s of weights")

    for name, calls in cases.items():
        for kind in ("engine", "fresh"):
            pairs = calls if kind == "engine" else [(inp, torch.randn_like(w) * 0.02) for inp, w in calls]
            add(name, kind, lambda pairs=pairs: [F.linear(inp, w) for inp, w in pairs], pairs)
    halves = torch.empty(m, 2 * a.intermediate_size, device=dev, dtype=dtype)
    into = [(gate_w, halves[:, :a.intermediate_size]), (up_w, halves[:, a.intermediate_size:])]
    add("gate,up split into one buffer", "engine", lambda: [torch.mm(x, w.t(), out=dst) for w, dst in into],
        [(x, gate_w), (x, up_w)])
    return rows


if __name__ == "__main__":
    main(*sys.argv[1:3])
