"""Latency SLOs as users write them: `ttft=200ms,tpot=20ms`, optionally `,itl=100ms` (units ms or s)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence

from pdtune.errors import PdtuneError

_PART = re.compile(r"^\s*(ttft|tpot|itl)\s*=\s*([0-9]*\.?[0-9]+)\s*(ms|s)\s*$")


def itl_p99(itls: Sequence[float]) -> float | None:
    """The 99th percentile (nearest rank) of one request's inter-token gaps: its worst gap below
    100 tokens, the second worst to 200."""
    if not itls:
        return None
    return sorted(itls)[math.ceil(0.99 * len(itls)) - 1]


@dataclass(frozen=True)
class SLO:
    """TTFT and TPOT (a request's mean time per output token after the first) bound every request;
    the optional ITL bounds the 99th percentile of each request's own inter-token gaps, the
    per-token (TBT) form of the paper's SLOs, which a mean TPOT lets long steps average away."""

    ttft_s: float
    tpot_s: float
    itl_s: float | None = None

    def missed(self, ttft_s: float | None, tpot_s: float | None, itls: Sequence[float] = ()) -> list[str]:
        """The bounds a served request missed ("ttft", "tpot", "itl"); a one-token output has no
        TPOT or gap to miss."""
        bounds = []
        if ttft_s is None or ttft_s > self.ttft_s:
            bounds.append("ttft")
        if tpot_s is not None and tpot_s > self.tpot_s:
            bounds.append("tpot")
        worst_gap = itl_p99(itls) if self.itl_s is not None else None
        if worst_gap is not None and worst_gap > self.itl_s:
            bounds.append("itl")
        return bounds

    def met(self, ttft_s: float | None, tpot_s: float | None, itls: Sequence[float] = ()) -> bool:
        """A request meets the SLO when every bound holds."""
        return not self.missed(ttft_s, tpot_s, itls)

    def engine_targets(self) -> dict[str, float | None]:
        """The targets as the engine config's fields (ms), which its planners plan against."""
        return dict(slo_ttft_ms=self.ttft_s * 1e3, slo_tpot_ms=self.tpot_s * 1e3,
                    slo_itl_ms=None if self.itl_s is None else self.itl_s * 1e3)

    def __str__(self) -> str:
        itl = f",itl={self.itl_s * 1e3:g}ms" if self.itl_s is not None else ""
        return f"ttft={self.ttft_s * 1e3:g}ms,tpot={self.tpot_s * 1e3:g}ms{itl}"


def parse_slo(text: str) -> SLO:
    values: dict[str, float] = {}
    for part in text.split(","):
        m = _PART.match(part)
        if m is None:
            raise PdtuneError(f"bad SLO {text!r}: write it as ttft=200ms,tpot=20ms[,itl=100ms] (units ms or s)")
        key, number, unit = m.groups()
        if key in values:
            raise PdtuneError(f"bad SLO {text!r}: {key} is given twice")
        values[key] = float(number) / (1e3 if unit == "ms" else 1.0)
    missing = {"ttft", "tpot"} - set(values)
    if missing:
        raise PdtuneError(f"bad SLO {text!r}: missing {', '.join(sorted(missing))}")
    if min(values.values()) <= 0:
        raise PdtuneError(f"bad SLO {text!r}: targets must be positive")
    return SLO(values["ttft"], values["tpot"], values.get("itl"))
