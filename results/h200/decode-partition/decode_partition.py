"""Decode attention on the pdmux decode partitions: per layer of the Llama-3.1-8B shape, timed as
CUDA graphs of a 32-layer step captured on each partition's decode stream (a graph keeps the SMs
of the stream it was captured on), for launch options of the split kernel, with each compiled
variant's registers and shared memory. The question: the profile's cost per context token on 24
SMs is 3.9x the whole GPU's (0.93 TB/s of KV, where the same partition's GEMMs read 2.1 TB/s and
a copy kernel ~70 GB/s per SM): is the kernel limited by its bytes in flight per SM (more stages,
more warps, other tiles help) rather than by the partition's bandwidth share?

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
from pdtune.perf.timing import measure_ceilings  # noqa: E402

CASES = [("64 x 1k", [1024] * 64), ("64 x 4k", [4096] * 64), ("128 x 2k", [2048] * 128),
         ("20: 2 x 16k + 7.9k + 17 x 300", [16384, 16384, 7920] + [300] * 17)]
# (num_warps, num_stages, BLOCK_N); the engine's is (4, 2, 64) above 4 sequences.
OPTIONS = [(4, 2, 64), (4, 3, 64), (4, 4, 64), (8, 2, 64), (8, 3, 64), (8, 4, 64), (4, 2, 32), (4, 4, 32),
           (8, 4, 32), (4, 2, 128), (8, 2, 128), (8, 3, 128)]
SPLITS = ((112, 20), (84, 48))


def measure(step, part, kernel, kv_bytes: int, ref: torch.Tensor, known: dict) -> tuple[dict, list]:
    """One variant's step (32 layers, returning the last one's output) on `part`'s decode stream:
    its error against `ref`, its time a layer as a graph replay, and the kernel variants it
    compiled (registers, spills, shared bytes) that were not in `known`."""
    with torch.cuda.stream(part.decode_stream):
        err = (step().float() - ref).abs().max().item()
    part.decode_stream.synchronize()
    us = 1e3 * ds.graph_layer_ms(step, torch.device("cuda"), part.decode_stream, iters=10 if kv_bytes > 5e8 else 30)
    new = [(c.n_regs, c.n_spills, getattr(c.metadata, "shared", None))
           for key, c in dl.compiled_variants(kernel).items() if key not in known]
    return dict(us=us, tb_per_s=kv_bytes / us / 1e6, err=err), new


def setup(cases, splits, dtype: torch.dtype):
    """The copy bandwidth, the decode partitions of `splits` (and the whole GPU), and a paged KV
    pool (its block count, K, V) that holds the largest case."""
    dev = torch.device("cuda")
    copy = measure_ceilings(dev, dtype).copy_bytes_per_s
    parts = [p for p in make_partitions(splits) if p.decode_stream is not None]
    need = max(sum(-(-n // ds.BLOCK) for n in lens) for _, lens in cases)
    k_cache = torch.randn(need, ds.BLOCK, ds.KV_HEADS, ds.DIM, device=dev, dtype=dtype)
    return copy, parts, need, k_cache, torch.randn_like(k_cache)


def row_line(row: dict) -> str:
    return f"{row['case']:30s} {row['decode_sms']:3d} SMs KV {row['kv_bytes'] / 1e6:5.0f} MB/layer  " + " ".join(
        f"{key} {v['us']:.1f}us/{v['tb_per_s']:.2f}" if "us" in v else f"{key} ERR {v['error'][:80]}"
        for key, v in row.items() if isinstance(v, dict))


def main(out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    copy, parts, need, k_cache, v_cache = setup(CASES, SPLITS, dtype)
    scale = ds.DIM ** -0.5
    split_kernel = da._decode_split_kernel
    rows, regs = [], {}
    for name, lens in CASES:
        table, seq_lens, q = ds.paged_batch(lens, need, dev, dtype)
        ref = k.paged_decode_attention_ref(q, k_cache, v_cache, table, seq_lens, scale).float()
        kv_bytes = sum(lens) * 2 * ds.KV_HEADS * ds.DIM * dtype.itemsize
        for part in parts:
            row = {"case": name, "decode_sms": part.decode_sms, "kv_bytes": kv_bytes}
            for warps, stages, block_n in OPTIONS:
                label = f"w{warps}s{stages}n{block_n}"
                known = dl.compiled_variants(split_kernel)
                da._decode_split_kernel = dl.WithOptions(split_kernel, num_warps=warps, num_stages=stages)
                try:
                    def step(block_n=block_n):
                        plan = k.plan_decode_work(seq_lens, ds.KV_HEADS, block_n=block_n)
                        return [k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, scale, plan,
                                                         block_n=block_n) for _ in range(ds.LAYERS)][-1]

                    row[label], new = measure(step, part, split_kernel, kv_bytes, ref, known)
                    regs[label] = new or regs.get(label, [])
                except Exception as exc:  # an option the compiler refuses (shared memory) is reported, not fatal
                    row[label] = dict(error=repr(exc)[:200])
                finally:
                    da._decode_split_kernel = split_kernel
            rows.append(row)
            print(row_line(row), flush=True)
    print("variants (regs, spills, shared bytes):", regs, flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decode-partition.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "copy_bytes_per_s": copy, "options": OPTIONS,
                   "variants": regs, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
