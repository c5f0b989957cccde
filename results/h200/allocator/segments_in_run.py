"""Where the caching allocator takes new segments (cudaMalloc) inside a timed bench run, by the
code that asked: pdmux runs grew 93-134 segments on ShareGPT-like runs and 2-121 on the mixed
workload in session 14, chunked 0-3. torch's memory history records the timed runs (Python
stacks; segment events only, where torch can skip the rest), and each segment the pool took is
listed with its size, stream and the innermost pdtune frames of the allocation that took it.
Usage: python segments_in_run.py OUT_DIR [WORKLOAD RATE [MODE ...]]
(defaults: sharegpt at 92 req/s, modes pdmux and chunked, 600 requests, the 8B shape as in M/P)"""
import collections
import inspect
import json
import os
import sys

import torch

from pdtune.bench import runner
from pdtune.bench.runner import BenchConfig, run_bench
from pdtune.config import EngineConfig
from pdtune.perf.environment import environment
from pdtune.slo import parse_slo

PERF_MODEL = "results/h200/profile/profile-llama-3.1-8b.json"


def pdtune_frames(frames: list[dict], depth: int = 4) -> list[str]:
    """The innermost `depth` frames in pdtune's own code (file:line function)."""
    own = [f for f in frames if "/pdtune/" in f["filename"] and "/bench/" not in f["filename"]]
    return [f"{f['filename'].split('/pdtune/')[-1]}:{f['line']} {f['name']}" for f in own[:depth]]


def history_options() -> dict:
    """Each run's history alone, and only the segment events (recording every allocation's stack
    slows the run), where this torch has the options."""
    params = inspect.signature(torch.cuda.memory._record_memory_history).parameters
    options = {"clear_history": True} if "clear_history" in params else {}
    if "skip_actions" in params:
        options["skip_actions"] = ["alloc", "free_requested", "free_completed"]
    return options


def segments(snapshot: dict) -> dict:
    """The segments allocated while history was on, grouped by the code that asked for them."""
    allocs = [e for trace in snapshot["device_traces"] for e in trace if e["action"] == "segment_alloc"]
    by_site = collections.defaultdict(list)
    for e in allocs:
        by_site[" <- ".join(pdtune_frames(e.get("frames", []))) or "(outside pdtune)"].append(
            (e["size"] / 2**20, e["stream"]))
    sites = sorted(by_site.items(), key=lambda kv: -len(kv[1]))
    return {"segments": len(allocs), "mib": sum(e["size"] for e in allocs) / 2**20,
            "sites": [{"site": site, "count": len(got), "mib": sum(m for m, _ in got),
                       "streams": sorted({s for _, s in got}), "sizes_mib": sorted({round(m, 1) for m, _ in got})}
                      for site, got in sites]}


def main(out: str, workload: str = "sharegpt", rate: str = "92", *modes: str) -> None:
    os.makedirs(out, exist_ok=True)
    found: dict[str, list[dict]] = collections.defaultdict(list)
    serve = runner.serve_workload

    def recorded(engine, label, *args, **kwargs):
        if not torch.cuda.is_available():
            return serve(engine, label, *args, **kwargs)
        torch.cuda.memory._record_memory_history(enabled="all", stacks="python", max_entries=500_000,
                                                 **history_options())
        try:
            result = serve(engine, label, *args, **kwargs)
            snapshot = torch.cuda.memory._snapshot()
        finally:
            torch.cuda.memory._record_memory_history(enabled=None)
        found[label].append(dict(segments(snapshot), cuda_mallocs=result.extra.get("cuda_mallocs")))
        return result

    runner.serve_workload = recorded
    on_gpu = torch.cuda.is_available()
    engine = EngineConfig(model="llama-3.1-8b" if on_gpu else "tiny", load_format="dummy", max_num_seqs=256,
                          max_model_len=20000 if on_gpu else 2048, perf_model=PERF_MODEL if on_gpu else None)
    cfg = BenchConfig(engine=engine, modes=tuple(modes) or ("pdmux", "chunked"), workload=workload,
                      num_requests=600 if on_gpu else 24, rate=float(rate), slo=parse_slo("ttft=2s,tpot=30ms"),
                      max_prompt_len=16384 if on_gpu else 512)
    run_bench(cfg, out_dir=out)
    with open(os.path.join(out, "segments.json"), "w") as f:
        json.dump({"environment": environment(" ".join(sys.argv)), "runs": found}, f, indent=1)
    for label, runs in found.items():
        for run in runs:
            print(f"{label}: {run['segments']} segments ({run['mib']:,.0f} MiB; bench counted {run['cuda_mallocs']})")
            for site in run["sites"][:12]:
                print(f"  {site['count']:4d} x {site['sizes_mib']} MiB on streams {site['streams']}: {site['site']}")


if __name__ == "__main__":
    main(*sys.argv[1:])
