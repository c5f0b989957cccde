"""cuBLAS or cuBLASLt for each projection of a decode graph, whichever is faster where it runs.

torch calls cuBLAS by default, which is not the faster library at every decode batch: on the
H200, at 64 rows on the whole GPU cuBLASLt runs the gate/up projection in 59 us against 64 and
down in 32 against 36, while at 128 rows both are slower under it; on a 24-SM partition at 64
rows it runs the output projection in 33 us against 46 and gate/up and down slower
(results/h200/session17/gemm-decode). A CUDA graph keeps the kernels chosen when it was captured,
so before each capture both libraries are timed on the graph's stream, at its batch, through
every layer's weights (as a step reads them: none stays in L2), and each projection is captured
with the faster one. Eager steps keep torch's default.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

from pdtune.model.projection import Projection, preferred_library

LIBRARIES = ("cublas", "cublaslt")
# cuBLASLt is taken only this much faster than cuBLAS: a tie keeps torch's default.
MIN_GAIN = 0.03


def tunable(weight: torch.Tensor) -> bool:
    """16-bit weights on an NVIDIA GPU. float32 runs keep one library: they are the references
    that other modes' tokens are compared against."""
    return weight.is_cuda and torch.version.hip is None and weight.dtype in (torch.bfloat16, torch.float16)


def _stream_ms(fn, stream: torch.cuda.Stream, repeats: int = 3) -> float:
    """Fastest of `repeats` runs of `fn` on `stream`, after one untimed run (which loads kernels)."""
    times = []
    with torch.cuda.stream(stream):
        fn()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            times.append(start.elapsed_time(end))
    return min(times)


@torch.inference_mode()
def pick_libraries(groups: dict[str, list[Projection]], rows: int, stream: torch.cuda.Stream) -> dict[str, str]:
    """For each group of same-shaped projections (one a layer), the faster library at `rows`
    input rows on `stream`."""
    picks = {}
    for name, projections in groups.items():
        first = projections[0]
        x = torch.zeros(rows, first.in_features, device=first.weight.device, dtype=first.weight.dtype)
        times = {}
        for library in LIBRARIES:
            with preferred_library(library):
                times[library] = _stream_ms(lambda: [F.linear(x, p.weight, p.bias) for p in projections], stream)
        picks[name] = "cublaslt" if times["cublaslt"] < (1 - MIN_GAIN) * times["cublas"] else "cublas"
    return picks


@contextmanager
def pinned_libraries(groups: dict[str, list[Projection]], picks: dict[str, str]) -> Iterator[None]:
    """Every projection of a group pinned to its pick (during a capture), torch's default after."""
    for name, projections in groups.items():
        for p in projections:
            p.blas_library = picks.get(name)
    try:
        yield
    finally:
        for projections in groups.values():
            for p in projections:
                p.blas_library = None
