"""`pdtune run-batch`: parse options, call the batch runner, print progress and the summary."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors


def run_batch(
    input: Annotated[str, typer.Argument(help="OpenAI Batch input file (JSONL).")],
    output: Annotated[str, typer.Option("--output", "-o", help="Output JSONL; rerun to resume into it.")],
    model: o.Model = None, mode: o.Mode = None, dtype: o.Dtype = None, device: o.Device = None,
    load_format: o.LoadFormat = None, attention_backend: o.AttentionBackend = None, config: o.ConfigFile = None,
    block_size: o.BlockSize = None, num_kv_blocks: o.NumKvBlocks = None, kv_cache_gb: o.KvCacheGb = None,
    gpu_memory_utilization: o.GpuMemoryUtilization = None, max_num_seqs: o.MaxNumSeqs = None,
    max_num_batched_tokens: o.MaxNumBatchedTokens = None, max_model_len: o.MaxModelLen = None, tensor_parallel_size: o.TensorParallelSize = None,
    data_parallel_size: o.DataParallelSize = None, seed: o.Seed = None,
    metrics_json: Annotated[Optional[str], typer.Option("--metrics-json", help="Also write the summary as JSON.")] = None,
    trace: Annotated[Optional[str], typer.Option("--trace", help="pdmux: write every step decision to this JSONL.")] = None,
) -> None:
    """Offline batch inference on an OpenAI Batch file, resumable, with a live report."""
    console = Console(stderr=True)
    with user_errors(console):
        from pdtune.api import LLM
        from pdtune.batch.runner import run_batch as run
        from pdtune.config import build_engine_config
        from pdtune.errors import PdtuneError
        from pdtune.report.batch_report import RichBatchProgress, summary_table

        engine_config = build_engine_config(
            config, model=model, mode=mode, dtype=dtype, device=device, load_format=load_format,
            attention_backend=attention_backend, block_size=block_size, num_kv_blocks=num_kv_blocks, kv_cache_gb=kv_cache_gb,
            gpu_memory_utilization=gpu_memory_utilization, max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens, max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
            data_parallel_size=data_parallel_size, trace_path=trace, seed=seed,
        )
        if trace and engine_config.mode != "pdmux":
            raise PdtuneError(f"--trace records pdmux steps; this run's mode is {engine_config.mode}")

        def make_llm() -> LLM:
            with console.status(f"loading {engine_config.model} ..."):
                return LLM(**vars(engine_config))

        with RichBatchProgress(console) as progress:
            try:
                result = run(input, output, make_llm, progress)
            except KeyboardInterrupt:
                progress.progress.stop()
                console.print(f"[yellow]interrupted[/]: finished results are saved in {output}; "
                              "run the same command again to serve the rest")
                raise typer.Exit(130)
        console.print(summary_table(result))
        if metrics_json:
            with open(metrics_json, "w") as f:
                json.dump({"input": input, "output": output, "engine": vars(engine_config),
                           "total_lines": result.total_lines, "already_done": result.already_done,
                           **result.summary.to_dict()}, f, indent=2)
