"""Decode attention with bulk-copied (TMA) page tiles against the gathered tiles the engine used
through session 17, on the pdmux decode partitions and the whole GPU: per layer of the
Llama-3.1-8B shape, timed as CUDA graphs of a 32-layer step captured on each partition's decode
stream. The question: does a tile that lands in shared memory by one bulk copy (pipelined by
Triton over `num_stages` buffers) pull more of the partition's bandwidth than the gathered one
(1.1-1.3 TB/s on 24 SMs in session 17, where cuBLAS pulls 2.9)? Tiles must lie inside a page,
so the TMA variants run on 64- and 128-token pages; the gathered kernel runs on 16 (the engine's
default then) and 64.

python decode_tma.py OUT_DIR"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../../decode-skew")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../../decode-launch")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../../decode-partition")
import decode_launch as dl  # noqa: E402
import decode_partition as dp  # noqa: E402
import decode_skew as ds  # noqa: E402

from pdtune import kernels as k  # noqa: E402
from pdtune.executor.partitions import make_partitions  # noqa: E402
from pdtune.kernels import decode_attention as da  # noqa: E402
from pdtune.perf.environment import environment  # noqa: E402
from pdtune.perf.timing import measure_ceilings  # noqa: E402

CASES = [("1 x 1k", [1024]), ("64 x 1k", [1024] * 64), ("128 x 2k", [2048] * 128),
         ("20: 2 x 16k + 7.9k + 17 x 300", [16384, 16384, 7920] + [300] * 17)]
# (label, page size, TMA, num_warps, num_stages, BLOCK_N or None for the batch's default tile)
OPTIONS = [
    ("gather p16", 16, False, 4, 2, None),
    ("tma p64 w4s2", 64, True, 4, 2, None),
    ("tma p64 w4s3", 64, True, 4, 3, None),
    ("tma p64 w4s4", 64, True, 4, 4, None),
    ("tma p64 w8s3", 64, True, 8, 3, None),
    ("tma p128 w8s3 n128", 128, True, 8, 3, 128),
]
SPLITS = ((112, 20), (84, 48))


def main(out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    copy = measure_ceilings(dev, dtype).copy_bytes_per_s
    parts = [p for p in make_partitions(SPLITS) if p.decode_stream is not None]
    most = max(sum(lens) for _, lens in CASES) + 128 * 128
    caches = {}
    for page in sorted({o[1] for o in OPTIONS}):
        kc = torch.randn(most // page, page, ds.KV_HEADS, ds.DIM, device=dev, dtype=dtype)
        caches[page] = (kc, torch.randn_like(kc))
    split_kernel = da._decode_split_kernel
    scale = ds.DIM ** -0.5
    rows, variants = [], {}
    for name, lens in CASES:
        kv_bytes = sum(lens) * 2 * ds.KV_HEADS * ds.DIM * dtype.itemsize
        batches = {page: ds.paged_batch(lens, caches[page][0].shape[0], dev, dtype, block=page) for page in caches}
        refs = {page: k.paged_decode_attention_ref(q, *caches[page], table, seq_lens, scale).float()
                for page, (table, seq_lens, q) in batches.items()}
        for part in parts:
            row = {"case": name, "decode_sms": part.decode_sms, "kv_bytes": kv_bytes}
            for label, page, tma, warps, stages, block_n in OPTIONS:
                (kc, vc), (table, seq_lens, q) = caches[page], batches[page]
                known = dl.compiled_variants(split_kernel)
                da._decode_split_kernel = dl.WithOptions(split_kernel, num_warps=warps, num_stages=stages)
                try:
                    def step(kc=kc, vc=vc, table=table, seq_lens=seq_lens, q=q, block_n=block_n, tma=tma):
                        plan = k.plan_decode_work(seq_lens, ds.KV_HEADS, block_n=block_n)
                        return [k.paged_decode_attention(q, kc, vc, table, seq_lens, scale, plan, page_tma=tma)
                                for _ in range(ds.LAYERS)][-1]

                    row[label], new = dp.measure(step, part, split_kernel, kv_bytes, refs[page], known)
                    variants[label] = new or variants.get(label, [])
                except Exception as exc:  # a variant the compiler refuses is reported, not fatal
                    row[label] = dict(error=repr(exc)[:300])
                finally:
                    da._decode_split_kernel = split_kernel
            rows.append(row)
            print(dp.row_line(row), flush=True)
    print("variants (regs, spills, shared bytes):", variants, flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decode-tma.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "copy_bytes_per_s": copy,
                   "options": OPTIONS, "variants": variants, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
