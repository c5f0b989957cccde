"""`pdtune search`: Optuna over static pdmux plans under an SLO; writes a config for --config."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer
from rich.console import Console

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors


def search(
    slo: Annotated[str, typer.Option(help="SLO to meet, e.g. ttft=200ms,tpot=20ms.")],
    rate: Annotated[float, typer.Option(help="Open-loop request rate (req/s) every trial serves.")],
    workload: Annotated[str, typer.Option(help="Generator, shipped trace or file, as bench takes it.")] = "sharegpt",
    num_requests: Annotated[int, typer.Option(help="Requests in the workload.")] = 200,
    trials: Annotated[int, typer.Option(help="Trials this process runs (a shared study may hold more).")] = 20,
    attainment: Annotated[float, typer.Option(help="Target share of requests meeting the SLO; a trial stops "
                                                   "early once it cannot reach it.")] = 0.9,
    seed: Annotated[int, typer.Option(help="Workload and arrival seed (same on every machine of a study).")] = 0,
    storage: Annotated[Optional[str], typer.Option(help="Shared study: an Optuna RDB URL (sqlite:///search.db) or "
                                                        "a journal file path ending in .log.")] = None,
    study_name: Annotated[Optional[str], typer.Option(help="Study name (default: workload, rate and SLO).")] = None,
    prefill_tokens: Annotated[str, typer.Option(help="Prefill batch sizes to try, comma-separated (capped at the "
                                                     "context length).")] = "2048,4096,8192,16384",
    max_prompt_len: Annotated[Optional[int], typer.Option(help="Clamp prompts to this many tokens.")] = None,
    max_output_len: Annotated[Optional[int], typer.Option(help="Clamp outputs to this many tokens.")] = None,
    model: o.Model = None, load_format: o.LoadFormat = None, dtype: o.Dtype = None, device: o.Device = None,
    config: o.ConfigFile = None, block_size: o.BlockSize = None, num_kv_blocks: o.NumKvBlocks = None, kv_cache_gb: o.KvCacheGb = None,
    gpu_memory_utilization: o.GpuMemoryUtilization = None, max_num_seqs: o.MaxNumSeqs = None,
    max_num_batched_tokens: o.MaxNumBatchedTokens = None, max_model_len: o.MaxModelLen = None,
    tensor_parallel_size: o.TensorParallelSize = None, data_parallel_size: o.DataParallelSize = None,
    dispatch: Annotated[Optional[str], typer.Option(
        help="Prefill admission order: fewest-misses, edf or fcfs (pdmux).")] = None,
    trace: Annotated[Optional[str], typer.Option(help="Write every pdmux step decision to this JSONL.")] = None,
    perf_model: Annotated[Optional[str], typer.Option(
        "--perf-model", help="The JSON `pdtune profile` wrote: priors for the predicted prefill times and the adaptive run.")] = None,
    simulate: o.Simulate = False,
    out: Annotated[Optional[str], typer.Option("--out", help="Config file to write (default "
                                                             "results/search-<workload>.json).")] = None,
) -> None:
    """Search pdmux splits, gang sizes and prefill batches for the best SLO attainment at a rate."""
    console = Console()
    with user_errors(console):
        import optuna

        from pdtune.config import build_engine_config
        from pdtune.errors import PdtuneError
        from pdtune.report.search_report import LiveSearchProgress, search_table
        from pdtune.search import SearchConfig, run_search
        from pdtune.slo import parse_slo

        parsed = parse_slo(slo)
        try:
            choices = tuple(int(t) for t in prefill_tokens.split(","))
        except ValueError:
            raise PdtuneError(f"bad --prefill-tokens {prefill_tokens!r}: write it as 2048,4096") from None
        # Without a file the mode is pdmux; a file must say so itself (a chunked config is refused).
        engine = build_engine_config(
            config, mode=None if config else "pdmux", model=model, load_format=load_format, dtype=dtype,
            device=device, block_size=block_size, num_kv_blocks=num_kv_blocks, kv_cache_gb=kv_cache_gb,
            gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens, max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size, data_parallel_size=data_parallel_size, dispatch=dispatch,
            trace_path=trace, perf_model=perf_model)
        path = out or os.path.join("results", f"search-{os.path.basename(workload)}.json")
        cfg = SearchConfig(engine, parsed, rate, workload, num_requests, attainment, trials, seed, storage, study_name,
                           path, choices, max_prompt_len, max_output_len, simulate=simulate)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress lines say what optuna's log would
        result = run_search(cfg, LiveSearchProgress(console, trials))
        s = result["search"]
        console.print(search_table(result))
        best, adaptive = s["best"], s["adaptive"]
        verdict = "beats" if best["score"] > adaptive["score"] else (
            "ties" if best["score"] == adaptive["score"] else "does not beat")
        console.print(f"best static plan {verdict} the adaptive policy (attainment {best['attainment']:.1%} vs "
                      f"{adaptive['attainment']:.1%}, headroom {best['headroom']:+.1%} vs {adaptive['headroom']:+.1%}); "
                      f"saved {path} (use it with --config) and its trials CSV")
        if simulate:
            console.print(o.simulated_note(perf_model))
