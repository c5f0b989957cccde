"""Device timing and the two hardware ceilings (copy bandwidth, matmul rate) that rooflines use."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


def time_ms(fn: Callable[[], object], device: torch.device, iters: int = 20, warmup: int = 3) -> float:
    """Median time of `fn` in ms: CUDA events on a GPU, the host clock on a CPU."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_back_to_back_ms(fn: Callable[[], object], device: torch.device, steps: int = 16, repeats: int = 5) -> float:
    """Median time per call of `fn` over `steps` calls issued back to back: the GPU time of a
    step when the host runs ahead of it, as the engine's overlapped scheduling does, where
    `time_ms` also counts the host's launch of each call on an idle GPU."""

    def run_of_steps() -> None:
        for _ in range(steps):
            fn()

    return time_ms(run_of_steps, device, iters=repeats, warmup=1) / steps


@dataclass(frozen=True)
class Ceilings:
    copy_bytes_per_s: float  # device-to-device copy, bytes read + written per second
    matmul_flops_per_s: float  # large square matmul in the model's dtype


def _ceilings(device: torch.device, dtype: torch.dtype, copy_mib: int) -> Ceilings:
    copy_elems = copy_mib * (1 << 19) if device.type == "cuda" else (1 << 24)
    src = torch.randn(copy_elems, device=device, dtype=torch.float16)
    dst = torch.empty_like(src)
    copy_ms = time_ms(lambda: dst.copy_(src), device)
    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    mm_ms = time_ms(lambda: a @ b, device)
    return Ceilings(2 * copy_elems * 2 / (copy_ms / 1e3), 2 * n**3 / (mm_ms / 1e3))


def measure_ceilings(device: torch.device, dtype: torch.dtype, copy_mib: int = 2048) -> Ceilings:
    """Measured, not datasheet, so rooflines reflect this card as found. A GPU copies `copy_mib`
    MiB (the engine's 512 MiB is ten times the H100's 50 MB L2), a CPU 32 MiB; the memory is
    returned."""
    ceilings = _ceilings(device, dtype, copy_mib)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return ceilings
