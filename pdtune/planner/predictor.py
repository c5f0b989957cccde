"""What a pdmux step will take: a decode iteration and a prefill layer on a partition, from the
roofline or a `pdtune profile` fit, corrected online by measured times. The planner plans with it;
the data-parallel dispatcher prices replicas with its constants."""

from __future__ import annotations

from collections import defaultdict, deque

from pdtune.executor.partitions import Partition
from pdtune.model.arch import ModelArch
from pdtune.perf.model_costs import PrefillShape, batch_prefill_flops, kv_bytes_per_token, num_params
from pdtune.perf.perf_model import PartitionFit, PerfModel

# Share of full HBM bandwidth a partition reaches (measured on the H100: device-facts.md, 2 GiB copy).
_BANDWIDTH_SHARE = ((8, 0.2), (16, 0.39), (32, 0.69), (48, 1.0))
H100_COPY_BYTES_PER_S = 2.95e12  # measured (results/h100/bench-kernels)
H100_MATMUL_FLOPS_PER_S = 7.48e14


def bandwidth_share(sms: int) -> float:
    prev_sms, prev_share = 0, 0.0
    for point_sms, share in _BANDWIDTH_SHARE:
        if sms <= point_sms:
            return prev_share + (share - prev_share) * (sms - prev_sms) / (point_sms - prev_sms)
        prev_sms, prev_share = point_sms, share
    return 1.0


# Host time to launch one layer's kernels, which bounds a short prefill block: the median layer
# time of 32-256-token blocks in results/h100/pdmux-mixed/trace-pdmux.jsonl was 0.6-1.0 ms.
LAYER_LAUNCH_MS = 0.6


def _percentile(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class StepTimePredictor:
    """Priors for a decode step (bytes over the partition's bandwidth) and a prefill layer (launch
    time plus FLOPs over the partition's matmul rate), or, for the partitions a `pdtune profile`
    model covers (profiled or interpolated), its fits (with its contention factor on decode);
    scaled by factors learned online from measured times. Layer factors are kept per token-count
    bucket, because a short block is launch-bound and a long one compute-bound; medians keep one
    stalled block from skewing them.
    The 90th percentile of recent decode factors is the contention guard band."""

    def __init__(self, arch: ModelArch, itemsize: int, total_sms: int, copy_bytes_per_s: float = H100_COPY_BYTES_PER_S,
                 matmul_flops_per_s: float = H100_MATMUL_FLOPS_PER_S, window: int = 32,
                 perf_model: PerfModel | None = None):
        self.arch, self.itemsize, self.total_sms = arch, itemsize, total_sms
        self.perf_model = perf_model
        self.fits: dict[str, tuple[PartitionFit | None, str]] = {}  # by partition: fit and its source
        self.bw, self.rate = copy_bytes_per_s, matmul_flops_per_s
        self.weight_bytes = num_params(arch) * itemsize
        self.ratios: dict[tuple, deque] = defaultdict(lambda: deque(maxlen=window))
        self.step_wall_ms: float | None = None  # moving average of the host loop's time per step
        self.host_ms = 0.0  # moving average of a decode step's wall time beyond its GPU time

    def fit(self, part: Partition) -> tuple[PartitionFit | None, str]:
        """The perf model's fit of the partition and its source ("profiled", "interpolated"; "none"
        without one: the roofline prior)."""
        if part.name not in self.fits:
            self.fits[part.name] = self.perf_model.fit_for(part) if self.perf_model else (None, "none")
        return self.fits[part.name]

    def _factor(self, key: tuple, q: float) -> float:
        seen = self.ratios[key]
        return _percentile(seen, q) if seen else 1.0

    def decode_prior_ms(self, part: Partition, batch: int, context_tokens: int) -> float:
        """The partition's fitted decode time, slowed by its contention factor, or its memory
        floor: weights plus every sequence's KV read once at the partition's share of bandwidth."""
        fit = self.fit(part)[0]
        if fit is not None and fit.decode is not None:
            return fit.decode_ms(batch, context_tokens)
        data = self.weight_bytes + context_tokens * kv_bytes_per_token(self.arch, self.itemsize)
        return data / (self.bw * bandwidth_share(part.decode_sms)) * 1e3

    def layer_prior_ms(self, part: Partition, shape: PrefillShape) -> float:
        fit = self.fit(part)[0]
        if fit is not None and fit.layer is not None:
            return fit.layer_ms(shape)
        share = max(part.prefill_sms, 1) / self.total_sms
        return LAYER_LAUNCH_MS + batch_prefill_flops(self.arch, shape) / self.arch.num_layers / (self.rate * share) * 1e3

    def decode_ms(self, part: Partition, batch: int, context_tokens: int, worst: bool = False) -> float:
        prior = self.decode_prior_ms(part, batch, context_tokens)
        return prior * self._factor(("decode", part.name), 0.9 if worst else 0.5)

    def layer_ms(self, part: Partition, shape: PrefillShape) -> float:
        return self.layer_prior_ms(part, shape) * self._factor(("layer", part.name, shape.tokens.bit_length()), 0.5)

    def forget(self) -> None:
        """Drops what was measured online (contention factors, step and host times), so the
        predictions start from the perf model or the roofline again."""
        self.ratios.clear()
        self.step_wall_ms, self.host_ms = None, 0.0

    def observe_decode(self, part: Partition, batch: int, context_tokens: int, measured_ms: float) -> None:
        self.ratios[("decode", part.name)].append(measured_ms / self.decode_prior_ms(part, batch, context_tokens))

    def observe_step_wall(self, measured_ms: float, decode_ms: float | None = None) -> None:
        """The loop's wall time of the last step and, if it decoded, that decode's GPU time."""
        prev = self.step_wall_ms
        self.step_wall_ms = measured_ms if prev is None else 0.9 * prev + 0.1 * measured_ms
        if decode_ms is not None:
            self.host_ms = 0.9 * self.host_ms + 0.1 * max(0.0, measured_ms - decode_ms)

    def observe_layers(self, part: Partition, shape: PrefillShape, layers: int, measured_ms: float) -> None:
        key = ("layer", part.name, shape.tokens.bit_length())
        self.ratios[key].append(measured_ms / layers / self.layer_prior_ms(part, shape))
