"""Decode attention with more KV bytes in flight per SM: the split kernel's tile loop as it is
(PIPELINE 0: V loaded after the scores), keys and values of a tile loaded together (1), and the
next tile's loaded before this tile's math (2, two tiles a program in flight), each with the
programs of one work slot's KV heads adjacent in launch order (HEAD_FAST) or not, and a few
launch options; per layer of the Llama-3.1-8B shape, CUDA graphs of a 32-layer step captured on
the pdmux decode partitions (24, 48 SMs) and the whole GPU. Session 17's sweep
(decode-partition/) put the kernel at 1.1-1.3 TB/s on 24 SMs, where cuBLAS reads 2.9-3.0 TB/s.

Run in session 17 at fc8ecec, whose split kernel had the PIPELINE and HEAD_FAST switches; the
kernel after it keeps HEAD_FAST's launch order only (the loads reordered ran slower everywhere).

python decode_prefetch.py OUT_DIR        (on a GPU)
TRITON_INTERPRET=1 python decode_prefetch.py --check   (every variant against the reference, CPU)"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../decode-skew")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../decode-partition")
import decode_skew as ds  # noqa: E402

from pdtune import kernels as k  # noqa: E402
from pdtune.kernels import decode_attention as da  # noqa: E402
from pdtune.kernels.attention_tiles import LOG2E, dot_precision  # noqa: E402

CASES = [("64 x 1k", [1024] * 64), ("64 x 4k", [4096] * 64), ("128 x 2k", [2048] * 128),
         ("20: 2 x 16k + 7.9k + 17 x 300", [16384, 16384, 7920] + [300] * 17), ("1 x 1k", [1024])]
# (PIPELINE, HEAD_FAST, num_warps, num_stages, BLOCK_N); the engine's is (0, False, 4, 2, 64).
VARIANTS = [(0, False, 4, 2, 64), (0, True, 4, 2, 64), (1, False, 4, 2, 64), (1, False, 4, 1, 64),
            (2, False, 4, 1, 64), (2, False, 4, 2, 64), (2, True, 4, 1, 64), (2, False, 8, 1, 64),
            (2, False, 4, 1, 32), (2, False, 8, 1, 128), (1, False, 8, 1, 128), (2, False, 4, 1, 128)]
SPLITS = ((112, 20), (84, 48))


def attention(variant, q, k_cache, v_cache, table, seq_lens, scale, plan):
    pipeline, head_fast, warps, stages, _ = variant
    batch, n_q_heads, head_dim = q.shape
    n_kv_heads = k_cache.shape[2]
    out = torch.empty_like(q)
    part_out = torch.empty((plan.num_work, n_q_heads, head_dim), dtype=torch.float32, device=q.device)
    part_lse = torch.empty((plan.num_work, n_q_heads), dtype=torch.float32, device=q.device)
    grid = (n_kv_heads, plan.num_work) if head_fast else (plan.num_work, n_kv_heads)
    da._decode_split_kernel[grid](
        q, k_cache, v_cache, table, seq_lens, plan.table, part_out, part_lse, out, scale * LOG2E, batch,
        n_q_heads, n_q_heads // n_kv_heads, k_cache.shape[1], q.stride(0), q.stride(1), k_cache.stride(0),
        k_cache.stride(1), k_cache.stride(2), table.stride(0), out.stride(0), out.stride(1),
        BLOCK_M=16, BLOCK_N=plan.block_n, HEAD_DIM=head_dim, DOT_PRECISION=dot_precision(q.dtype),
        PIPELINE=pipeline, HEAD_FAST=head_fast, num_warps=warps, num_stages=stages)
    da._decode_reduce_kernel[(batch, n_q_heads)](plan.table, part_out, part_lse, out, batch, n_q_heads,
                                                  out.stride(0), out.stride(1), BLOCK_S=64, HEAD_DIM=head_dim)
    return out


def check() -> None:
    torch.manual_seed(0)
    for lens in ([40], [300, 17, 64], [5, 129, 1]):
        need = sum(-(-n // ds.BLOCK) for n in lens) + 4
        k_cache = torch.randn(need, ds.BLOCK, 2, 32)
        v_cache = torch.randn_like(k_cache)
        table, seq_lens, _ = ds.paged_batch(lens, need, torch.device("cpu"), torch.float32)
        q = torch.randn(len(lens), 8, 32)
        ref = k.paged_decode_attention_ref(q, k_cache, v_cache, table, seq_lens, 0.17)
        for variant in VARIANTS:
            plan = k.plan_decode_work(seq_lens, 2, block_n=variant[4] // 4)
            err = (attention(variant, q, k_cache, v_cache, table, seq_lens, 0.17, plan) - ref).abs().max().item()
            assert err < 1e-4, (lens, variant, err)
    print("every variant matches the reference")


def main(out_dir: str) -> None:
    import decode_launch as dl
    from decode_partition import measure, row_line, setup

    from pdtune.perf.environment import environment

    dev, dtype = torch.device("cuda"), torch.bfloat16
    copy, parts, need, k_cache, v_cache = setup(CASES, SPLITS, dtype)
    scale = ds.DIM ** -0.5
    rows, regs = [], {}
    for name, lens in CASES:
        table, seq_lens, q = ds.paged_batch(lens, need, dev, dtype)
        ref = k.paged_decode_attention_ref(q, k_cache, v_cache, table, seq_lens, scale).float()
        kv_bytes = sum(lens) * 2 * ds.KV_HEADS * ds.DIM * dtype.itemsize
        for part in parts:
            row = {"case": name, "decode_sms": part.decode_sms, "kv_bytes": kv_bytes}
            for variant in VARIANTS:
                label = "p{}{}w{}s{}n{}".format(variant[0], "h" if variant[1] else "", *variant[2:])
                known = dl.compiled_variants(da._decode_split_kernel)
                try:
                    def step(variant=variant):
                        plan = k.plan_decode_work(seq_lens, ds.KV_HEADS, block_n=variant[4])
                        return [attention(variant, q, k_cache, v_cache, table, seq_lens, scale, plan)
                                for _ in range(ds.LAYERS)][-1]

                    row[label], new = measure(step, part, da._decode_split_kernel, kv_bytes, ref, known)
                    regs[label] = new or regs.get(label, [])
                except Exception as exc:  # a variant the compiler refuses is reported, not fatal
                    row[label] = dict(error=repr(exc)[:300])
            rows.append(row)
            print(row_line(row), flush=True)
    print("variants (regs, spills, shared bytes):", regs, flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decode-prefetch.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "copy_bytes_per_s": copy,
                   "variants": VARIANTS, "compiled": regs, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    check() if sys.argv[1] == "--check" else main(sys.argv[1])
