"""Generators: lengths fitted to the published figures, shared multi-turn prefixes, seeds, clamps."""

from __future__ import annotations

import numpy as np
import pytest
from pdtune.workloads.generators import GENERATORS, random_uniform
from pdtune.workloads.lengths import LengthDist
from pdtune.workloads.request import Workload

# (prompt mean, median, p90), (output mean, median, p90) targets; None = not a target.
# Sources: traces/README.md (ShareGPT, LooGLE, Mooncake), assumptions noted in generators.py.
TARGETS = {
    "sharegpt": ((318, 134, 751), (195, 121, 484)),
    "loogle": ((None, None, None), (20, 18, None)),
    "mooncake-conversation": ((12_035, None, None), (343, 350, 597)),
    "toolagent": ((8_596, None, None), (182, 110, None)),
    "openthoughts": ((None, 220, 500), (None, 4000, 8000)),
}
# 4,000 requests (LooGLE: 1,000, its prompts are ~20k tokens): across 12 seeds every targeted
# statistic stayed within 9.6% (the Mooncake output median, at a kink of its fit), most within 5%.
TOLERANCE = 0.10


@pytest.fixture(scope="module")
def workloads() -> dict[str, Workload]:
    return {name: GENERATORS[name](num_requests=1000 if name == "loogle" else 4000, seed=1) for name in TARGETS}


def _stats(values: np.ndarray) -> tuple[float, float, float]:
    return float(values.mean()), float(np.median(values)), float(np.percentile(values, 90))


def _lengths(w: Workload) -> tuple[np.ndarray, np.ndarray]:
    return np.array([len(r.prompt_token_ids) for r in w.requests]), np.array([r.max_tokens for r in w.requests])


@pytest.mark.parametrize("name", TARGETS)
def test_lengths_match_published_figures(workloads: dict[str, Workload], name: str) -> None:
    for values, targets, what in zip(_lengths(workloads[name]), TARGETS[name], ("prompt", "output")):
        for stat, got, want in zip(("mean", "median", "p90"), _stats(values), targets):
            if want is not None:
                assert got == pytest.approx(want, rel=TOLERANCE), f"{name} {what} {stat}"


def test_loogle_prompts_stay_in_the_published_range(workloads: dict[str, Workload]) -> None:
    prompts, _ = _lengths(workloads["loogle"])
    assert prompts.min() >= 11_000 and prompts.max() <= 34_000
    assert 18_000 <= prompts.mean() <= 28_000  # "mean about 18-28k by task"


def test_mooncake_quantiles_not_fitted_but_close(workloads: dict[str, Workload]) -> None:
    """Only the input mean is fitted; the session model still lands near the trace's median and p90."""
    _, median, p90 = _stats(_lengths(workloads["mooncake-conversation"])[0])
    assert median == pytest.approx(6909, rel=0.15) and p90 == pytest.approx(27_367, rel=0.15)


@pytest.mark.parametrize("name", ["mooncake-conversation", "toolagent"])
def test_turns_extend_the_previous_turn(workloads: dict[str, Workload], name: str) -> None:
    last: dict[str, tuple[int, list[int], int, float]] = {}
    for r in workloads[name].requests:
        if r.turn:
            turn, prompt, answer_len, arrival = last[r.session_id]
            assert r.turn == turn + 1 and r.arrival_s >= arrival
            assert r.prompt_token_ids[: len(prompt)] == prompt
            assert len(r.prompt_token_ids) > len(prompt) + answer_len  # answer, then new user tokens
        last[r.session_id] = (r.turn, r.prompt_token_ids, r.max_tokens, r.arrival_s)
    assert sum(r.turn > 0 for r in workloads[name].requests) > len(workloads[name]) / 4


def test_toolagent_sessions_share_tool_prefixes(workloads: dict[str, Workload]) -> None:
    firsts = [r.prompt_token_ids[:1024] for r in workloads["toolagent"].requests if r.turn == 0]
    assert len({tuple(p) for p in firsts}) == 8  # eight tool-definition prefixes, at least 1,024 tokens each


def test_sessions_are_interleaved(workloads: dict[str, Workload]) -> None:
    sessions = [r.session_id for r in workloads["toolagent"].requests]
    switches = sum(a != b for a, b in zip(sessions, sessions[1:]))
    assert switches > 0.9 * len(sessions)


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_workload(name: str) -> None:
    a, b, c = (GENERATORS[name](num_requests=30, seed=s, vocab_size=500) for s in (7, 7, 8))
    assert a.requests == b.requests and a.metadata == b.metadata
    assert [r.prompt_token_ids for r in a.requests] != [r.prompt_token_ids for r in c.requests]
    assert len(a) == 30 and all(r.arrival_s == 0 for r in a.requests)
    assert all(10 <= t < 500 for r in a.requests for t in r.prompt_token_ids)


@pytest.mark.parametrize("name", GENERATORS)
def test_clamps(name: str) -> None:
    w = GENERATORS[name](num_requests=200, seed=0, max_prompt_len=300, max_output_len=40)
    assert len(w) == 200
    assert max(len(r.prompt_token_ids) for r in w.requests) <= 300
    assert max(r.max_tokens for r in w.requests) <= 40 and min(r.max_tokens for r in w.requests) >= 1


def test_random_uniform_ranges() -> None:
    w = random_uniform((5, 9), (1, 3), num_requests=2000)
    prompts, outputs = _lengths(w)
    assert set(prompts) == set(range(5, 10)) and set(outputs) == {1, 2, 3}
    assert w.metadata["generator"] == "random" and w.metadata["seed"] == 0


def test_length_dist_hits_every_quantile_and_the_mean() -> None:
    dist = LengthDist(((0.5, 134), (0.9, 751), (0.99, 2578)), mean=318)
    assert dist.expected_mean == pytest.approx(318, rel=1e-6)
    x = dist.sample(np.random.default_rng(0), 400_000)
    assert np.percentile(x, [50, 90, 99]) == pytest.approx([134, 751, 2578], rel=0.02)


def test_length_dist_rejects_unreachable_figures() -> None:
    with pytest.raises(ValueError):
        LengthDist(((0.5, 100),), mean=90)  # a lognormal's mean is above its median
    with pytest.raises(ValueError):
        LengthDist(((0.5, 350), (0.9, 597)), mean=343)  # needs a heavier lower tail than the quantiles give
