"""A linear layer whose BLAS library a decode graph's capture may pin (executor/gemm_libraries)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class Projection(nn.Linear):
    blas_library: str | None = None  # None: torch's default

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blas_library is None:
            return F.linear(x, self.weight, self.bias)
        with preferred_library(self.blas_library):
            return F.linear(x, self.weight, self.bias)


@contextmanager
def preferred_library(library: str) -> Iterator[None]:
    """torch's BLAS library for the calls inside (a process-wide setting, restored after)."""
    previous = torch.backends.cuda.preferred_blas_library()
    torch.backends.cuda.preferred_blas_library(library)
    try:
        yield
    finally:
        torch.backends.cuda.preferred_blas_library(previous)
