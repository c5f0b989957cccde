"""`pdtune bench-kernels`: time decode and prefill steps against their rooflines and transformers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors
from pdtune.cli.options import int_list


def _fmt(value) -> str:
    return "-" if value is None else f"{value:,.2f}"


def bench_kernels(
    model: Annotated[str, typer.Option("--model", "-m", help="Model folder, .gguf file or preset.")] = "llama-3.1-8b",
    load_format: o.LoadFormat = "dummy", dtype: o.Dtype = None, device: o.Device = None,
    attention_backend: o.AttentionBackend = None, gpu_memory_utilization: o.GpuMemoryUtilization = None,
    max_num_seqs: o.MaxNumSeqs = 256, max_model_len: o.MaxModelLen = 32768,
    tune_decode_gemms: o.TuneDecodeGemms = None,
    batches: Annotated[str, typer.Option(help="Decode batch sizes.")] = "1,8,16,32,64,128,256",
    contexts: Annotated[str, typer.Option(help="Decode context lengths.")] = "1024,4096,16384",
    long_context: Annotated[int | None, typer.Option(
        min=1, help="Also time each batch with its first sequence this long (one long context beside short ones).")] = None,
    prefill_tokens: Annotated[str, typer.Option(help="Prefill lengths (one sequence each).")] = "512,1024,2048,4096,8192,16384",
    transformers: Annotated[bool, typer.Option(help="Also time transformers (sdpa) in the same run.")] = True,
    out: Annotated[str, typer.Option("--out", help="Folder for JSON, CSV and PNG results.")] = "results/bench-kernels",
) -> None:
    """Decode step time vs batch and context, prefill throughput vs tokens, beside rooflines."""
    console = Console()
    with user_errors(console):
        from pdtune.config import build_engine_config
        from pdtune.perf.bench_kernels import KernelBenchConfig, run_kernel_bench

        engine = build_engine_config(
            None, model=model, load_format=load_format, dtype=dtype, device=device,
            attention_backend=attention_backend, gpu_memory_utilization=gpu_memory_utilization,
            max_num_seqs=max_num_seqs, max_model_len=max_model_len, max_num_batched_tokens=max(int_list(prefill_tokens, "prefill-tokens")),
            tune_decode_gemms=tune_decode_gemms,
        )
        cfg = KernelBenchConfig(engine, int_list(batches, "batches"), int_list(contexts, "contexts"),
                                int_list(prefill_tokens, "prefill-tokens"), compare_transformers=transformers, out_dir=out,
                                long_context=long_context)
        with console.status("benchmarking ..."):
            result = run_kernel_bench(cfg)
        console.print(f"{result.model}: {result.params / 1e9:.2f} B params, {result.dtype}, "
                      f"KV pool {result.kv_capacity_tokens:,} tokens; copy {result.ceilings['copy_bytes_per_s'] / 1e12:.2f} TB/s, "
                      f"matmul {result.ceilings['matmul_flops_per_s'] / 1e12:.0f} TFLOP/s")
        table = Table(title="decode step (ms)")
        for col in ("batch", "context", "long", "graph", "eager", "roofline", "graph/roofline", "back to back",
                    "b2b/roofline", "transformers"):
            table.add_column(col, justify="right")
        for r in result.decode:
            table.add_row(str(r["batch"]), str(r["context"]), str(r["long_context"] or "-"), _fmt(r["graph_ms"]), _fmt(r["eager_ms"]),
                          _fmt(r["roofline_ms"]), _fmt(r["graph_over_roofline"]), _fmt(r["back_to_back_ms"]),
                          _fmt(r["back_to_back_over_roofline"]), _fmt(r.get("transformers_ms")))
        console.print(table)
        table = Table(title="prefill (one sequence)")
        for col in ("tokens", "ms", "tok/s", "roofline tok/s", "transformers tok/s", "speedup"):
            table.add_column(col, justify="right")
        for r in result.prefill:
            table.add_row(str(r["tokens"]), _fmt(r["pdtune_ms"]), _fmt(r["pdtune_tok_s"]), _fmt(r["roofline_tok_s"]),
                          _fmt(r.get("transformers_tok_s")), _fmt(r.get("speedup_vs_transformers")))
        console.print(table)
        console.print(f"saved under {out}")
