"""What a prompt length torch's fused attention has not seen costs: the engine's fresh-prefill
call (causal SDPA, 32 query / 8 KV heads, head dim 128, bf16, GQA) timed on its first and second
call for 24 new lengths, per SDPA backend. A backend that builds a plan per shape (cuDNN) pays
that on every new length, which a serving run meets on most prompts. Then the engine's way out:
its attention with the plans of every prompt bucket built first (`prepare_kernels`), on 24
lengths it never saw.

python sdpa_first_call.py OUT_DIR"""

import json
import os
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from pdtune.model.attention import PagedAttention
from pdtune.model.ops import select_ops
from pdtune.perf.environment import environment

BACKENDS = {"default": None, "cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}


def call_ms(q, k, v, backend) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    if backend is None:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    else:
        with sdpa_kernel(backend):
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def main(out_dir: str) -> None:
    gen = torch.Generator().manual_seed(0)
    rows = []
    for offset, (name, backend) in enumerate(BACKENDS.items()):
        lengths = sorted(set(torch.randint(64, 4096, (24,), generator=gen).tolist()))
        for n in lengths:
            n += offset  # each backend meets lengths the others did not
            q = torch.randn(1, 32, n, 128, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(1, 8, n, 128, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            try:
                first, second, third = (call_ms(q, k, v, backend) for _ in range(3))
            except RuntimeError as exc:
                rows.append(dict(backend=name, length=n, error=str(exc)[:200]))
                break
            rows.append(dict(backend=name, length=n, first_ms=first, second_ms=second, third_ms=third))
        done = [r for r in rows if r["backend"] == name and "first_ms" in r]
        if done:
            med = lambda key: sorted(r[key] for r in done)[len(done) // 2]  # noqa: E731
            print(f"{name:10s} {len(done)} lengths: first call median {med('first_ms'):.2f} ms, "
                  f"second {med('second_ms'):.2f} ms, third {med('third_ms'):.2f} ms, "
                  f"first-call extra in all {sum(r['first_ms'] - r['third_ms'] for r in done):.0f} ms", flush=True)
        else:
            print(name, "failed:", rows[-1].get("error"), flush=True)
    dev = torch.device("cuda")
    attn = PagedAttention(32, 8, 128, select_ops("triton", dev))
    attn.k_cache = torch.zeros(1, 16, 8, 128, device=dev, dtype=torch.bfloat16)
    attn.v_cache = torch.zeros_like(attn.k_cache)
    attn.bucket_prompts = True
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    built = attn.prepare_kernels(4200)
    torch.cuda.synchronize()
    build_ms = (time.perf_counter() - t0) * 1e3
    bucketed = []
    for n in sorted(set(torch.randint(64, 4096, (24,), generator=gen).tolist())):
        n += 7
        q = torch.randn(n, 32, 128, device=dev, dtype=torch.bfloat16)
        k, v = (torch.randn(n, 8, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
        times = []
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            attn._fresh_prefill(q, k, v, [n])
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        bucketed.append(dict(backend="bucketed", length=n, first_ms=times[0], second_ms=times[1], third_ms=times[2]))
    rows += bucketed
    med = sorted(r["first_ms"] for r in bucketed)[len(bucketed) // 2]
    print(f"bucketed: {built} plans built in {build_ms:.0f} ms; then {len(bucketed)} new lengths: first call median "
          f"{med:.2f} ms, third {sorted(r['third_ms'] for r in bucketed)[len(bucketed) // 2]:.2f} ms", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "sdpa-first-call.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
