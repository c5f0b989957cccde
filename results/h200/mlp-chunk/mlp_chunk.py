"""Does splitting a long prefill's MLP into token chunks pay? Llama-3.1-8B MLP shapes, bf16:
gate_up GEMM, pdtune's Triton SiLU-mul, down GEMM, on 8192 tokens whole vs in chunks (smaller
chunks keep the gate_up output nearer L2 but give the GEMMs fewer rows). Writes mlp-chunk.json."""

import json
import os
import sys

import torch

from pdtune import kernels as k
from pdtune.perf.environment import environment


def mlp(x, w_gu, w_d, chunk, out):
    for s in range(0, x.shape[0], chunk):
        torch.matmul(k.silu_and_mul(torch.matmul(x[s:s + chunk], w_gu)), w_d, out=out[s:s + chunk])
    return out


def time_ms(fn, iters=20):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main(out_dir):
    torch.manual_seed(0)
    hidden, inter, tokens = 4096, 14336, 8192
    x = torch.randn(tokens, hidden, device="cuda", dtype=torch.bfloat16)
    w_gu = torch.randn(hidden, 2 * inter, device="cuda", dtype=torch.bfloat16) / hidden ** 0.5
    w_d = torch.randn(inter, hidden, device="cuda", dtype=torch.bfloat16) / inter ** 0.5
    out = torch.empty(tokens, hidden, device="cuda", dtype=torch.bfloat16)
    ref = mlp(x, w_gu, w_d, tokens, torch.empty_like(out)).clone()
    rows = []
    for chunk in (8192, 4096, 2048, 1024, 512, 256):
        ms = time_ms(lambda: mlp(x, w_gu, w_d, chunk, out))
        err = (mlp(x, w_gu, w_d, chunk, out) - ref).abs().max().item()
        gu_ms = time_ms(lambda: torch.matmul(x[:chunk], w_gu)) * tokens / chunk
        rows.append({"chunk": chunk, "mlp_ms": ms, "gate_up_gemm_ms": gu_ms, "max_abs_diff": err,
                     "tflops": 2 * tokens * hidden * 3 * inter / ms / 1e9})
        print(rows[-1], flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "mlp-chunk.json"), "w") as f:
        json.dump({"environment": environment(), "tokens": tokens, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
