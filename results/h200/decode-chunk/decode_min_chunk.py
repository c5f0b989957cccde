"""Decode attention at small total contexts with shorter chunks: the work plan's smallest chunk
(`_min_chunk`, 2 x BLOCK_N = 128 tokens) against 64 and 32 (BLOCK_N 64 or 32), per layer of the
Llama-3.1-8B shape, timed as CUDA graphs of a 32-layer step with the plan made once a step, as
the engine runs it. Session 10's profile put 1 x 1k's attention at 9 us a layer for 4 MB of KV
(64 programs of two 64-token tiles each, latency-bound) plus 2 us of merge; the smallest chunk
only changes the plans of small batches (a 64 x 1k step's chunk is 1,024 tokens either way).

Run in session 16 at 38cf1ee, before the engine took its tiling from the batch size
(`decode_tiling`: 32/32 up to 4 sequences, 64/128 above); it patches the `_min_chunk` of then.

python decode_min_chunk.py OUT_DIR"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../decode-skew")
import decode_skew as ds  # noqa: E402

from pdtune import kernels as k  # noqa: E402
from pdtune.kernels import decode_attention as da  # noqa: E402
from pdtune.perf.environment import environment  # noqa: E402

CASES = [("1 x 512", [512]), ("1 x 1k", [1024]), ("1 x 2k", [2048]), ("1 x 4k", [4096]), ("2 x 1k", [1024] * 2),
         ("4 x 1k", [1024] * 4), ("8 x 1k", [1024] * 8), ("64 x 1k", [1024] * 64)]
VARIANTS = [(64, 128), (64, 64), (32, 64), (32, 32)]  # (BLOCK_N, smallest chunk); the first is the engine's


def main(out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    need = max(sum(-(-n // ds.BLOCK) for n in lens) for _, lens in CASES)
    k_cache = torch.randn(need, ds.BLOCK, ds.KV_HEADS, ds.DIM, device=dev, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    scale = ds.DIM ** -0.5
    engine_min_chunk = da._min_chunk
    rows = []
    for name, lens in CASES:
        table, seq_lens, q = ds.paged_batch(lens, need, dev, dtype)
        ref = k.paged_decode_attention_ref(q, k_cache, v_cache, table, seq_lens, scale).float()
        row = dict(case=name, batch=len(lens), kv_tokens=sum(lens))
        for block_n, min_chunk in VARIANTS:
            da._min_chunk = lambda _block_n, m=min_chunk: m
            plan = k.plan_decode_work(seq_lens, ds.KV_HEADS, block_n=block_n)
            batch = len(lens)
            chunk, chunks = plan.table[2 * batch:2 * batch + 2].tolist()
            err = (k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, scale, plan, block_n=block_n).float()
                   - ref).abs().max().item()

            def step(block_n=block_n):
                plan = k.plan_decode_work(seq_lens, ds.KV_HEADS, block_n=block_n)
                for _ in range(ds.LAYERS):
                    k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, scale, plan, block_n=block_n)

            key = f"n{block_n}_min{min_chunk}"
            row.update({f"{key}_us": ds.graph_layer_ms(step, dev) * 1e3, f"{key}_chunk": chunk,
                        f"{key}_chunks": chunks, f"{key}_err": err})
        da._min_chunk = engine_min_chunk
        rows.append(row)
        print(name.ljust(10), "  ".join(f"{bn}/{mc}: {row[f'n{bn}_min{mc}_us']:6.2f} us ({row[f'n{bn}_min{mc}_chunks']} chunks)"
                                        for bn, mc in VARIANTS), flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decode-min-chunk.json"), "w") as f:
        json.dump(dict(environment=environment(" ".join(sys.argv)), variants=VARIANTS, per_layer=rows), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
