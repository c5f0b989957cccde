"""Decode attention on the pdmux decode partitions: per layer of the Llama-3.1-8B shape, timed as
CUDA graphs of a 32-layer step captured on each partition's decode stream (a graph keeps the SMs
of the stream it was captured on), for a few launch options of the split kernel. The question:
on 24-40 SMs, is the kernel limited by its bytes in flight per SM (deeper pipelining or wider
tiles help) rather than by the partition's bandwidth share?

python decode_partition.py OUT_DIR"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../decode-skew")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../decode-launch")
import decode_launch as dl  # noqa: E402
import decode_skew as ds  # noqa: E402

from pdtune import kernels as k  # noqa: E402
from pdtune.executor.partitions import make_partitions  # noqa: E402
from pdtune.kernels import decode_attention as da  # noqa: E402
from pdtune.perf.environment import environment  # noqa: E402

CASES = [("64 x 1k", [1024] * 64), ("11 x 8k", [8192] * 11), ("20: 2 x 16k + 7.9k + 17 x 300", [16384, 16384, 7920] + [300] * 17)]
OPTIONS = [(4, 2, 64), (4, 3, 64), (4, 4, 64), (4, 2, 128), (4, 3, 128), (8, 3, 128)]
SPLITS = ((112, 20), (96, 36), (72, 60))


def main(out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    parts = [p for p in make_partitions(SPLITS) if p.decode_stream is not None]
    need = max(sum(-(-n // ds.BLOCK) for n in lens) for _, lens in CASES)
    k_cache = torch.randn(need, ds.BLOCK, ds.KV_HEADS, ds.DIM, device=dev, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    split_kernel = da._decode_split_kernel
    rows = []
    for name, lens in CASES:
        table, seq_lens, q = ds.paged_batch(lens, need, dev, dtype)
        kv_bytes = sum(lens) * 2 * ds.KV_HEADS * ds.DIM * dtype.itemsize
        for part in parts:
            row = {"case": name, "decode_sms": part.decode_sms, "kv_bytes": kv_bytes}
            for warps, stages, block_n in OPTIONS:
                da._decode_split_kernel = dl.WithOptions(split_kernel, num_warps=warps, num_stages=stages)
                try:
                    def step():
                        plan = k.plan_decode_work(seq_lens, ds.KV_HEADS, block_n=block_n)
                        for _ in range(ds.LAYERS):
                            k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, 0.088, plan, block_n=block_n)

                    row[f"w{warps}s{stages}n{block_n}_us"] = 1e3 * ds.graph_layer_ms(step, dev, part.decode_stream)
                finally:
                    da._decode_split_kernel = split_kernel
            rows.append(row)
            times = {key: round(v, 1) for key, v in row.items() if key.endswith("_us")}
            print(f"{name:32s} {part.decode_sms:3d} SMs  KV {kv_bytes / 1e6:6.0f} MB/layer ", times, flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decode-partition.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "options": OPTIONS, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
