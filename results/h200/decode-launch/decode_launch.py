"""Launch options of the decode split kernel (num_warps, num_stages, BLOCK_N) against the kernel
before the work plan, per layer of the Llama-3.1-8B shape, timed as CUDA graphs of a 32-layer
step (as decode_skew.py does), with each compiled variant's registers per thread and spills.
The question: why uniform batches (64 x 1k) got slower with the work plan, and which options
win it back without losing the skewed batches.

python decode_launch.py BEFORE.py OUT_DIR      (BEFORE.py: git show d861946:kernels/decode_attention.py)"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)) + "/../decode-skew")
import decode_skew as ds  # noqa: E402

from pdtune import kernels as k  # noqa: E402
from pdtune.kernels import decode_attention as da  # noqa: E402
from pdtune.perf.environment import environment  # noqa: E402

CASES = [c for c in ds.CASES if c[0] in ("1 x 1k", "1 x 16k", "64 x 1k", "256 x 1k",
                                         "20: 2 x 16k + 7.9k + 17 x 300", "64: 16k + 63 x 1k")]
# (num_warps, num_stages, BLOCK_N); Triton's defaults are 4 warps, 3 stages.
OPTIONS = [(4, 3, 64), (4, 2, 64), (4, 1, 64), (8, 3, 64), (8, 2, 64), (4, 3, 32), (4, 2, 32), (8, 2, 32),
           (4, 2, 128), (8, 2, 128)]


class WithOptions:
    """The split kernel launched with fixed launch options (the module calls kernel[grid](...))."""

    def __init__(self, kernel, **options):
        self.kernel, self.options = kernel, options

    def __getitem__(self, grid):
        launch = self.kernel[grid]
        return lambda *args, **kwargs: launch(*args, **{**kwargs, **self.options})


def compiled_variants(kernel) -> dict:
    return {id(c): c for cache in kernel.device_caches.values() for c in cache[0].values()}


def main(before_path: str, out_dir: str) -> None:
    dev, dtype = torch.device("cuda"), torch.bfloat16
    before = ds.load_before(before_path)
    split_kernel = da._decode_split_kernel
    need = max(sum(-(-n // ds.BLOCK) for n in lens) for _, lens in CASES)
    k_cache = torch.randn(need, ds.BLOCK, ds.KV_HEADS, ds.DIM, device=dev, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    rows, regs = [], {}
    for name, lens in CASES:
        table, seq_lens, q = ds.paged_batch(lens, need, dev, dtype)
        scale = ds.DIM ** -0.5
        ref = k.paged_decode_attention_ref(q, k_cache, v_cache, table, seq_lens, scale).float()
        row = {"case": name, "before_us": 1e3 * ds.graph_layer_ms(
            lambda: [before(q, k_cache, v_cache, table, seq_lens, scale) for _ in range(ds.LAYERS)], dev)}
        for warps, stages, block_n in OPTIONS:
            known = compiled_variants(split_kernel)
            da._decode_split_kernel = WithOptions(split_kernel, num_warps=warps, num_stages=stages)
            try:
                err = (k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, scale, block_n=block_n)
                       .float() - ref).abs().max().item()

                def step():
                    plan = k.plan_decode_work(seq_lens, ds.KV_HEADS, block_n=block_n)
                    for _ in range(ds.LAYERS):
                        k.paged_decode_attention(q, k_cache, v_cache, table, seq_lens, scale, plan, block_n=block_n)

                us = 1e3 * ds.graph_layer_ms(step, dev)
                label = f"w{warps}s{stages}n{block_n}"
                new = [(c.n_regs, c.n_spills) for key, c in compiled_variants(split_kernel).items() if key not in known]
                regs[label] = new or regs.get(label, [])
                row[label] = dict(us=us, err=err, regs=regs[label])
            finally:
                da._decode_split_kernel = split_kernel
        rows.append(row)
        print(name, f"before {row['before_us']:.1f}",
              " ".join(f"{key} {v['us']:.1f}({v['regs'][0][0] if v['regs'] else '?'}r)" for key, v in row.items()
                       if isinstance(v, dict)), flush=True)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "decode-launch.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "options": OPTIONS, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
