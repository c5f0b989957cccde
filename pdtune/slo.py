"""Latency SLOs as users write them: `ttft=200ms,tpot=20ms` (units ms or s)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pdtune.errors import PdtuneError

_PART = re.compile(r"^\s*(ttft|tpot)\s*=\s*([0-9]*\.?[0-9]+)\s*(ms|s)\s*$")


@dataclass(frozen=True)
class SLO:
    ttft_s: float
    tpot_s: float

    def met(self, ttft_s: float | None, tpot_s: float | None) -> bool:
        """A request meets the SLO when both hold; a one-token output has no TPOT to miss."""
        return ttft_s is not None and ttft_s <= self.ttft_s and (tpot_s is None or tpot_s <= self.tpot_s)

    def __str__(self) -> str:
        return f"ttft={self.ttft_s * 1e3:g}ms,tpot={self.tpot_s * 1e3:g}ms"


def parse_slo(text: str) -> SLO:
    values: dict[str, float] = {}
    for part in text.split(","):
        m = _PART.match(part)
        if m is None:
            raise PdtuneError(f"bad SLO {text!r}: write it as ttft=200ms,tpot=20ms (units ms or s)")
        key, number, unit = m.groups()
        if key in values:
            raise PdtuneError(f"bad SLO {text!r}: {key} is given twice")
        values[key] = float(number) / (1e3 if unit == "ms" else 1.0)
    missing = {"ttft", "tpot"} - set(values)
    if missing:
        raise PdtuneError(f"bad SLO {text!r}: missing {', '.join(sorted(missing))}")
    if min(values.values()) <= 0:
        raise PdtuneError(f"bad SLO {text!r}: targets must be positive")
    return SLO(values["ttft"], values["tpot"])
