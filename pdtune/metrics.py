"""Latency percentiles and run summaries shared by run-batch and bench."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pdtune.request.output import RequestOutput

PERCENTILES = (50, 90, 99)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy for tiny inputs."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def latency_summary(values: list[float]) -> dict[str, float]:
    out = {f"p{q}": percentile(values, q) for q in PERCENTILES}
    out["mean"] = sum(values) / len(values) if values else float("nan")
    return out


@dataclass
class RunSummary:
    requests_ok: int
    requests_failed: int
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    prefix_cache_hit_rate: float
    preemptions: int
    wall_time_s: float
    ttft_s: dict[str, float]
    tpot_s: dict[str, float]
    e2e_s: dict[str, float]

    @property
    def output_tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_time_s if self.wall_time_s > 0 else 0.0

    @property
    def total_tokens_per_s(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.wall_time_s if self.wall_time_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests_ok / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(output_tokens_per_s=self.output_tokens_per_s, total_tokens_per_s=self.total_tokens_per_s,
                 requests_per_s=self.requests_per_s)
        return d


def summarize(outputs: list[RequestOutput], failed: int, wall_time_s: float, prefix_cache_hit_rate: float,
              preemptions: int) -> RunSummary:
    return RunSummary(
        requests_ok=len(outputs),
        requests_failed=failed,
        prompt_tokens=sum(len(o.prompt_token_ids) for o in outputs),
        completion_tokens=sum(len(o.token_ids) for o in outputs),
        cached_prompt_tokens=sum(o.metrics.num_cached_tokens for o in outputs),
        prefix_cache_hit_rate=prefix_cache_hit_rate,
        preemptions=preemptions,
        wall_time_s=wall_time_s,
        ttft_s=latency_summary([o.metrics.ttft for o in outputs]),
        tpot_s=latency_summary([t for o in outputs if (t := o.tpot) is not None]),
        e2e_s=latency_summary([o.metrics.e2e for o in outputs]),
    )
