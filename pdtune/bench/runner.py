"""bench: one workload served by several modes, one engine per mode, results saved together."""

from __future__ import annotations

import dataclasses
import gc
import gzip
import json
import os
import time
from dataclasses import dataclass

import torch

from pdtune.bench.serve import Progress, RunResult, serve_closed_loop, serve_open_loop
from pdtune.bench.summary import (GoodputResult, attainment, fell_behind, find_goodput, partial_goodput,
                                  records_prefill_flops, repeat_spread, summarize_run, swept_goodput)
from pdtune.config import EngineConfig, read_engine_settings
from pdtune.engine import PLANNER_FIELDS, Engine, make_engine, switches_plan_to
from pdtune.errors import InputFileError, InvalidRequestError, PdtuneError
from pdtune.executor.partitions import check_green_contexts
from pdtune.kernels.compiles import compiled_variants
from pdtune.perf.environment import environment
from pdtune.request.openai_batch import encode_request
from pdtune.request.sampling import SamplingParams
from pdtune.slo import SLO
from pdtune.workloads.arrivals import apply_arrivals
from pdtune.workloads.generators import GENERATORS
from pdtune.workloads.loaders import openai_batch_file, sharegpt_file, trace_file
from pdtune.workloads.request import Workload, load_workload, save_workload
from pdtune.workloads.traces import TRACES


@dataclass(frozen=True)
class BenchConfig:
    engine: EngineConfig
    modes: tuple[str, ...]  # "chunked", "pdmux"; "pdmux:sglang" picks a policy, "chunked:512" a chunk size
    workload: str  # generator name, shipped trace name, or a file (saved workload or trace)
    num_requests: int = 200
    rate: float | tuple[float, ...] | None = None  # open loop, requests/s (several: a sweep); None: the trace's times
    burstiness: float = 1.0  # 1 is Poisson; gamma arrivals otherwise
    concurrency: int | None = None  # closed loop with this many users instead
    time_scale: float = 1.0
    seed: int = 0
    max_prompt_len: int | None = None
    max_output_len: int | None = None
    slo: SLO | None = None
    goodput: bool = False
    attainment_target: float = 0.9
    goodput_iterations: int = 4
    goodput_bracket: tuple[float, float] | None = None  # (passing, failing) rates known from an earlier run
    warmup_requests: int = 8
    save_workload: str | None = None  # also write the generated workload here (replay it with workload=PATH)
    repeat: int = 1  # serve the same timed workload this many times per mode (not with goodput)
    simulate: bool = False  # on a virtual GPU: step times from engine.perf_model, on a virtual clock

    def __post_init__(self) -> None:
        if len(self.rates) > 1 and (self.goodput or self.concurrency or self.repeat > 1):
            raise PdtuneError("several rates are a sweep of their own: they do not combine with a goodput search, "
                              "a closed loop (concurrency) or repeats")
        if any(r is not None and not r > 0 for r in self.rates):
            raise PdtuneError(f"request rates must be positive, got {self.rate}")

    @property
    def rates(self) -> tuple[float | None, ...]:
        """The rates each mode is served at, in order; (None,) replays the trace's own times."""
        return tuple(self.rate) if isinstance(self.rate, (tuple, list)) else (self.rate,)


def build_workload(cfg: BenchConfig, vocab_size: int, tokenizer) -> Workload:
    """A generator, a shipped trace, or a file: a saved workload, an OpenAI Batch JSONL, a
    ShareGPT JSON (both tokenized with the model's tokenizer) or an Azure/Mooncake trace."""
    kw = dict(vocab_size=vocab_size, seed=cfg.seed, max_prompt_len=cfg.max_prompt_len, max_output_len=cfg.max_output_len)
    if cfg.workload in GENERATORS:
        return GENERATORS[cfg.workload](num_requests=cfg.num_requests, **kw)
    if cfg.workload in TRACES:
        return TRACES[cfg.workload](cfg.workload, time_scale=cfg.time_scale, limit=cfg.num_requests, **kw)
    if not os.path.isfile(cfg.workload):
        raise InputFileError(f"workload {cfg.workload!r} is neither a generator ({', '.join(GENERATORS)}), "
                             f"a shipped trace ({', '.join(TRACES)}) nor a file")
    with open(cfg.workload, errors="replace") as f:
        first = f.readline()
    if first.lstrip().startswith("["):
        return sharegpt_file(cfg.workload, tokenizer.encode, cfg.num_requests, cfg.seed, cfg.max_prompt_len,
                             cfg.max_output_len)
    if '"custom_id"' in first:
        return openai_batch_file(cfg.workload, lambda req: encode_request(tokenizer, req))
    if '"metadata"' in first and '"name"' in first:
        return load_workload(cfg.workload)
    return trace_file(cfg.workload, time_scale=cfg.time_scale, limit=cfg.num_requests, **kw)


def timed(workload: Workload, cfg: BenchConfig, rate: float | None) -> Workload:
    """The workload with open-loop arrivals at `rate` (Poisson, or gamma with burstiness); None keeps its own."""
    if rate is None:
        return workload
    process = "poisson" if cfg.burstiness == 1.0 else "gamma"
    return apply_arrivals(workload, process, rate=rate, burstiness=cfg.burstiness, seed=cfg.seed)


def _release_gpu_memory() -> None:
    """After the last reference to an engine is dropped: its weights, KV pool and graphs go back."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def allocator_counts() -> tuple[int, int] | None:
    """Segments torch's caching allocator has taken from the driver so far (each a cudaMalloc: a
    stall, and one inside a timed run means the pool grew to a size the warm-up never reached),
    and its retries (a request that failed until it freed every cached block: a device-wide
    synchronize, which stalls the other partition's stream); None without CUDA."""
    if not torch.cuda.is_available():
        return None
    stats = torch.cuda.memory_stats()
    return stats.get("segment.all.allocated", 0), stats.get("num_alloc_retries", 0)


def serve_workload(engine: Engine, label: str, workload: Workload, cfg: BenchConfig, rate: float | None,
                   progress: Progress | None, stop_below: tuple[SLO, float] | None = None) -> RunResult:
    """One timed run from a clean prefix cache and zeroed counters, labelled for the report, with
    the kernel variants JIT-compiled and the allocator's segments and retries inside it (each a
    stall the warm-up or the memory plan should have spared it), and its prefill FLOPs and the
    GPUs' matmul rate, from which the summary finds the run's prefill ceiling."""
    engine.reset_counters()
    engine.tag_trace(run=label, rate=rate)
    compiled_before, allocs_before = compiled_variants(), allocator_counts()
    clock = engine.clock
    if cfg.concurrency:
        result = serve_closed_loop(engine, workload.requests, cfg.concurrency, progress, clock=clock.now)
    else:
        result = serve_open_loop(engine, workload.requests, rate, progress, clock=clock.now, sleep=clock.sleep,
                                 stop_below=stop_below)
    result.mode = label
    result.extra["preemptions"] = engine.num_preemptions
    result.extra["engine_startup_s"] = engine.startup_s
    result.extra["kv_block_size"] = engine.config.block_size
    result.extra["prefill_flops"] = records_prefill_flops(engine.arch, result.records)
    if engine.matmul_flops_per_s is not None:
        result.extra["matmul_flops_per_s"] = engine.matmul_flops_per_s
    compiled_after = compiled_variants()
    result.extra["kernel_compiles"] = None if compiled_before is None else compiled_after - compiled_before
    if allocs_before is not None:
        allocs = allocator_counts()
        result.extra["cuda_mallocs"], result.extra["cuda_alloc_retries"] = (a - b for a, b in zip(allocs, allocs_before))
    planner = engine.planner_inputs()
    if planner is not None:
        result.extra["planner"] = planner
    if cfg.simulate:
        result.extra["simulated"] = {"gpu": engine.virtual_gpu.name, "perf_model": engine.config.perf_model}
    return result


def mode_name(label: str) -> str:
    """The engine mode a mode label serves ("pdmux" for pdmux:POLICY and pdmux@FILE)."""
    return label.partition("@")[0].partition(":")[0]


def _engine_config(base: EngineConfig, label: str) -> EngineConfig:
    """A mode label's engine: "pdmux:POLICY" sets the planner policy, "pdmux@FILE" the planner
    settings of a config file (a `pdtune search` result, or any of `PLANNER_FIELDS`),
    "pdmux:eager-prefill" launches the prefill blocks eagerly (no graph pieces), "chunked:TOKENS"
    the token budget of a step (its chunk size), so these compare with each other in one run."""
    if "@" in label:
        return _planner_file_config(base, label)
    mode, _, variant = label.partition(":")
    if not variant:
        return dataclasses.replace(base, mode=mode)
    if mode == "pdmux" and variant == "eager-prefill":
        return dataclasses.replace(base, mode=mode, pdmux_prefill_graphs=False)
    if mode == "pdmux":
        return dataclasses.replace(base, mode=mode, pdmux_policy=variant)
    if mode == "chunked" and variant.isdigit():
        return dataclasses.replace(base, mode=mode, max_num_batched_tokens=int(variant))
    raise PdtuneError(f"mode {label!r}: a mode is sequential, chunked, chunked:TOKENS (a chunk size), "
                      f"pdmux:POLICY, pdmux@FILE (a config file's planner settings) or pdmux:eager-prefill")


def _planner_file_config(base: EngineConfig, label: str) -> EngineConfig:
    """"pdmux@FILE": the file's planner settings over `base`. Any other setting it holds must
    match `base`: a mode label cannot change the engine every mode of the run shares."""
    mode, _, path = label.partition("@")
    if mode != "pdmux" or not path:
        raise PdtuneError(f"mode {label!r}: a config file's plan is pdmux@FILE")
    settings = read_engine_settings(path)
    others = sorted(k for k, v in settings.items()
                    if k not in PLANNER_FIELDS and k != "mode" and getattr(base, k) != v)
    if settings.get("mode", "pdmux") != "pdmux" or others:
        differ = ", ".join(f"{k}={settings[k]!r} (this run: {getattr(base, k)!r})" for k in others)
        raise PdtuneError(f"mode {label!r}: {path} sets {differ or 'mode ' + repr(settings['mode'])}; a mode label "
                          f"takes only the planner's settings from a file (give the rest as flags or --config)")
    return dataclasses.replace(base, mode="pdmux", **{k: v for k, v in settings.items() if k in PLANNER_FIELDS})


def warm_up(engine: Engine, workload: Workload, n: int) -> None:
    """Compiles kernels (and builds the attention plans) for the workload's shapes before anything
    is timed, so no JIT compile lands inside the first timed run: the first `n` requests enter one
    by one, two steps apart (a prefill alone, then beside the decode of those before it), then the
    longest prompt (whose chunks attend to a cached prefix, a kernel variant short prompts never
    reach) beside them all. `serve_workload` counts what still compiles in a timed run."""
    engine.tag_trace(run="warm-up", rate=None)
    longest = max(workload.requests, key=lambda r: len(r.prompt_token_ids), default=None)
    for req in workload.requests[:n] + ([longest] if longest is not None else []):
        try:
            engine.add_request(req.prompt_token_ids, SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True),
                               request_id=f"warmup-{req.request_id}")
        except InvalidRequestError:
            continue  # the timed run records it as a failed request
        for _ in range(2):
            engine.step()
    while engine.has_unfinished():
        engine.step()


def _report(cfg: BenchConfig, workload: Workload, runs: list[RunResult], goodputs: dict) -> dict:
    summaries = [summarize_run(r, cfg.slo) for r in runs]
    return {
        "kind": "pdtune-bench",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment(),
        "config": {**dataclasses.asdict(cfg), "engine": dataclasses.asdict(cfg.engine),
                   "slo": str(cfg.slo) if cfg.slo else None},
        "workload": {"name": workload.name, "requests": len(workload), "metadata": workload.metadata,
                     "mean_prompt_len": workload.mean_prompt_len, "mean_output_len": workload.mean_output_len},
        "summaries": summaries,
        "goodput": goodputs,
        "repeatability": repeat_spread(summaries, [r.records for r in runs]) if cfg.repeat > 1 else {},
        "runs": [r.to_dict() for r in runs],
    }


def run_bench(cfg: BenchConfig, progress_factory=None, out_dir: str | None = None) -> dict:
    """Returns config, environment, and per mode: summaries, goodput sweep points and
    per-request records. With `out_dir`, the results so far are saved after every mode, so a
    later mode that fails (out of memory, no green contexts) does not lose the earlier ones."""
    runs, goodputs, engine, workload, built = [], {}, None, None, None
    for label in cfg.modes:  # every label checked before the first engine loads
        _engine_config(cfg.engine, label)
    if any(label.startswith("pdmux") for label in cfg.modes) and not cfg.simulate:
        check_green_contexts()
    for label in cfg.modes:
        wanted = _engine_config(cfg.engine, label)
        if engine is not None and switches_plan_to(built, wanted):  # pdmux plans: one engine, ~40 s saved
            engine.switch_planner(wanted)
        else:
            if engine is not None:
                engine.close()
            engine = None  # one engine at a time: two 8B engines do not fit one GPU
            _release_gpu_memory()
            engine = make_engine(wanted, cfg.simulate)
        built = wanted
        if workload is None:
            workload = build_workload(cfg, engine.vocab_size, engine.tokenizer)
            if cfg.save_workload:
                save_workload(timed(workload, cfg, cfg.rates[0]), cfg.save_workload)
        warm_up(engine, workload, cfg.warmup_requests)
        progress = progress_factory(label) if progress_factory else None
        if cfg.goodput:
            points: list[tuple[float, float, bool, bool]] = []

            def attainment_at(rate: float) -> tuple[float, bool, bool]:
                result = serve_workload(engine, label, timed(workload, cfg, rate), cfg, rate, progress,
                                        stop_below=(cfg.slo, cfg.attainment_target))
                runs.append(result)
                points.append((rate, attainment(result, cfg.slo), result.extra.get("stopped_early", False),
                               fell_behind(result.records, cfg.slo)))
                goodputs[label] = dataclasses.asdict(partial_goodput(points, cfg.attainment_target, cfg.goodput_bracket))
                if out_dir is not None:  # a probe can take minutes: a sweep cut short keeps its probes
                    save_bench(_report(cfg, workload, runs, goodputs), out_dir)
                return points[-1][1:]

            start = cfg.rates[0] or max(0.1, len(workload) / max(workload.duration, 1e-9) / 4)
            gp: GoodputResult = find_goodput(attainment_at, start, cfg.attainment_target, cfg.goodput_iterations,
                                             bracket=cfg.goodput_bracket)
            goodputs[label] = dataclasses.asdict(gp)
        else:
            for rate in cfg.rates:
                for _ in range(cfg.repeat):
                    runs.append(serve_workload(engine, label, timed(workload, cfg, rate), cfg, rate, progress))
                if len(cfg.rates) > 1 and out_dir is not None:  # a sweep cut short keeps the rates it served
                    save_bench(_report(cfg, workload, runs, goodputs), out_dir)
            if len(cfg.rates) > 1 and cfg.slo is not None:  # a sweep: the goodput its rates establish
                served = [(r.rate, attainment(r, cfg.slo), False, fell_behind(r.records, cfg.slo))
                          for r in runs if r.mode == label]
                goodputs[label] = swept_goodput(served, cfg.attainment_target)
        if out_dir is not None:
            save_bench(_report(cfg, workload, runs, goodputs), out_dir)
    engine.close()
    return _report(cfg, workload, runs, goodputs)


def load_bench(path: str) -> dict:
    """A saved result: bench.json (or bench.json.gz, as committed results are kept), or its folder."""
    if os.path.isdir(path):
        plain = os.path.join(path, "bench.json")
        path = plain if os.path.exists(plain) or not os.path.exists(plain + ".gz") else plain + ".gz"
    try:
        with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
            data = json.load(f)
    except (OSError, EOFError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path}: not a readable bench result ({exc})") from exc
    if not isinstance(data, dict) or data.get("kind") != "pdtune-bench":
        raise InputFileError(f"{path}: not a pdtune bench result")
    return data


def save_bench(report: dict, out_dir: str) -> list[str]:
    """JSON with everything, CSV of per-request records and of summaries, PNG plots."""
    import pandas as pd

    from pdtune.report.plots import plot_bench

    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, n) for n in ("bench.json", "requests.csv", "summary.csv")]
    with open(paths[0], "w") as f:
        json.dump(report, f, indent=1, default=str)
    rows = [{"mode": run["mode"], "rate": run["rate"], **{k: v for k, v in rec.items() if k != "itl_s"}}
            for run in report["runs"] for rec in run["records"]]
    pd.DataFrame(rows).to_csv(paths[1], index=False)
    pd.json_normalize(report["summaries"]).to_csv(paths[2], index=False)
    return paths + plot_bench(report, out_dir)
