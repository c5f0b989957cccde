"""Arrival processes: seconds from the start at which each request arrives, the first at 0."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pdtune.workloads.request import Workload


def poisson(rate: float, n: int, seed: int = 0) -> np.ndarray:
    """Exponential gaps with mean 1/rate requests/s; rate=inf sends everything at once (offline load)."""
    return gamma(rate, n, burstiness=1.0, seed=seed)


def gamma(rate: float, n: int, burstiness: float = 1.0, seed: int = 0) -> np.ndarray:
    """Gamma gaps with mean 1/rate and shape `burstiness`, so the gaps' CV is 1/sqrt(burstiness).

    burstiness is vLLM benchmark_serving's parameter: 1 is Poisson, below 1 is burstier
    (clumps and lulls), above 1 is more regular. The mean rate does not depend on it.
    """
    if not rate > 0 or not burstiness > 0 or n < 0:
        raise ValueError(f"need rate > 0, burstiness > 0 and n >= 0, got {rate}, {burstiness}, {n}")
    if math.isinf(rate):
        return np.zeros(n)
    gaps = np.random.default_rng(seed).gamma(burstiness, 1.0 / (rate * burstiness), max(n - 1, 0))
    return np.concatenate([np.zeros(min(n, 1)), np.cumsum(gaps)])


def replay(timestamps: Sequence[float] | np.ndarray, time_scale: float = 1.0) -> np.ndarray:
    """Recorded timestamps (seconds, in their own order) shifted so the earliest is 0, times time_scale:
    0.5 replays the trace twice as fast (double the rate), 2 at half the rate."""
    if not time_scale > 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale}")
    t = np.asarray(timestamps, dtype=float)
    return (t - t.min()) * time_scale if len(t) else t


def apply_arrivals(
    workload: Workload, process: str = "poisson", rate: float = 1.0, burstiness: float = 1.0, seed: int = 0
) -> Workload:
    """The workload retimed by a Poisson or gamma process, recorded in its metadata.

    Times are given out in request order, so each session's later turn arrives no earlier than
    its previous turn (the generators interleave sessions in that order). A closed loop that
    waits for the previous answer is the runner's job, not the workload's.
    """
    if process == "poisson":
        times, burstiness = poisson(rate, len(workload), seed), 1.0
    elif process == "gamma":
        times = gamma(rate, len(workload), burstiness, seed)
    else:
        raise ValueError(f"unknown arrival process {process!r} (poisson or gamma)")
    arrivals = {"process": process, "rate": rate, "burstiness": burstiness, "seed": seed}
    return workload.with_arrivals(times, arrivals=arrivals)
