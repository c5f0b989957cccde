"""A virtual GPU for `bench --simulate` and `search --simulate`: the engine's scheduler, planner and
dispatch run as on the GPU, while each launch takes the time a `pdtune profile` model predicts for
it on its SM partition, on a virtual clock. A policy can so be tried on a CPU against the profile
of the GPU it will run on. Prefill beside decode, which the profile does not time, is calibrated on
H100 traces (below), as are decode and prefill when decode has the whole GPU beside a block still
running from an earlier step. Not simulated: host stalls beyond a fixed launch time per step, and
the fits' own error."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from pdtune.clock import VirtualClock
from pdtune.config import EngineConfig
from pdtune.errors import PdtuneError
from pdtune.executor.partitions import Partition, simulated_partitions
from pdtune.executor.pdmux import DecodeLaunch, PrefillBlock, PrefillJob
from pdtune.model.arch import ModelArch
from pdtune.model.loader import LoadedModel, load_tokenizer
from pdtune.perf.model_costs import PrefillShape, num_params
from pdtune.perf.perf_model import PerfModel, read_perf_model
from pdtune.planner.predictor import StepTimePredictor
from pdtune.scheduler.scheduler import ScheduledChunk, StepPlan

# The driver grants SMs to a green context in steps of 8 on Hopper (device-facts.md): asking 20
# decode SMs gives 24, as the profiled partitions' names show.
SM_STEP = 8
# Host time of an engine step that the GPU waits for: the planner's measured step wall time beyond
# decode (`host_ms`) over the 3,200 steps of the defaults' run in
# results/h100/session24/all-8.75/trace.jsonl.gz had a median of 0.15 ms (p10 0.04, p90 0.49).
HOST_MS_PER_STEP = 0.2
# A prefill layer inside pdmux, beside decode, against the profile's fit of it alone on the
# partition (the profile times decode beside prefill, its contention factor, not prefill beside
# decode): 1.23 x the fit + 0.35 ms. The launch term is fitted per block to 1,930 blocks of four
# pdmux runs in the H100 trace results/h100/session24/all-8.75: with 1.18 x the fit, the measured
# over the model has a median of 0.98-1.04 in every band of block sizes from under 256 tokens to
# 16k (the fit alone: 1.2x at 16k tokens, 1.5-3x under 1k, whose layers wait on the host's
# launches). Served whole, 1.18 left session 24's H100 runs at 13.5 req/s 0.5-0.9 s less behind
# than measured (stalls between blocks the per-block times do not show); of 1.18, 1.23 and 1.27,
# 1.23 came closest (results/simulated/session25, README "bench --simulate").
PREFILL_BESIDE_DECODE = 1.23
PREFILL_LAYER_LAUNCH_MS = 0.35
# A prefill block runs this much slower while decode has the whole GPU beside it (a block launched
# in an earlier step still running): in that trace, blocks beside whole-GPU decode for over half
# their time took 1.00-1.17x the planner's prediction (median per run and partition; median of
# those 1.07), those beside decode on its own SMs 0.94-1.02x (results/simulated/session26/overlap.py).
PREFILL_BESIDE_WHOLE_GPU_DECODE = 1.07
# Memory a CUDA context and torch's workspaces take before the KV pool is sized (not profiled).
CONTEXT_BYTES = 1 << 30


@dataclass
class VirtualEvent:
    """A CUDA event's interface over a virtual completion time."""

    clock: VirtualClock
    t: float

    def query(self) -> bool:
        return self.clock.t >= self.t

    def synchronize(self) -> None:
        self.clock.advance_to(self.t)

    def elapsed_time(self, end: VirtualEvent) -> float:
        return (end.t - self.t) * 1e3


@dataclass
class VirtualBlock:
    """A prefill block on the prefill timeline; its end is the event its job waits on, so a block
    slowed after its launch (decode taking the whole GPU beside it) ends later for everyone."""

    begun: VirtualEvent
    done: VirtualEvent
    partition: Partition

    @property
    def start(self) -> float:
        return self.begun.t

    @property
    def end(self) -> float:
        return self.done.t


@dataclass
class VirtualInputs:
    """A step's rows as the virtual GPU times them: no tensors are built."""

    chunks: list[ScheduledChunk]
    sampled_chunks: list[ScheduledChunk]


class VirtualGPU:
    """The GPU a profile was measured on: its SMs, memory, and step times from the profile's fits
    (a partition it has no fit for gets the roofline, as the planner's priors do)."""

    def __init__(self, perf_model: PerfModel, arch: ModelArch, itemsize: int):
        if perf_model.gpu is None or perf_model.total_sms is None or perf_model.gpu_memory_gib is None:
            raise PdtuneError(f"{perf_model.path}: --simulate needs a profile measured on a GPU (its SMs and memory "
                              "are recorded there)")
        self.perf_model, self.arch, self.itemsize = perf_model, arch, itemsize
        self.name, self.total_sms = perf_model.gpu, perf_model.total_sms
        self.memory_bytes = int(perf_model.gpu_memory_gib * (1 << 30))
        self.clock = VirtualClock()
        self.times = StepTimePredictor(arch, itemsize, self.total_sms, perf_model=perf_model)

    def partitions(self, splits: tuple[tuple[int, int], ...]) -> list[Partition]:
        return simulated_partitions(splits, self.total_sms, sm_step=SM_STEP)

    def free_memory(self) -> tuple[int, int]:
        """(free, total) bytes once the weights are loaded, as `torch.cuda.mem_get_info` gives them."""
        used = num_params(self.arch) * self.itemsize + CONTEXT_BYTES
        return self.memory_bytes - used, self.memory_bytes

    def contention(self, part: Partition) -> float:
        """How much slower decode runs beside a prefill block, as the profile measured it on the
        partition (1.0 where it has no fit)."""
        fit = self.times.fit(part)[0]
        return fit.contention if fit is not None and fit.decode is not None else 1.0

    def decode_ms(self, part: Partition, batch: int, context_tokens: int) -> float:
        """The decode step alone on its partition (the planner's prior is the step beside prefill)."""
        return self.times.decode_prior_ms(part, batch, context_tokens) / self.contention(part)

    def layers_ms(self, part: Partition, shape: PrefillShape, layers: int) -> float:
        """Prefill layers on the partition; beside decode (a mixed partition) as measured there."""
        fit_ms = self.times.layer_prior_ms(part, shape)
        if part.decode_sms:
            fit_ms = fit_ms * PREFILL_BESIDE_DECODE + PREFILL_LAYER_LAUNCH_MS
        return fit_ms * layers

    def mixed_step_ms(self, plan: StepPlan, full_decode: Partition, full_prefill: Partition) -> float:
        """A chunked step over the whole GPU: its rows' layers as one prefill (a decode row is one
        new token) plus its decode rows' reads of their contexts, or the decode step, whichever
        is longer."""
        decode = [c for c in plan.chunks if c.num_new_tokens == 1]
        batch, context = len(decode), sum(len(c.seq) for c in decode)
        decode_ms = self.times.decode_prior_ms(full_decode, batch, context) if decode else 0.0
        if len(decode) == len(plan.chunks):
            return decode_ms
        context_ms = decode_ms - self.times.decode_prior_ms(full_decode, batch, 0) if decode else 0.0
        rows = PrefillShape.of_chunks([c for c in plan.chunks if c.num_new_tokens > 1]) + PrefillShape(
            batch, batch, 0, batch)
        return max(decode_ms, self.layers_ms(full_prefill, rows, self.arch.num_layers) + context_ms)


def load_virtual(config: EngineConfig) -> tuple[EngineConfig, LoadedModel, VirtualGPU]:
    """The GPU of `config.perf_model`, the model's architecture and tokenizer (no weights), and the
    config the engine runs there: the profile's KV pages unless set, and steps one at a time (no
    host time to hide: a virtual step's launch time is part of the step)."""
    if config.perf_model is None:
        raise PdtuneError("--simulate needs --perf-model: the profile of the GPU to simulate")
    if config.tensor_parallel_size > 1 or config.data_parallel_size > 1:
        raise PdtuneError("--simulate runs one GPU: drop --tensor-parallel-size and --data-parallel-size")
    name, arch, tokenizer = load_tokenizer(config)
    perf = read_perf_model(config.perf_model, model=name, tensor_parallel_size=1, block_size=config.block_size)
    dtype = getattr(torch, perf.dtype.removeprefix("torch."))
    gpu = VirtualGPU(perf, arch, dtype.itemsize)
    config = dataclasses.replace(config, overlap_scheduling=False, block_size=config.block_size or perf.block_size)
    return config, LoadedModel(None, arch, tokenizer, name, dtype, torch.device("cpu"), {}), gpu


def simulated_gpu(config: EngineConfig) -> str:
    """The name of the GPU `config.perf_model` was profiled on, which `load_virtual` simulates."""
    return load_virtual(config)[2].name


class VirtualRunner:
    """The model runner's interface on the virtual GPU: steps take their predicted time and sample
    token 0 (bench requests ignore end-of-sequence tokens, so outputs keep their lengths)."""

    tp = None

    def __init__(self, gpu: VirtualGPU, partitions: list[Partition]):
        self.gpu = gpu
        self.full_prefill = next(p for p in partitions if not p.decode_sms)
        self.full_decode = next(p for p in partitions if not p.prefill_sms)

    def prepare(self, plan: StepPlan) -> VirtualInputs:
        return VirtualInputs(list(plan.chunks), [c for c in plan.chunks if c.completes])

    def sample(self, inputs: VirtualInputs, logits=None) -> list:
        return [(chunk, 0, None) for chunk in inputs.sampled_chunks]

    def run(self, plan: StepPlan) -> list:
        """A sequential or chunked step: the host's launch time, then the step over the whole GPU."""
        ms = HOST_MS_PER_STEP + self.gpu.mixed_step_ms(plan, self.full_decode, self.full_prefill)
        self.gpu.clock.sleep(ms / 1e3)
        return self.sample(self.prepare(plan))


class VirtualPdmuxExecutor:
    """pdmux launches on the virtual GPU: one timeline for decode and one for prefill blocks (a
    prefill block waits for the one before it, as on the prefill streams), each launch starting
    once the host has spent its step's launch time."""

    def __init__(self, gpu: VirtualGPU, runner: VirtualRunner, partitions: list[Partition], num_layers: int):
        self.gpu, self.runner, self.partitions, self.num_layers = gpu, runner, partitions, num_layers
        self.clock = gpu.clock
        self.num_jobs = 0
        self.decode_free = 0.0
        self.prefill_blocks: list[VirtualBlock] = []  # not yet over, in order

    def start_prefill(self, plan: StepPlan) -> PrefillJob:
        self.num_jobs += 1
        return PrefillJob(plan, self.runner.prepare(plan), self.num_layers, PrefillShape.of_chunks(plan.chunks),
                          self.num_jobs)

    def _decode_end(self, part: Partition, batch: int, context_tokens: int, start: float) -> float:
        """When a decode step launched at `start` on `part` ends: at its pace alone, slowed while
        prefill blocks run beside it by the contention factor of its partition, or, on a partition
        of decode alone (a block launched in an earlier step still running on SMs it shares), of
        the block's. In the H100 trace of results/h100/session24/all-8.75 (results/simulated/
        session26/overlap.py), decode steps on the whole GPU that a block on 108 SMs ran beside for
        most of their time took 1.10-1.29x their time alone in four runs (median per run; 1.89x in
        the fifth's 41 steps; that partition's factor is 1.32), not the twice and more that the 24
        SMs the block leaves would take; beside blocks on other partitions, 0.97-1.40x."""
        alone_s = self.gpu.decode_ms(part, batch, context_tokens) / 1e3
        t, left = start, 1.0  # the share of the step still to run
        for block in self.prefill_blocks:  # one after another on the prefill timeline
            if block.end <= t:
                continue
            if block.start > t:
                if (block.start - t) / alone_s >= left:
                    break
                left -= (block.start - t) / alone_s
                t = block.start
            pace_s = alone_s * self.gpu.contention(part if part.prefill_sms else block.partition)
            if (block.end - t) / pace_s >= left:
                return t + left * pace_s
            left -= (block.end - t) / pace_s
            t = block.end
        return t + left * alone_s

    def _slow_blocks_beside(self, start: float, end: float) -> None:
        """Decode on the whole GPU over [start, end): the blocks it runs beside take longer by
        `PREFILL_BESIDE_WHOLE_GPU_DECODE` for that time, and the blocks queued behind them wait."""
        delay = 0.0
        for block in self.prefill_blocks:
            block.begun.t += delay
            overlap = max(0.0, min(end, block.end + delay) - max(start, block.start))
            delay += (PREFILL_BESIDE_WHOLE_GPU_DECODE - 1.0) * overlap
            block.done.t += delay

    def _launch_prefill(self, job: PrefillJob, part: Partition, layers: int, now: float) -> None:
        start = max([now] + [block.end for block in self.prefill_blocks])
        layers = min(layers, job.remaining_layers)
        end = start + self.gpu.layers_ms(part, job.shape, layers) / 1e3
        job.next_layer += layers
        job.prev_done, job.done = job.done, VirtualEvent(self.clock, end)
        self.prefill_blocks.append(VirtualBlock(VirtualEvent(self.clock, start), job.done, part))
        job.last_block = PrefillBlock(self.prefill_blocks[-1].begun, job.done, now, now)

    def launch_step(self, decode: tuple[Partition, VirtualInputs] | None, job: PrefillJob | None,
                    prefill_partition: Partition | None, prefill_layers: int, previous: DecodeLaunch | None = None,
                    plan: StepPlan | None = None) -> DecodeLaunch | None:
        self.clock.sleep(HOST_MS_PER_STEP / 1e3)
        now = self.clock.now()
        self.prefill_blocks = [b for b in self.prefill_blocks if b.end > now]
        if job is not None and prefill_layers > 0:
            self._launch_prefill(job, prefill_partition, prefill_layers, now)
        if decode is None:
            return None
        part, inputs = decode
        batch, context = len(inputs.chunks), sum(len(c.seq) for c in inputs.chunks)
        start = max(now, self.decode_free)
        end = self.decode_free = self._decode_end(part, batch, context, start)
        if not part.prefill_sms:
            self._slow_blocks_beside(start, end)
        return DecodeLaunch(None, VirtualEvent(self.clock, start), VirtualEvent(self.clock, end), now, now, False)

    def finish_decode(self, launch: DecodeLaunch) -> tuple[None, float]:
        launch.end.synchronize()
        return None, launch.start.elapsed_time(launch.end)
