"""What a token count the linear layers have not seen costs: the 8B shape's four projections
(bf16, `F.linear` as the engine calls them) timed on their first, second and third call for 24 new
row counts between 64 and 2048, as a chunked step meets them (its token count is the prefill chunk
plus the decode batch). cuBLAS picks a kernel per shape and, with lazy module loading, loads a
kernel the first time it runs; either lands in the first run of a bench and not in the second.
With --green, the row counts are met first on the default stream (as the engine's start-up pass
does) and then timed on a 108-SM green-context stream: whether what cuBLAS caches holds there too.

python gemm_first_call.py OUT_DIR [--green]"""

import json
import os
import sys
import time

import torch
import torch.nn.functional as F

from pdtune.perf.environment import environment

SHAPES = {"qkv": (6144, 4096), "o": (4096, 4096), "gate_up": (28672, 4096), "down": (4096, 14336)}


def call_ms(x: torch.Tensor, w: torch.Tensor) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    F.linear(x, w)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def main(out_dir: str, green: bool = False) -> None:
    dev = torch.device("cuda")
    weights = {name: torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02 for name, (n, k) in SHAPES.items()}
    for w in weights.values():  # the first call of all: the context, the handle, the workspace
        F.linear(torch.randn(512, w.shape[1], device=dev, dtype=torch.bfloat16), w)
    gen = torch.Generator().manual_seed(0)
    rows = []
    counts = sorted(set(torch.randint(64, 2048, (24,), generator=gen).tolist()))
    stream = torch.cuda.current_stream()
    if green:
        from pdtune.executor.partitions import make_partitions

        for m in counts:  # met once on the default stream, as at the engine's start-up
            for w in weights.values():
                F.linear(torch.zeros(m, w.shape[1], device=dev, dtype=torch.bfloat16), w)
        stream = next(p for p in make_partitions(((108, 24),)) if p.decode_sms == 24).prefill_stream
    with torch.cuda.stream(stream):
        if green:  # the stream's own allocator pool, grown first so that no cudaMalloc is timed
            torch.empty(2 << 30, dtype=torch.uint8, device=dev)  # freed at once, cached for this stream
        for m in counts:
            for name, w in weights.items():
                x = torch.randn(m, w.shape[1], device=dev, dtype=torch.bfloat16)
                first, second, third = (call_ms(x, w) for _ in range(3))
                rows.append(dict(rows=m, layer=name, first_ms=first, second_ms=second, third_ms=third))
    for name in SHAPES:
        done = [r for r in rows if r["layer"] == name]
        med = lambda key: sorted(r[key] for r in done)[len(done) // 2]  # noqa: E731
        print(f"{name:8s} {len(done)} row counts: first call median {med('first_ms'):.3f} ms, second "
              f"{med('second_ms'):.3f}, third {med('third_ms'):.3f}, first-call extra in all "
              f"{sum(r['first_ms'] - r['third_ms'] for r in done):.1f} ms", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "gemm-first-call.json"), "w") as f:
        json.dump({"environment": environment(), "module_loading": os.environ.get("CUDA_MODULE_LOADING"),
                   "green_stream": green, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], "--green" in sys.argv[2:])
