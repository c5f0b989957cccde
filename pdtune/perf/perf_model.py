"""The performance model `pdtune profile` fits and the pdmux planner reads: per SM partition, a
decode step's time as a line in bytes read, a prefill layer's time as a line in FLOPs, and how much
slower decode runs beside a concurrent prefill (bandwidth is shared; SMs are not)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pdtune.errors import InputFileError

KIND = "pdtune-perf-model"
# A fit extrapolated below its samples can reach zero or less; the planner divides by predictions.
MIN_PREDICTION_MS = 1e-3


@dataclass(frozen=True)
class LineFit:
    intercept: float
    slope: float
    rms_residual: float  # in y's unit, over the fitted samples

    def __call__(self, x: float) -> float:
        return max(MIN_PREDICTION_MS, self.intercept + self.slope * x)


def fit_line(x: Sequence[float], y: Sequence[float]) -> LineFit:
    """Least squares y = intercept + slope * x. x is scaled to at most 1 for the solve: bytes and
    FLOPs run past 1e9 and would leave the intercept's column numerically negligible."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(np.unique(xs)) < 2:
        raise ValueError("a line needs samples at two or more distinct x")
    scale = np.abs(xs).max()
    design = np.stack([np.ones_like(xs), xs / scale], axis=1)
    coef = np.linalg.lstsq(design, ys, rcond=None)[0]
    residual = ys - design @ coef
    return LineFit(float(coef[0]), float(coef[1] / scale), float(np.sqrt(np.mean(residual**2))))


@dataclass(frozen=True)
class PartitionFit:
    decode: LineFit | None  # decode step ms against bytes read (None: the partition has no decode SMs)
    layer: LineFit | None  # prefill ms per layer against FLOPs per layer (None: no prefill SMs)
    contention: float = 1.0  # decode beside a prefill block over decode alone; 1.0 where not measured

    def to_json(self) -> dict:
        def line(fit: LineFit | None, a: str, b: str) -> dict | None:
            return None if fit is None else {a: fit.intercept, b: fit.slope, "rms_residual_ms": fit.rms_residual}

        return {"decode_fit": line(self.decode, "a_ms", "b_ms_per_byte"),
                "layer_fit": line(self.layer, "c_ms", "d_ms_per_flop"), "contention_factor": self.contention}

    @classmethod
    def from_json(cls, row: dict) -> PartitionFit:
        def line(fit: dict | None, a: str, b: str) -> LineFit | None:
            return None if fit is None else LineFit(_finite(fit[a]), _finite(fit[b]), _finite(fit["rms_residual_ms"]))

        return cls(line(row["decode_fit"], "a_ms", "b_ms_per_byte"), line(row["layer_fit"], "c_ms", "d_ms_per_flop"),
                   _finite(row["contention_factor"]))


def _finite(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PerfModel:
    path: str
    model: str
    dtype: str
    partitions: dict[str, PartitionFit]  # by partition name, "prefill SMs/decode SMs" as granted


def read_perf_model(path: str, model: str | None = None, dtype: str | None = None,
                    partitions: list[str] | None = None) -> PerfModel:
    """Reads a `pdtune profile` JSON; checks, where given, that it was measured for this model, in
    this dtype, and on at least one of these partitions. Every failure names the file."""
    hint = "(`pdtune profile` writes one)"
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputFileError(f"perf model file not found: {path} {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"perf model {path}: not readable ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(f"perf model {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise InputFileError(f"{path}: not a pdtune perf model {hint}")
    try:
        perf = PerfModel(path, str(data["model"]), str(data["dtype"]),
                         {str(p["name"]): PartitionFit.from_json(p) for p in data["partitions"]})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(f"perf model {path} is malformed: {type(exc).__name__} {exc}") from None
    if model is not None and perf.model != model:
        raise InputFileError(f"perf model {path} was measured for {perf.model!r}, not {model!r}: "
                             f"run `pdtune profile --model {model}`")
    if dtype is not None and perf.dtype != dtype:
        raise InputFileError(f"perf model {path} was measured in {perf.dtype}, but the engine runs {dtype}")
    if partitions is not None and not set(partitions) & set(perf.partitions):
        raise InputFileError(f"perf model {path} has none of this engine's partitions {partitions} "
                             f"(it has {sorted(perf.partitions)}): profile with the same pdmux_splits on this GPU")
    return perf
