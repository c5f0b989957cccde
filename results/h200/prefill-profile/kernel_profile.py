"""Where the 8B shape's GPU time goes, pdtune beside transformers in one process (torch profiler,
CUDA kernels): an 8192-token prefill per kernel class, and a graph-replayed decode step (1 x 1k,
64 x 1k) as the sum of its kernels against the step's event time (the rest is the gaps between
kernels). Usage: python kernel_profile.py OUT_DIR"""
import csv
import gc
import json
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.perf import hf_baseline, step_bench
from pdtune.perf.environment import environment
from pdtune.perf.timing import time_ms

CLASSES = (  # first match wins; names as cuBLAS, cuDNN, torch and pdtune's Triton kernels print them
    ("gemm", ("gemm", "nvjet", "cutlass", "xmma", "gemv", "splitk")),
    ("attention", ("flash", "fmha", "cudnn", "attention", "_decode_", "_prefill_kernel", "merge")),
    ("rmsnorm", ("rms", "norm")),
    ("silu_mul", ("silu",)),
    ("rotary_kv", ("rotary", "rope", "write_kv")),
    ("copy_cast", ("copy", "memcpy", "memset", "cat", "index", "gather", "scatter", "fill")),
)


def kernel_class(name: str) -> str:
    low = name.lower()
    return next((cls for cls, keys in CLASSES if any(k in low for k in keys)), "other")


def kernels_ms(fn, iters: int) -> tuple[dict[str, float], list[tuple[str, float, int]]]:
    """Per-call GPU time of each kernel class and of each kernel (name, ms, calls per iteration)."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    by_class: dict[str, float] = {}
    rows = []
    for ev in prof.key_averages():
        ms = ev.device_time_total / 1e3 / iters
        if ms <= 0:
            continue
        by_class[kernel_class(ev.key)] = by_class.get(kernel_class(ev.key), 0.0) + ms
        rows.append((ev.key, ms, ev.count // iters))
    rows.sort(key=lambda r: -r[1])
    return by_class, rows


def profile_pdtune(report: dict) -> dict:
    """pdtune's prefill and decode steps into `report`; returns the model's config for transformers."""
    engine = Engine(EngineConfig(model="llama-3.1-8b", load_format="dummy", max_model_len=16384,
                                 max_num_batched_tokens=8192, max_num_seqs=64, gpu_memory_utilization=0.6))
    step_bench.fill_kv_randomly(engine)
    ids, positions, meta = step_bench.prefill_inputs(engine, 8192)
    model, runner = engine.runner.model, engine.runner

    @torch.inference_mode()
    def ours():
        return model.compute_logits(model(ids, positions, meta)[-1:])

    report["pdtune_prefill_ms"] = time_ms(ours, runner.device, iters=5, warmup=2)
    report["pdtune_prefill_classes"], rows = kernels_ms(ours, 2)
    report["pdtune_prefill_top"] = rows[:25]
    for batch in (1, 64):
        inputs = step_bench.decode_step_inputs(engine, batch, 1024)

        @torch.inference_mode()
        def decode():
            return runner.decode_logits(inputs, runner.graphs)

        step = time_ms(decode, runner.device)
        classes, rows = kernels_ms(decode, 5)
        report[f"decode_{batch}x1024"] = dict(step_ms=step, kernel_sum_ms=sum(classes.values()),
                                               classes=classes, top=rows[:15])
    return engine.loaded.hf_config


def transformers_prefill(hf_cfg: dict, tokens: int = 8192):
    """transformers' (sdpa) model of `hf_cfg` on the GPU, once pdtune's engine is freed, and a
    call that prefills `tokens` random ids with it."""
    gc.collect()
    torch.cuda.empty_cache()
    hf = hf_baseline.build_hf_model(hf_cfg, torch.bfloat16, torch.device("cuda"))
    hf_ids = torch.randint(0, hf.config.vocab_size, (1, tokens), device="cuda")

    @torch.inference_mode()
    def theirs():
        return hf(input_ids=hf_ids, logits_to_keep=1, use_cache=False)

    return theirs


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    report: dict = {"environment": environment(" ".join(sys.argv))}
    theirs = transformers_prefill(profile_pdtune(report))
    report["transformers_prefill_ms"] = time_ms(theirs, torch.device("cuda"), iters=5, warmup=2)
    report["transformers_prefill_classes"], rows = kernels_ms(theirs, 2)
    report["transformers_prefill_top"] = rows[:25]
    with open(os.path.join(out, "kernel-profile.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out, "prefill-classes.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "pdtune_ms", "transformers_ms"])
        for cls in [c for c, _ in CLASSES] + ["other"]:
            w.writerow([cls, round(report["pdtune_prefill_classes"].get(cls, 0.0), 3),
                        round(report["transformers_prefill_classes"].get(cls, 0.0), 3)])
    print(f"prefill 8192: pdtune {report['pdtune_prefill_ms']:.1f} ms, transformers {report['transformers_prefill_ms']:.1f} ms")
    print(f"{'class':<11}{'pdtune ms':>11}{'transformers ms':>17}")
    for cls in [c for c, _ in CLASSES] + ["other"]:
        print(f"{cls:<11}{report['pdtune_prefill_classes'].get(cls, 0.0):>11.2f}"
              f"{report['transformers_prefill_classes'].get(cls, 0.0):>17.2f}")
    for name in ("pdtune", "transformers"):
        print(f"\n{name} prefill, top kernels (ms per prefill, calls)")
        for key, ms, n in report[f"{name}_prefill_top"][:15]:
            print(f"  {ms:8.2f} {n:5d}  {key[:100]}")
    for batch in (1, 64):
        d = report[f"decode_{batch}x1024"]
        print(f"\ndecode {batch} x 1024 (graph): step {d['step_ms']:.3f} ms, kernels {d['kernel_sum_ms']:.3f} ms, "
              f"gaps {d['step_ms'] - d['kernel_sum_ms']:.3f} ms; " +
              ", ".join(f"{c} {v:.3f}" for c, v in sorted(d["classes"].items(), key=lambda kv: -kv[1])))
        for key, ms, n in d["top"][:10]:
            print(f"  {ms:8.3f} {n:5d}  {key[:100]}")


if __name__ == "__main__":
    main(sys.argv[1])
