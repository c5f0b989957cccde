"""The performance model `pdtune profile` fits and the pdmux planner reads, in the form of the
PD-multiplexing paper (v3): per SM partition, a decode step's time linear in the batch's context
tokens and its size; a prefill layer's time linear in new tokens, new tokens squared and new
times reused (cached) tokens; and how much slower decode runs beside a concurrent prefill
(bandwidth is shared; SMs are not). A partition that was not profiled but lies between two that
were (by decode SMs) gets their fits interpolated."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pdtune.errors import InputFileError
from pdtune.executor.partitions import Partition
from pdtune.perf.model_costs import PrefillShape

KIND = "pdtune-perf-model"
VERSION = 2
DECODE_TERMS = ("const", "context_tokens", "batch")
LAYER_TERMS = ("const", "tokens", "square", "cross")  # as in PrefillShape
# A fit extrapolated below its samples can reach zero or less; the planner divides by predictions.
MIN_PREDICTION_MS = 1e-3


@dataclass(frozen=True)
class LinearFit:
    coef: dict[str, float]  # ms per unit of each term ("const": ms)
    rms_residual: float  # ms, over the fitted samples

    def __call__(self, **x: float) -> float:
        return max(MIN_PREDICTION_MS, sum(c * (1.0 if t == "const" else x[t]) for t, c in self.coef.items()))


def _design(samples: Sequence[dict], terms: Sequence[str]) -> np.ndarray:
    return np.array([[1.0 if t == "const" else float(s[t]) for t in terms] for s in samples], dtype=np.float64)


def separable(samples: Sequence[dict], terms: Sequence[str]) -> bool:
    """Whether the samples tell every term apart (the design has full column rank)."""
    design = _design(samples, terms)
    scale = np.abs(design).max(axis=0)
    return len(samples) >= len(terms) and np.linalg.matrix_rank(design / np.where(scale > 0, scale, 1)) == len(terms)


def fit_linear(samples: Sequence[dict], y: Sequence[float], terms: Sequence[str]) -> LinearFit:
    """Least squares y = sum(coef[t] * sample[t]). Columns are scaled to at most 1 for the solve:
    squares of token counts pass 1e8 and would leave the constant's column numerically negligible."""
    if not separable(samples, terms):
        raise ValueError(f"the samples cannot separate the terms {list(terms)}")
    design, ys = _design(samples, terms), np.asarray(y, dtype=np.float64)
    scale = np.abs(design).max(axis=0)
    coef = np.linalg.lstsq(design / scale, ys, rcond=None)[0]
    residual = ys - (design / scale) @ coef
    return LinearFit({t: float(c / s) for t, c, s in zip(terms, coef, scale)}, float(np.sqrt(np.mean(residual**2))))


@dataclass(frozen=True)
class PartitionFit:
    decode: LinearFit | None  # decode step ms (None: the partition has no decode SMs)
    layer: LinearFit | None  # prefill ms per layer (None: no prefill SMs)
    contention: float = 1.0  # median of decode beside a prefill block over decode alone; 1.0 where not measured

    def decode_ms(self, batch: int, context_tokens: int) -> float:
        return self.decode(context_tokens=context_tokens, batch=batch) * self.contention

    def layer_ms(self, shape: PrefillShape) -> float:
        return self.layer(tokens=shape.tokens, square=shape.square, cross=shape.cross)

    def to_json(self) -> dict:
        def line(fit: LinearFit | None) -> dict | None:
            return None if fit is None else {"coef_ms": fit.coef, "rms_residual_ms": fit.rms_residual}

        return {"decode_fit": line(self.decode), "layer_fit": line(self.layer), "contention_factor": self.contention}

    @classmethod
    def from_json(cls, row: dict) -> PartitionFit:
        def line(fit: dict | None, terms: tuple[str, ...]) -> LinearFit | None:
            if fit is None:
                return None
            coef = fit["coef_ms"]
            if set(coef) != set(terms):
                raise ValueError(f"terms {sorted(coef)}, expected {list(terms)}")
            return LinearFit({t: _finite(coef[t]) for t in terms}, _finite(fit["rms_residual_ms"]))

        return cls(line(row["decode_fit"], DECODE_TERMS), line(row["layer_fit"], LAYER_TERMS),
                   _finite(row["contention_factor"]))


def _finite(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _blend(a: LinearFit | None, b: LinearFit | None, w: float) -> LinearFit | None:
    """(1 - w) a + w b, term by term: a prediction of the blend is the blend of the predictions."""
    if a is None or b is None:
        return None
    coef = {t: (1 - w) * a.coef[t] + w * b.coef[t] for t in a.coef}
    return LinearFit(coef, max(a.rms_residual, b.rms_residual))


@dataclass(frozen=True)
class ProfiledPartition:
    decode_sms: int
    prefill_sms: int
    fit: PartitionFit


@dataclass(frozen=True)
class PerfModel:
    path: str
    model: str
    dtype: str
    tensor_parallel_size: int  # each rank's shard was timed, its collectives included
    gpu: str | None  # the GPU's name as torch reports it; None: measured on a CPU
    partitions: dict[str, ProfiledPartition]  # by partition name, "prefill SMs/decode SMs" as granted
    block_size: int | None = None  # tokens per KV page; None: a file made before pages were recorded
    total_sms: int | None = None  # the GPU's SMs and memory, for a virtual GPU (bench --simulate)
    gpu_memory_gib: float | None = None

    def fit_for(self, part: Partition) -> tuple[PartitionFit | None, str]:
        """The partition's fit and where it comes from: "profiled", "interpolated" (a mixed split
        between two profiled ones, by decode SMs) or "none" (the caller keeps its roofline prior)."""
        exact = self.partitions.get(part.name)
        if exact is not None:
            return exact.fit, "profiled"
        if not (part.prefill_sms and part.decode_sms):
            return None, "none"
        mixed = sorted((p for p in self.partitions.values() if p.prefill_sms and p.decode_sms),
                       key=lambda p: p.decode_sms)
        below = [p for p in mixed if p.decode_sms < part.decode_sms]
        above = [p for p in mixed if p.decode_sms > part.decode_sms]
        if not below or not above:
            return None, "none"
        lo, hi = below[-1], above[0]
        w = (part.decode_sms - lo.decode_sms) / (hi.decode_sms - lo.decode_sms)
        fit = PartitionFit(_blend(lo.fit.decode, hi.fit.decode, w), _blend(lo.fit.layer, hi.fit.layer, w),
                           (1 - w) * lo.fit.contention + w * hi.fit.contention)
        return fit, "interpolated"


def read_perf_model(path: str, model: str | None = None, dtype: str | None = None,
                    partitions: list[Partition] | None = None, tensor_parallel_size: int | None = None,
                    gpu: str | None | bool = False, block_size: int | None = None) -> PerfModel:
    """Reads a `pdtune profile` JSON; checks, where given, that it was measured for this model, in
    this dtype, at this tensor-parallel size, on this GPU (a name, or None for a CPU; False: not
    checked), with these KV pages (decode attention reads its tiles differently from 16- and
    64-token pages: 1.29x apart a context token on an H100's 24-SM partition), and covers at least
    one of these partitions. Every failure names the file."""
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
    if data.get("version") != VERSION:
        raise InputFileError(f"perf model {path} has format version {data.get('version')}, this pdtune reads "
                             f"{VERSION}: profile again")
    try:
        perf = PerfModel(path, str(data["model"]), str(data["dtype"]), int(data["tensor_parallel_size"]),
                         data["environment"].get("gpu"), {
            str(p["name"]): ProfiledPartition(int(p["decode_sms"]), int(p["prefill_sms"]), PartitionFit.from_json(p))
            for p in data["partitions"]}, data.get("block_size"), data.get("total_sms"),
            data["environment"].get("gpu_memory_gib"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(f"perf model {path} is malformed: {type(exc).__name__} {exc}") from None
    if model is not None and perf.model != model:
        raise InputFileError(f"perf model {path} was measured for {perf.model!r}, not {model!r}: "
                             f"run `pdtune profile --model {model}`")
    if tensor_parallel_size is not None and perf.tensor_parallel_size != tensor_parallel_size:
        raise InputFileError(f"perf model {path} was measured at tensor parallel size {perf.tensor_parallel_size}, "
                             f"the engine runs {tensor_parallel_size}: profile with --tensor-parallel-size "
                             f"{tensor_parallel_size}")
    if gpu is not False and perf.gpu != gpu:
        raise InputFileError(f"perf model {path} was measured on {perf.gpu or 'a CPU'}, this engine runs on "
                             f"{gpu or 'a CPU'}: profile on this machine")
    if block_size is not None and perf.block_size not in (None, block_size):
        raise InputFileError(f"perf model {path} was measured with {perf.block_size}-token KV pages, the engine "
                             f"runs {block_size}: profile with --block-size {block_size}, or serve with "
                             f"--block-size {perf.block_size}")
    if dtype is not None and perf.dtype != dtype:
        raise InputFileError(f"perf model {path} was measured in {perf.dtype}, but the engine runs {dtype}")
    if partitions is not None and all(perf.fit_for(p)[1] == "none" for p in partitions):
        raise InputFileError(f"perf model {path} covers none of this engine's partitions "
                             f"{[p.name for p in partitions]} (it has {sorted(perf.partitions)}): profile with "
                             "the same pdmux_splits on this GPU")
    return perf
