"""`pdtune bench-batch`: run-batch throughput against transformers' continuous batching."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pdtune.cli import options as o
from pdtune.cli.errors import user_errors


def bench_batch(
    model: Annotated[str, typer.Option("--model", "-m", help="Model folder, .gguf file or preset.")] = "llama-3.1-8b",
    load_format: o.LoadFormat = "dummy", dtype: o.Dtype = None, device: o.Device = None, mode: o.Mode = "chunked",
    max_num_seqs: o.MaxNumSeqs = 256, max_num_batched_tokens: o.MaxNumBatchedTokens = None,
    num_kv_blocks: o.NumKvBlocks = None, max_model_len: o.MaxModelLen = 4096,
    requests: Annotated[int, typer.Option(help="Requests served by pdtune.")] = 1024,
    transformers_requests: Annotated[int, typer.Option(help="Requests served by transformers.")] = 256,
    prompt_len: Annotated[int, typer.Option(help="Prompt tokens per request.")] = 512,
    output_len: Annotated[int, typer.Option(help="Output tokens per request (EOS ignored).")] = 256,
    out: Annotated[str, typer.Option("--out", help="Folder for the JSON result.")] = "results/bench-batch",
) -> None:
    """Output tokens/s of run-batch vs transformers generate_batch, same requests, same device."""
    console = Console()
    with user_errors(console):
        from pdtune.config import build_engine_config
        from pdtune.perf.e2e_batch import E2EConfig, run_e2e

        engine = build_engine_config(None, model=model, load_format=load_format, dtype=dtype, device=device, mode=mode,
                                     max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                                     num_kv_blocks=num_kv_blocks, max_model_len=max_model_len)
        with console.status("benchmarking ..."):
            r = run_e2e(E2EConfig(engine, requests, transformers_requests, prompt_len, output_len, out_dir=out))
        p, hf = r["pdtune"], r["transformers_generate_batch"]
        console.print(f"pdtune ({mode}): {p['requests_ok']} requests, {p['completion_tokens']:,} output tokens in "
                      f"{p['wall_time_s']:.1f} s = {p['output_tokens_per_s']:,.0f} tok/s")
        console.print(f"transformers generate_batch: {hf['requests']} requests, {hf['output_tokens']:,} tokens in "
                      f"{hf['seconds']:.1f} s = {hf['output_tokens_per_s']:,.0f} tok/s")
        console.print(f"ratio: {r['output_tokens_per_s_ratio']:.2f}x; saved under {out}")
