"""`pdtune bench`: serve a workload per mode, report TTFT/TPOT, SLO attainment and goodput."""

from __future__ import annotations

import os
import time
from typing import Annotated, Optional

import typer
from rich.console import Console

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors


def _parse_bracket(text: str) -> tuple[float, float]:
    from pdtune.errors import PdtuneError

    try:
        good, bad = (float(x) for x in text.split(","))
    except ValueError:
        raise PdtuneError(f"--goodput-bracket {text!r}: expected PASS,FAIL rates in req/s, e.g. 1.5,3") from None
    if not 0 <= good < bad:
        raise PdtuneError(f"--goodput-bracket {text!r}: the passing rate must be below the failing one")
    return good, bad


def _parse_rates(text: str) -> float | tuple[float, ...]:
    """One rate, or several (a sweep: every mode at each, on one engine per mode)."""
    from pdtune.errors import PdtuneError

    try:
        rates = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise PdtuneError(f"--rate {text!r}: expected a rate in req/s or several comma-separated, e.g. 8,10,12") from None
    return rates[0] if len(rates) == 1 else rates


def bench(
    workload: Annotated[str, typer.Option(help="Generator (sharegpt, loogle, mooncake-conversation, toolagent, "
                                               "openthoughts, random), shipped trace (azure-code, azure-conv, "
                                               "mooncake-conversation, mooncake-synthetic) or a file.")] = "sharegpt",
    mode: Annotated[str, typer.Option("--mode", help="Modes to compare, comma-separated.")] = "chunked,pdmux",
    num_requests: Annotated[int, typer.Option(help="Requests in the workload.")] = 200,
    rate: Annotated[Optional[str], typer.Option(
        help="Open-loop request rate (req/s); several comma-separated serve every mode at each, in order, on one "
             "engine per mode (a sweep: attainment vs rate, and the goodput its rates establish); default: the "
             "trace's times.")] = None,
    burstiness: Annotated[float, typer.Option(help="Gamma shape of arrival gaps; 1 is Poisson.")] = 1.0,
    concurrency: Annotated[Optional[int], typer.Option(help="Closed loop with this many users instead.")] = None,
    time_scale: Annotated[float, typer.Option(help="Trace replay: multiply recorded times by this.")] = 1.0,
    slo: Annotated[Optional[str], typer.Option(help="SLO, e.g. ttft=2s,tpot=30ms.")] = None,
    goodput: Annotated[bool, typer.Option(help="Find the highest rate meeting the SLO (rate sweep + bisection).")] = False,
    attainment: Annotated[float, typer.Option(help="Share of requests that must meet the SLO.")] = 0.9,
    goodput_iterations: Annotated[int, typer.Option(help="Bisection steps after the rate doubling brackets the goodput.")] = 4,
    goodput_bracket: Annotated[Optional[str], typer.Option(
        help="PASS,FAIL: rates an earlier run found passing and failing; bisect between them, no doubling.")] = None,
    repeat: Annotated[int, typer.Option(
        min=1, help="Serve the same workload and arrivals this many times per mode and report the spread "
                    "of p90 TTFT and TPOT between the runs (a check of the measurement itself).")] = 1,
    max_prompt_len: Annotated[Optional[int], typer.Option(help="Clamp prompts to this many tokens.")] = None,
    max_output_len: Annotated[Optional[int], typer.Option(help="Clamp outputs to this many tokens.")] = None,
    seed: Annotated[int, typer.Option(help="Workload and arrival seed.")] = 0,
    save_workload: Annotated[Optional[str], typer.Option(help="Also save the workload (with its arrivals) to replay it.")] = None,
    model: o.Model = None, load_format: o.LoadFormat = None, dtype: o.Dtype = None, device: o.Device = None,
    config: o.ConfigFile = None, block_size: o.BlockSize = None, num_kv_blocks: o.NumKvBlocks = None, kv_cache_gb: o.KvCacheGb = None,
    gpu_memory_utilization: o.GpuMemoryUtilization = None, max_num_seqs: o.MaxNumSeqs = None,
    max_num_batched_tokens: o.MaxNumBatchedTokens = None, max_model_len: o.MaxModelLen = None, tensor_parallel_size: o.TensorParallelSize = None,
    data_parallel_size: o.DataParallelSize = None, tune_decode_gemms: o.TuneDecodeGemms = None,
    overlap_scheduling: o.OverlapScheduling = None,
    pdmux_policy: Annotated[Optional[str], typer.Option(help="pdmux planner: adaptive, static or sglang.")] = None,
    dispatch: Annotated[Optional[str], typer.Option(
        help="Prefill admission order: fewest-misses, edf or fcfs (pdmux).")] = None,
    pdmux_admission: Annotated[Optional[str], typer.Option(
        help="pdmux: tpot admits into prefill only while the decode batch stays within the TPOT SLO; none.")] = None,
    pdmux_prefill_jump: Annotated[Optional[str], typer.Option(
        help="pdmux: a waiting request runs its prefill before the rest of the one in flight: off (default); late "
             "(it would miss its TTFT behind it); shorter (the shortest, when at most a quarter of what remains); "
             "spare (shorter, while every queued prefill keeps pdmux_spare_slack_share of its TTFT and none is "
             "lost); safe (shorter, while no waiting request that can meet its TTFT would miss it for the jump).")] = None,
    pdmux_decode_target: Annotated[Optional[float], typer.Option(
        help="pdmux adaptive: plan decode steps to this share of the TPOT SLO (default 1).")] = None,
    pdmux_spare_decode_target: Annotated[Optional[float], typer.Option(
        help="pdmux adaptive: the decode target while every queued prefill keeps pdmux_spare_slack_share (0.5 "
             "unless a config file sets it) of its TTFT SLO as slack (default 1: off).")] = None,
    pdmux_prefill_alone: Annotated[Optional[bool], typer.Option(
        "--pdmux-prefill-alone/--no-pdmux-prefill-alone",
        help="pdmux adaptive: prefill layers alone on the whole GPU when the decode budget allows (with pace: banked TPOT).")] = None,
    pdmux_prefill_behind: Annotated[Optional[bool], typer.Option(
        "--pdmux-prefill-behind/--no-pdmux-prefill-behind",
        help="pdmux: the next prefill batch's layers launch behind a batch's last ones in its step (default on).")] = None,
    pdmux_jump_batch: Annotated[Optional[bool], typer.Option(
        "--pdmux-jump-batch/--no-pdmux-jump-batch",
        help="pdmux: a shorter, spare or safe jump takes the next shortest waiting requests too while they fit (default on).")] = None,
    pdmux_spare_none_lost: Annotated[Optional[bool], typer.Option(
        "--pdmux-spare-none-lost/--no-pdmux-spare-none-lost",
        help="pdmux: the spare decode target and the spare jump only while no waiting request would miss its TTFT "
             "even going first (default on).")] = None,
    pdmux_decode_budget: Annotated[Optional[str], typer.Option(
        help="pdmux adaptive: step (every step within the TPOT; default) or pace (each request's mean TPOT).")] = None,
    trace: Annotated[Optional[str], typer.Option(help="pdmux: write every step decision to this JSONL.")] = None,
    perf_model: Annotated[Optional[str], typer.Option(
        "--perf-model", help="pdmux: the JSON `pdtune profile` wrote, for the planner's priors.")] = None,
    simulate: o.Simulate = False,
    out: Annotated[Optional[str], typer.Option("--out", help="Result folder (default results/bench-<workload>-<time>).")] = None,
) -> None:
    """Serve a workload in-process and report latency, SLO attainment and goodput per mode."""
    console = Console()
    with user_errors(console):
        from pdtune.bench.runner import BenchConfig, mode_name, run_bench
        from pdtune.config import build_engine_config
        from pdtune.errors import PdtuneError
        from pdtune.report.bench_report import (
            LiveBenchProgress,
            against_baseline_table,
            bench_tables,
            goodput_table,
            repeat_lines,
        )
        from pdtune.slo import parse_slo

        parsed_slo = parse_slo(slo) if slo else None
        slo_ms = parsed_slo.engine_targets() if parsed_slo is not None else {}
        if goodput and parsed_slo is None:
            raise PdtuneError("--goodput needs --slo, e.g. --slo ttft=2s,tpot=30ms")
        engine = build_engine_config(
            config, model=model, load_format=load_format, dtype=dtype, device=device, block_size=block_size, num_kv_blocks=num_kv_blocks,
            kv_cache_gb=kv_cache_gb, gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens, max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size, pdmux_policy=pdmux_policy,
            dispatch=dispatch, pdmux_admission=pdmux_admission, pdmux_prefill_jump=pdmux_prefill_jump,
            pdmux_decode_target=pdmux_decode_target, pdmux_spare_decode_target=pdmux_spare_decode_target,
            pdmux_decode_budget=pdmux_decode_budget, pdmux_prefill_alone=pdmux_prefill_alone,
            pdmux_prefill_behind=pdmux_prefill_behind, pdmux_jump_batch=pdmux_jump_batch,
            pdmux_spare_none_lost=pdmux_spare_none_lost, tune_decode_gemms=tune_decode_gemms,
            overlap_scheduling=overlap_scheduling, trace_path=trace, perf_model=perf_model, **slo_ms,
        )
        bracket = _parse_bracket(goodput_bracket) if goodput_bracket else None
        if bracket is not None and not goodput:
            raise PdtuneError("--goodput-bracket only applies with --goodput")
        if repeat > 1 and goodput:
            raise PdtuneError("--repeat does not combine with --goodput (it serves one load several times)")
        modes = tuple(m.strip() for m in mode.split(",") if m.strip())
        pdmux_only = {"--pdmux-policy": pdmux_policy, "--dispatch": dispatch, "--pdmux-admission": pdmux_admission,
                      "--pdmux-prefill-jump": pdmux_prefill_jump, "--pdmux-decode-target": pdmux_decode_target,
                      "--pdmux-spare-decode-target": pdmux_spare_decode_target,
                      "--pdmux-decode-budget": pdmux_decode_budget, "--pdmux-prefill-alone": pdmux_prefill_alone,
                      "--pdmux-prefill-behind": pdmux_prefill_behind, "--pdmux-jump-batch": pdmux_jump_batch,
                      "--pdmux-spare-none-lost": pdmux_spare_none_lost,
                      "--trace": trace}
        given = [flag for flag, value in pdmux_only.items() if value is not None]
        if given and not any(mode_name(m) == "pdmux" for m in modes):
            verb = "applies" if len(given) == 1 else "apply"
            raise PdtuneError(f"{', '.join(given)} {verb} only to pdmux modes; --mode {mode} has none")
        rates = _parse_rates(rate) if rate is not None else None
        cfg = BenchConfig(engine, modes, workload, num_requests, rates, burstiness, concurrency, time_scale, seed,
                          max_prompt_len, max_output_len, parsed_slo, goodput, attainment, goodput_iterations,
                          bracket, save_workload=save_workload, repeat=repeat, simulate=simulate)
        folder = out or os.path.join("results", f"bench-{os.path.basename(workload)}-{time.strftime('%Y%m%d-%H%M%S')}")
        report = run_bench(cfg, lambda m: LiveBenchProgress(console, m), out_dir=folder)
        tables = [] if goodput else bench_tables(report, console.width)  # a goodput search: its probes' table
        console.print(*tables, *([goodput_table(report)] if report["goodput"] else []))
        against = against_baseline_table(report)
        if against is not None:
            console.print(against)
        for line in repeat_lines(report):
            console.print(line)
        if simulate:
            console.print(o.simulated_note(perf_model))
        console.print(f"saved {', '.join(sorted(os.listdir(folder)))} in {folder}")
