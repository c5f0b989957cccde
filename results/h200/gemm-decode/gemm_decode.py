"""The decode step's GEMMs (Llama-3.1-8B shape, bf16) at decode batch sizes, each as a CUDA graph
of 32 calls on 32 distinct weights (as a step's layers run: no weight stays in L2), against the
weight-read floor over the measured copy bandwidth; on the whole GPU and on a 24-SM decode
partition. Variants: F.linear on [N, K] weights (the engine's), the same with cuBLASLt preferred,
and x @ W.T stored [K, N]. The question: where a 64 x 1k decode step's GEMMs lose 0.5 ms against
their floor (session 10's profile: 4.38 ms of GEMMs for 3.9 ms of weights).

python gemm_decode.py OUT_DIR"""

import json
import os
import sys

import torch
import torch.nn.functional as F

from pdtune.executor.partitions import make_partitions
from pdtune.perf.environment import environment
from pdtune.perf.timing import measure_ceilings, time_ms

SHAPES = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336),
          "lm_head": (128256, 4096)}
BATCHES = (1, 64, 128)
LAYERS = 32


def graph_us(fn, stream: torch.cuda.Stream) -> float:
    """Microseconds of one replay of `fn` captured on `stream`."""
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        fn()
    return 1e3 * time_ms(graph.replay, torch.device("cuda"), iters=20)


def main(out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    copy = measure_ceilings(dev, dtype).copy_bytes_per_s
    parts = [p for p in make_partitions(((112, 20),)) if p.decode_stream is not None]
    rows = []
    for name, (n, kdim) in SHAPES.items():
        copies = LAYERS if n * kdim * 2 < 4e8 else 4  # enough distinct weights that none stays in L2
        weights = [torch.randn(n, kdim, device=dev, dtype=dtype) for _ in range(copies)]
        transposed = [w.t().contiguous() for w in weights]
        floor_us = n * kdim * 2 / copy * 1e6
        for batch in BATCHES:
            x = torch.randn(batch, kdim, device=dev, dtype=dtype)
            for part in parts:
                row = dict(shape=name, n=n, k=kdim, batch=batch, sms=part.decode_sms, floor_us=floor_us)
                for label, fn, lib in (
                    ("linear", lambda: [F.linear(x, w) for w in weights], "cublas"),
                    ("linear_lt", lambda: [F.linear(x, w) for w in weights], "cublaslt"),
                    ("matmul_kn", lambda: [x @ w for w in transposed], "cublas"),
                ):
                    torch.backends.cuda.preferred_blas_library(lib)
                    row[label] = graph_us(fn, part.decode_stream) / copies
                torch.backends.cuda.preferred_blas_library("cublas")
                rows.append(row)
                print(f"{name:8s} M={batch:3d} {part.decode_sms:3d} SMs floor {floor_us:6.1f} us  " + "  ".join(
                    f"{lab} {row[lab]:6.1f} ({row[lab] / floor_us:.2f}x)" for lab in ("linear", "linear_lt", "matmul_kn")
                ) if part.decode_sms == 132 else f"{name:8s} M={batch:3d} {part.decode_sms:3d} SMs  " + "  ".join(
                    f"{lab} {row[lab]:6.1f} ({n * kdim * 2 / row[lab] / 1e6:.2f} TB/s)" for lab in ("linear", "linear_lt", "matmul_kn")),
                    flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "gemm-decode.json"), "w") as f:
        json.dump(dict(environment=environment(" ".join(sys.argv)), copy_bytes_per_s=copy, rows=rows), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
