"""What a finished request hands back: tokens, text, finish reason and its latency figures."""

from __future__ import annotations

from dataclasses import dataclass

from pdtune.request.sequence import Sequence, TokenLogprobs


@dataclass(frozen=True)
class RequestMetrics:
    arrival_time: float
    first_token_time: float | None  # None for a request aborted before its first token
    finish_time: float | None  # its last token's time
    num_cached_tokens: int
    num_preemptions: int

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_time is None else self.first_token_time - self.arrival_time

    @property
    def e2e(self) -> float | None:
        return None if self.finish_time is None else self.finish_time - self.arrival_time


@dataclass(frozen=True)
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list[TokenLogprobs] | None
    metrics: RequestMetrics
    token_times: list[float]

    @property
    def tpot(self) -> float | None:
        """Mean time per output token after the first; None for a single-token output."""
        n = len(self.token_times)
        return (self.token_times[-1] - self.token_times[0]) / (n - 1) if n > 1 else None

    @property
    def inter_token_latencies(self) -> list[float]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:])]

    @classmethod
    def from_sequence(cls, seq: Sequence) -> "RequestOutput":
        times = seq.token_times
        return cls(
            request_id=seq.request_id,
            prompt_token_ids=list(seq.prompt_token_ids),
            token_ids=seq.output_token_ids,
            text=seq.output_text,
            finish_reason=seq.finish_reason or "length",
            logprobs=list(seq.logprobs) if seq.params.logprobs is not None else None,
            metrics=RequestMetrics(seq.arrival_time, times[0] if times else None, times[-1] if times else None,
                                   seq.num_cached_tokens, seq.num_preemptions),
            token_times=list(times),
        )
