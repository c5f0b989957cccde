"""Token-length distributions fitted to published quantiles and means."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
_GRID = np.linspace(-9.0, 9.0, 36001)  # quadrature in the normal quantile z, for means
_WEIGHTS = np.exp(-0.5 * _GRID**2) / math.sqrt(2 * math.pi) * (_GRID[1] - _GRID[0])


@dataclass(frozen=True)
class LengthDist:
    """Lengths whose log is piecewise linear in the normal quantile z through the given quantiles.

    A lone median plus a mean is a lognormal. With two or more quantiles every one of them is
    hit exactly and the tails continue the neighbouring segments, except that a given mean
    sets the slope of the upper tail (the part least pinned down by published figures).
    Lengths are rounded and clipped to [lo, hi] after sampling.
    """

    quantiles: tuple[tuple[float, float], ...]  # (probability, tokens), both increasing
    mean: float | None = None
    lo: int = 1
    hi: int | None = None

    def __post_init__(self) -> None:
        ps = [p for p, _ in self.quantiles]
        vs = [v for _, v in self.quantiles]
        if not ps or any(not 0 < p < 1 for p in ps) or ps != sorted(set(ps)) or vs != sorted(set(vs)):
            raise ValueError(f"quantiles must be increasing (probability in (0, 1), tokens): {self.quantiles}")
        if len(ps) == 1 and (ps[0] != 0.5 or self.mean is None or self.mean <= vs[0]):
            raise ValueError("a lone quantile must be the median, with a mean above it (that sets sigma)")
        self._shape  # fit now, so figures that cannot be met fail where they are written

    @classmethod
    def lognormal(cls, mean: float, sigma: float, lo: int = 1, hi: int | None = None) -> LengthDist:
        """The lognormal with this mean and log-space sigma (median = mean / exp(sigma^2 / 2))."""
        return cls(((0.5, mean * math.exp(-sigma * sigma / 2)),), mean, lo, hi)

    @cached_property
    def _shape(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Knots (z, log tokens) and the lower and upper tail slopes."""
        z = np.array([_NORMAL.inv_cdf(p) for p, _ in self.quantiles])
        y = np.log([v for _, v in self.quantiles])
        if len(z) == 1:
            sigma = math.sqrt(2 * (math.log(self.mean) - y[0]))  # mean = median * exp(sigma^2 / 2)
            return z, y, sigma, sigma
        lo_slope = (y[1] - y[0]) / (z[1] - z[0])
        hi_slope = (y[-1] - y[-2]) / (z[-1] - z[-2])
        if self.mean is not None:
            hi_slope = _solve(lambda s: _mean(z, y, lo_slope, s), self.mean)
        return z, y, lo_slope, hi_slope

    @property
    def expected_mean(self) -> float:
        """Mean of the unrounded, unclipped distribution (the fit's target when a mean is given)."""
        return _mean(*self._shape)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal(n)
        knots, y, lo_slope, hi_slope = self._shape
        logs = np.interp(z, knots, y)
        logs += lo_slope * np.minimum(z - knots[0], 0) + hi_slope * np.maximum(z - knots[-1], 0)
        return np.clip(np.rint(np.exp(logs)), self.lo, self.hi).astype(np.int64)


def _mean(z: np.ndarray, y: np.ndarray, lo_slope: float, hi_slope: float) -> float:
    logs = np.interp(_GRID, z, y) + lo_slope * np.minimum(_GRID - z[0], 0) + hi_slope * np.maximum(_GRID - z[-1], 0)
    return float(np.exp(logs) @ _WEIGHTS)


def _solve(mean_of: Callable[[float], float], target: float) -> float:
    """The upper-tail slope in [0, 4] whose mean is target (bisection: the mean rises with it)."""
    lo, hi = 0.0, 4.0
    if not mean_of(lo) <= target <= mean_of(hi):
        raise ValueError(f"mean {target} is out of reach of the quantiles (upper-tail slope 0..{hi})")
    for _ in range(60):
        mid = (lo + hi) / 2
        if mean_of(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
