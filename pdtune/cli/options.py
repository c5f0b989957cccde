"""Option aliases shared by the commands, so every command spells an engine knob the same way."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from pdtune.config import DEFAULT_MODEL
from pdtune.errors import PdtuneError


def int_list(text: str, name: str, minimum: int = 1) -> tuple[int, ...]:
    """A comma-separated list of integers of at least `minimum` given as --`name`."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise PdtuneError(f"--{name} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise PdtuneError(f"--{name} takes integers of {minimum} or more, got {text!r}")
    return values


def split_list(text: str) -> tuple[tuple[int, int], ...]:
    """--splits: prefill/decode SM pairs, comma-separated (104/28,72/60)."""
    try:
        pairs = tuple(tuple(int(n) for n in pair.split("/")) for pair in text.split(",") if pair.strip())
    except ValueError:
        pairs = ()
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise PdtuneError(f"--splits takes prefill/decode SM pairs such as 104/28,72/60, got {text!r}")
    return pairs


Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", help=f"Model folder (config.json + safetensors), a .gguf file, or a preset; default {DEFAULT_MODEL}.")]
Mode = Annotated[Optional[str], typer.Option("--mode", help="Scheduling mode: sequential or chunked.")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="auto, float32, bfloat16 or float16.")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda.")]
LoadFormat = Annotated[Optional[str], typer.Option(
    "--load-format", help="auto, safetensors, gguf, or dummy (random weights of the model's shape).")]
AttentionBackend = Annotated[Optional[str], typer.Option(
    "--attention-backend", help="triton or torch (auto: triton on GPU, torch on CPU).")]
ConfigFile = Annotated[Optional[str], typer.Option("--config", help="JSON engine config (as `pdtune search` writes).")]
BlockSize = Annotated[Optional[int], typer.Option(
    "--block-size", help="Tokens per KV cache page, a power of two (default 64 on a Hopper or later GPU, 16 elsewhere).")]
NumKvBlocks = Annotated[Optional[int], typer.Option("--num-kv-blocks", help="Exact KV pool size in blocks.")]
KvCacheGb = Annotated[Optional[float], typer.Option("--kv-cache-gb", help="KV pool size on CPU, in GB.")]
GpuMemoryUtilization = Annotated[Optional[float], typer.Option(
    "--gpu-memory-utilization", help="Share of GPU memory for weights, activations and KV (default 0.9).")]
MaxNumSeqs = Annotated[Optional[int], typer.Option("--max-num-seqs", help="Most sequences in one step.")]
MaxNumBatchedTokens = Annotated[Optional[int], typer.Option(
    "--max-num-batched-tokens", help="Token budget of one step.")]
MaxModelLen = Annotated[Optional[int], typer.Option("--max-model-len", help="Context length (prompt + output).")]
TuneDecodeGemms = Annotated[Optional[bool], typer.Option(
    "--tune-decode-gemms/--no-tune-decode-gemms",
    help="GPU: capture each decode graph's projections with cuBLAS or cuBLASLt, whichever runs faster there (default on).")]
OverlapScheduling = Annotated[Optional[bool], typer.Option(
    "--overlap-scheduling/--no-overlap-scheduling",
    help="Plan and launch each step before the last one's tokens are read back (default on; one process).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Seed for dummy weights and unseeded sampling.")]

Simulate = Annotated[bool, typer.Option(
    "--simulate", help="Serve on a virtual GPU: no weights, every step taking the time --perf-model predicts on the "
                       "GPU it was profiled on, on a virtual clock (a policy tried on a CPU; not a measurement).")]


def simulated_note(perf_model: str | None) -> str:
    """The line under a simulated command's tables: its figures are predictions."""
    return f"simulated: step times predicted by {perf_model} on a virtual GPU, not measured"


TensorParallelSize = Annotated[Optional[int], typer.Option(
    "--tensor-parallel-size", "-tp", help="Processes (one GPU each) sharing every layer: gloo on CPUs, NCCL on GPUs.")]
DataParallelSize = Annotated[Optional[int], typer.Option(
    "--data-parallel-size", "-dp", help="Engine replicas (one GPU each), fed by an SLO-aware dispatcher.")]
