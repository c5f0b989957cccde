"""SM partitions: pairs of green-context streams (prefill SMs, decode SMs) made once at start-up.

Green contexts isolate SMs, not memory bandwidth. The driver rounds requests to its granularity
(8 SMs on H100), so the counts actually granted are read back and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pdtune.config import DEFAULT_SPLITS
from pdtune.errors import PdtuneError


class GreenContextsUnavailable(PdtuneError):
    """The GPU, driver, or Python bindings cannot make green contexts."""


@dataclass
class Partition:
    """One split of the GPU. `decode_sms == 0` is prefill alone on the whole GPU; `prefill_sms == 0`
    is decode alone."""

    requested: tuple[int, int]
    prefill_sms: int
    decode_sms: int
    prefill_stream: torch.cuda.Stream | None
    decode_stream: torch.cuda.Stream | None

    @property
    def name(self) -> str:
        return f"{self.prefill_sms}/{self.decode_sms}"


def _driver():
    try:
        from cuda.bindings import driver
    except ImportError as exc:
        raise GreenContextsUnavailable(
            "--mode pdmux needs the CUDA driver bindings (pip install cuda-bindings) for green contexts"
        ) from exc
    return driver


def _check(result):
    err, *rest = result
    if int(err) != 0:
        raise GreenContextsUnavailable(f"green contexts are not available here: CUDA driver error {err!r}")
    return rest[0] if len(rest) == 1 else rest


class GreenContextFactory:
    """Makes streams bound to disjoint SM sets through the driver API."""

    def __init__(self, device_index: int = 0):
        if not torch.cuda.is_available():
            raise GreenContextsUnavailable("--mode pdmux needs a CUDA GPU with green contexts (CUDA 12.4+)")
        major, _ = torch.cuda.get_device_capability(device_index)
        if major < 9:
            raise GreenContextsUnavailable("--mode pdmux needs green contexts, which need a Hopper or newer GPU")
        self.drv = _driver()
        torch.cuda.init()
        _check(self.drv.cuInit(0))
        self.device = _check(self.drv.cuDeviceGet(device_index))
        self.total_sms = torch.cuda.get_device_properties(device_index).multi_processor_count
        self._keep = []  # green contexts must outlive their streams

    def _stream(self, resource) -> torch.cuda.Stream:
        d = self.drv
        desc = _check(d.cuDevResourceGenerateDesc([resource], 1))
        ctx = _check(d.cuGreenCtxCreate(desc, self.device, d.CUgreenCtxCreate_flags.CU_GREEN_CTX_DEFAULT_STREAM))
        stream = _check(d.cuGreenCtxStreamCreate(ctx, d.CUstream_flags.CU_STREAM_NON_BLOCKING, 0))
        self._keep.append((ctx, stream))
        return torch.cuda.ExternalStream(int(stream))

    def split(self, prefill_sms: int, decode_sms: int) -> Partition:
        """Decode gets `decode_sms` (rounded up by the driver); prefill gets the rest."""
        d = self.drv
        whole = _check(d.cuDeviceGetDevResource(self.device, d.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM))
        groups, count, remainder = _check(d.cuDevSmResourceSplitByCount(1, whole, 0, decode_sms))
        if int(count) != 1:
            raise GreenContextsUnavailable(f"the driver could not make a {decode_sms}-SM partition")
        decode = groups[0]
        return Partition((prefill_sms, decode_sms), int(remainder.sm.smCount), int(decode.sm.smCount),
                         self._stream(remainder), self._stream(decode))


def check_green_contexts() -> None:
    """Fails fast (before any model loads) where `--mode pdmux` cannot run on this GPU."""
    if torch.cuda.is_available():
        GreenContextFactory(torch.cuda.current_device())


def make_partitions(splits: tuple[tuple[int, int], ...] = DEFAULT_SPLITS) -> list[Partition]:
    """The configured splits plus the whole GPU for each phase alone (ordinary streams). Two
    splits the driver rounds to the same SM counts (12 and 16 decode SMs both give 16) are one
    partition: the first is kept, so graphs and plans are never made twice under one name."""
    factory = GreenContextFactory(torch.cuda.current_device())
    parts: list[Partition] = []
    for p, d in splits:
        part = factory.split(p, d)
        if all(q.name != part.name for q in parts):
            parts.append(part)
    full = factory.total_sms
    alone = [Partition((full, 0), full, 0, torch.cuda.Stream(), None),
             Partition((0, full), 0, full, None, torch.cuda.Stream())]
    return sorted(parts, key=lambda p: p.decode_sms) + alone


def simulated_partitions(splits: tuple[tuple[int, int], ...], total_sms: int = 132,
                         sm_step: int = 1) -> list[Partition]:
    """Partitions without streams: the CPU runs each launch at once, on the same code path, so the
    planner, gang and dispatch logic can be tested without a GPU. Decode SMs are rounded up to
    `sm_step` as a driver grants them; splits that round alike are one partition, as on a GPU."""
    parts: list[Partition] = []
    for p, d in splits:
        decode = min(total_sms, -(-d // sm_step) * sm_step)
        if all(q.decode_sms != decode for q in parts):
            parts.append(Partition((p, d), total_sms - decode, decode, None, None))
    alone = [Partition((total_sms, 0), total_sms, 0, None, None), Partition((0, total_sms), 0, total_sms, None, None)]
    return sorted(parts, key=lambda p: p.decode_sms) + alone
