"""Arrival processes: rates, burstiness, replay scaling, and per-session order."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pdtune.workloads.arrivals import apply_arrivals, gamma, poisson, replay
from pdtune.workloads.generators import toolagent_like


def test_poisson_rate_and_start() -> None:
    t = poisson(4.0, 20_000, seed=3)
    assert t[0] == 0 and np.all(np.diff(t) >= 0)
    assert (len(t) - 1) / t[-1] == pytest.approx(4.0, rel=0.05)
    assert np.std(np.diff(t)) / np.mean(np.diff(t)) == pytest.approx(1.0, rel=0.05)  # exponential gaps


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_the_cv_not_the_rate(burstiness: float) -> None:
    gaps = np.diff(gamma(2.0, 20_000, burstiness, seed=1))
    assert 1 / gaps.mean() == pytest.approx(2.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)


def test_seeds_and_infinite_rate() -> None:
    assert np.array_equal(poisson(1.0, 100, seed=5), poisson(1.0, 100, seed=5))
    assert not np.array_equal(poisson(1.0, 100, seed=5), poisson(1.0, 100, seed=6))
    assert not poisson(math.inf, 10).any()
    with pytest.raises(ValueError):
        gamma(0.0, 10)


def test_replay_shifts_and_scales() -> None:
    assert replay([10.0, 11.0, 14.0], time_scale=0.5) == pytest.approx([0.0, 0.5, 2.0])
    assert replay([3.0, 1.0], time_scale=2.0) == pytest.approx([4.0, 0.0])  # order kept, earliest is 0


def test_apply_arrivals_keeps_turns_in_order() -> None:
    w = apply_arrivals(toolagent_like(num_requests=500, seed=2, max_prompt_len=4096), "gamma", rate=8.0,
                       burstiness=0.5, seed=4)
    assert w.metadata["arrivals"] == {"process": "gamma", "rate": 8.0, "burstiness": 0.5, "seed": 4}
    assert w.requests[0].arrival_s == 0 and w.duration > 0
    last: dict[str, tuple[int, float]] = {}
    for r in w.requests:
        if r.session_id in last:
            assert r.turn == last[r.session_id][0] + 1 and r.arrival_s >= last[r.session_id][1]
        last[r.session_id] = (r.turn, r.arrival_s)
    with pytest.raises(ValueError):
        apply_arrivals(w, "uniform")
