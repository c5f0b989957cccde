"""Wires the stages: requests in, schedule, plan, run, sample, finished outputs out."""

from __future__ import annotations

import dataclasses
import time
import warnings

import torch

from pdtune.clock import HOST_CLOCK
from pdtune.config import EngineConfig
from pdtune.errors import InvalidRequestError, PdtuneError
from pdtune.executor.model_runner import ModelRunner, kv_bytes_per_block
from pdtune.executor.pdmux import make_pdmux_executor, pdmux_piece_rows
from pdtune.executor.tensor_parallel import TPWorkers
from pdtune.executor.virtual_gpu import VirtualGPU, VirtualPdmuxExecutor, VirtualRunner, load_virtual
from pdtune.model.arch import ModelArch
from pdtune.model.loader import LoadedModel, load_model
from pdtune.model.ops import resolve_block_size
from pdtune.perf.perf_model import read_perf_model
from pdtune.perf.timing import measure_ceilings
from pdtune.planner.pdmux import PdmuxPlanner
from pdtune.planner.predictor import StepTimePredictor
from pdtune.request.output import RequestOutput
from pdtune.request.sampling import SamplingParams
from pdtune.request.sequence import Sequence
from pdtune.scheduler.block_manager import BlockManager
from pdtune.scheduler.scheduler import Scheduler
from pdtune.steppers import PdmuxStepper, SyncStepper


def activation_bytes(loaded: LoadedModel, config: EngineConfig) -> int:
    """Upper estimate of the transient memory beside the KV pool: one step's hidden states, MLP
    and logits, and under pdmux a layer of the largest prefill batch on each partition's prefill
    stream. torch's allocator caches blocks per stream and a prefill batch moves between the
    partitions' streams; without room for each, every run took new segments again (44 / 117 / 111
    in three same-seed pdmux runs on the H200, session 8; chunked none), with room 81 / 1 / 0."""
    a = loaded.arch
    per_token = (4 * a.hidden_size + 3 * a.intermediate_size + a.q_size + 2 * a.kv_size) * loaded.dtype.itemsize
    total = 2 * config.max_num_batched_tokens * per_token + 3 * config.max_num_seqs * a.vocab_size * 4
    if config.mode == "pdmux":
        total += (len(config.pdmux_splits) + 1) * config.pdmux_prefill_tokens * per_token
    if not config.enforce_eager:  # the graph pieces' pool keeps a step's activations of its own
        total += (pdmux_piece_rows(config) if config.mode == "pdmux" else config.max_num_batched_tokens) * per_token
    return total


def size_kv_pool(loaded: LoadedModel, config: EngineConfig, gpu_memory: tuple[int, int] | None = None) -> int:
    """KV blocks in the memory left beside the weights and activations: of this process's GPU, of
    `gpu_memory` (free, total bytes: a virtual GPU's) or, on a CPU, `kv_cache_gb`."""
    per_block = kv_bytes_per_block(loaded, config.block_size)
    if config.num_kv_blocks is not None:
        return config.num_kv_blocks
    if gpu_memory is None and loaded.device.type == "cuda":
        gpu_memory = torch.cuda.mem_get_info(loaded.device)
    if gpu_memory is not None:
        free, total = gpu_memory
        budget = total * config.gpu_memory_utilization - (total - free) - activation_bytes(loaded, config)
    else:
        budget = config.kv_cache_gb * 1e9
    blocks = int(budget // per_block)
    if blocks < 1:
        raise PdtuneError("no memory is left for the KV cache: lower the batch limits or raise the memory share")
    return blocks


def _max_model_len(config: EngineConfig, arch) -> int:
    """The context length; capped at a sliding window, which the attention kernels do not implement."""
    length = config.max_model_len or arch.max_position_embeddings
    if arch.sliding_window and length > arch.sliding_window:
        warnings.warn(f"{config.model}: sliding-window attention is not implemented; the context is capped at "
                      f"the window, {arch.sliding_window} tokens (instead of {length})", stacklevel=3)
        length = arch.sliding_window
    return length


def pdmux_plan_config(config: EngineConfig, policy: str, split: tuple[int, int] | None = None,
                      gang: int | None = None, prefill_tokens: int | None = None) -> EngineConfig:
    """The config of a pdmux engine switched to another planner policy, split, gang or prefill
    batch; refuses what the running engine cannot do (another mode, a split it has no partition for)."""
    if config.mode != "pdmux":
        raise PdtuneError(f"a pdmux plan needs an engine in pdmux mode; this one runs {config.mode!r}")
    if split is not None and tuple(split) not in config.pdmux_splits:
        raise PdtuneError(f"split {tuple(split)} is not one of the engine's partitions {list(config.pdmux_splits)}")
    if (gang is not None and gang < 1) or (prefill_tokens is not None and prefill_tokens < 1):
        raise PdtuneError("the gang and the prefill tokens must be at least 1")
    return dataclasses.replace(config, pdmux_policy=policy, pdmux_static_split=tuple(split) if split else None,
                               pdmux_gang=gang, pdmux_prefill_tokens=prefill_tokens or config.pdmux_prefill_tokens)


# The settings the pdmux stepper and planner read every step: an engine switches them in place.
PLANNER_FIELDS = ("pdmux_policy", "pdmux_static_split", "pdmux_gang", "pdmux_prefill_tokens", "dispatch",
                  "pdmux_admission", "pdmux_prefill_jump", "pdmux_decode_target", "pdmux_spare_decode_target",
                  "pdmux_spare_slack_share", "pdmux_spare_none_lost", "pdmux_decode_budget", "pdmux_prefill_alone",
                  "pdmux_prefill_behind", "pdmux_jump_batch")


def switches_plan_to(built: EngineConfig, wanted: EngineConfig) -> bool:
    """Whether an engine built for `built` becomes one for `wanted` by `Engine.switch_planner`:
    both pdmux on one GPU (tensor-parallel ranks and replicas plan on their own), differing in
    `PLANNER_FIELDS` alone."""
    if built.mode != "pdmux" or wanted.mode != "pdmux" or built.tensor_parallel_size > 1 or built.data_parallel_size > 1:
        return False
    return dataclasses.replace(wanted, **{f: getattr(built, f) for f in PLANNER_FIELDS}) == built


class Engine:
    """With `simulate`, the engine runs on a virtual GPU (`pdtune.executor.virtual_gpu`): no weights,
    each step taking the time `config.perf_model` predicts, on a virtual clock (`self.clock`)."""

    def __init__(self, config: EngineConfig, simulate: bool = False):
        started = time.perf_counter()
        self.virtual_gpu: VirtualGPU | None = None
        if simulate:
            config, self.loaded, self.virtual_gpu = load_virtual(config)
        self.config = config = resolve_block_size(config)
        self.tp_workers = TPWorkers(config, config.tensor_parallel_size) if config.tensor_parallel_size > 1 else None
        tp = self.tp_workers.group if self.tp_workers else None
        try:
            if not simulate:
                self.loaded = load_model(config, tp)
            self.tokenizer = self.loaded.tokenizer
            self.max_model_len = _max_model_len(config, self.loaded.arch)
            # The pdmux planner's and the data-parallel dispatcher's priors are bytes and FLOPs over
            # this GPU's measured rates (measured before the KV pool takes the memory); without a
            # GPU they model the H100 (the simulated executor's 132 SMs).
            self.ceilings = measure_ceilings(self.loaded.device, self.loaded.dtype, copy_mib=512) \
                if self.loaded.device.type == "cuda" else None
            self.num_kv_blocks = size_kv_pool(self.loaded, config,
                                              self.virtual_gpu.free_memory() if self.virtual_gpu else None)
        except BaseException:
            if self.tp_workers:
                self.tp_workers.abort()
            raise
        if self.tp_workers:
            self.tp_workers.start_runners(self.num_kv_blocks, self.max_model_len)
        self.clock = self.virtual_gpu.clock if self.virtual_gpu else HOST_CLOCK
        if self.virtual_gpu:
            self.runner = VirtualRunner(self.virtual_gpu, self.virtual_gpu.partitions(config.pdmux_splits))
        else:
            self.runner = ModelRunner(self.loaded, config, self.num_kv_blocks, self.max_model_len, tp)
        self.block_manager = BlockManager(self.num_kv_blocks, config.block_size, config.enable_prefix_caching)
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_num_batched_tokens,
                                   self.max_model_len)
        self.stepper = self._make_stepper()
        self.num_steps = 0
        self.startup_s = time.perf_counter() - started  # weights, kernel warm-up, graph captures

    def _make_stepper(self):
        config, runner, virtual = self.config, self.runner, self.virtual_gpu
        if config.mode != "pdmux":
            return SyncStepper(config, self.scheduler, runner)
        if virtual:
            executor = VirtualPdmuxExecutor(virtual, runner, virtual.partitions(config.pdmux_splits),
                                            virtual.arch.num_layers)
            total_sms, gpu = virtual.total_sms, virtual.name
        else:
            executor, total_sms = make_pdmux_executor(runner, config, self.max_model_len)
            gpu = torch.cuda.get_device_properties(runner.device).name if runner.device.type == "cuda" else None
        partitions = executor.partitions
        perf_model = None if config.perf_model is None else read_perf_model(
            config.perf_model, self.loaded.name, str(self.loaded.dtype), partitions, config.tensor_parallel_size, gpu,
            config.block_size)
        rates = {} if self.ceilings is None else dict(copy_bytes_per_s=self.ceilings.copy_bytes_per_s,
                                                      matmul_flops_per_s=self.ceilings.matmul_flops_per_s)
        predictor = StepTimePredictor(self.loaded.arch, self.loaded.dtype.itemsize, total_sms, perf_model=perf_model,
                                      **rates)
        planner = PdmuxPlanner(config, partitions, predictor, self.clock)
        return PdmuxStepper(config, self.scheduler, runner, executor, planner, self.clock)

    def set_pdmux_plan(self, policy: str, split: tuple[int, int] | None = None, gang: int | None = None,
                       prefill_tokens: int | None = None) -> None:
        """Switches the pdmux planner in place (policy, and for "static" its split and gang; the
        prefill batch size), so a search tries many plans on one engine: building an 8B engine
        with its CUDA graphs takes ~40 s on the GPU."""
        self.switch_planner(pdmux_plan_config(self.config, policy, split, gang, prefill_tokens))

    def switch_planner(self, wanted: EngineConfig) -> None:
        """Takes `wanted`'s `PLANNER_FIELDS`, which the pdmux stepper and planner read every step;
        the rest of the engine (model, partitions, graphs, KV pool) stays as built."""
        config = dataclasses.replace(self.config, **{f: getattr(wanted, f) for f in PLANNER_FIELDS})
        self.config = self.stepper.config = self.stepper.planner.config = config

    def tag_trace(self, **tags) -> None:
        """Tags the pdmux trace's rows from here on (a tag set to None is dropped): runs that
        share one engine, and so its `--trace` file, stay apart in it. Other modes keep no trace."""
        planner = getattr(self.stepper, "planner", None)
        if planner is not None:
            planner.trace_tags = {k: v for k, v in {**planner.trace_tags, **tags}.items() if v is not None}

    def planner_inputs(self) -> dict | None:
        """What the pdmux planner predicts from (None in other modes): its settings (a mode's own,
        which a shared engine switches), the granted partitions, the source of each one's priors
        (profiled, interpolated, or none: roofline) and the measured rates the roofline priors
        use, so a result says which plan and model it ran under."""
        if self.config.mode != "pdmux":
            return None
        pred = self.stepper.planner.predictor
        return {"settings": {f: getattr(self.config, f) for f in PLANNER_FIELDS},
                "partitions": {p.name: pred.fit(p)[1] for p in self.stepper.executor.partitions},
                "perf_model": self.config.perf_model, "copy_bytes_per_s": pred.bw, "matmul_flops_per_s": pred.rate,
                "rates_measured": self.ceilings is not None}

    def close(self) -> None:
        """Stops the tensor-parallel worker processes, if any."""
        if self.tp_workers:
            self.tp_workers.close()
            self.tp_workers = None

    @property
    def model_name(self) -> str:
        return self.loaded.name

    @property
    def arch(self) -> ModelArch:
        return self.loaded.arch

    @property
    def matmul_flops_per_s(self) -> float | None:
        """The matmul rate of all the engine's GPUs: the one measured, times the tensor-parallel
        ranks that split every matmul; None off CUDA, where nothing is measured."""
        return None if self.ceilings is None else self.ceilings.matmul_flops_per_s * self.config.tensor_parallel_size

    @property
    def vocab_size(self) -> int:
        return self.loaded.arch.vocab_size

    @property
    def prefix_cache_hit_rate(self) -> float:
        return self.block_manager.hit_rate

    @property
    def num_preemptions(self) -> int:
        return self.scheduler.num_preemptions

    def reset_counters(self) -> None:
        """Empties the prefix cache, zeroes the counters and drops what the stepper learned
        online, so benchmark runs start alike."""
        self.block_manager.reset_prefix_cache()
        self.scheduler.num_preemptions = 0
        self.num_steps = 0
        self.stepper.forget_online_state()

    @property
    def kv_capacity_tokens(self) -> int:
        return self.num_kv_blocks * self.config.block_size

    def add_request(self, prompt_token_ids: list[int], params: SamplingParams, request_id: str | None = None,
                    arrival_time: float | None = None) -> Sequence:
        """Queues a request; raises InvalidRequestError when it can never be served."""
        seq = Sequence(list(prompt_token_ids), params)
        if request_id is not None:
            seq.request_id = request_id
        if arrival_time is not None:
            seq.arrival_time = arrival_time
        vocab = self.loaded.arch.vocab_size
        ids = seq.prompt_token_ids  # min and max, not a generator: a 1k-token prompt in ~18 us, not ~33
        if ids and (min(ids) < 0 or max(ids) >= vocab):
            raise InvalidRequestError(f"prompt token ids must be in [0, {vocab})")
        self.scheduler.add(seq)
        return seq

    def has_unfinished(self) -> bool:
        """Requests not finished, or an overlapped step still on the GPU (its tokens, for
        requests that ended meanwhile, are dropped when it is read back)."""
        return self.scheduler.has_unfinished() or self.stepper.in_flight is not None

    def step(self) -> list[RequestOutput]:
        """Runs one step; returns the requests that finished in it."""
        results = self.stepper.step()
        now = self.clock.now()
        finished = []
        for chunk, token, logprobs in results:
            seq = chunk.seq
            seq.token_ids.append(token)
            seq.token_times.append(now)
            if logprobs is not None:
                seq.logprobs.append(logprobs)
            reason = self._finish_reason(seq, token)
            if reason is not None:
                self.scheduler.finish(seq, reason)
                finished.append(RequestOutput.from_sequence(seq))
        self.num_steps += 1
        return finished

    def abort_waiting(self) -> list[RequestOutput]:
        """Drops the requests still queued (a benchmark probe that stops early); running ones go on."""
        return [RequestOutput.from_sequence(seq) for seq in self.scheduler.abort_waiting()]

    def _finish_reason(self, seq: Sequence, token: int) -> str | None:
        p = seq.params
        if (not p.ignore_eos and token in self.tokenizer.eos_token_ids) or token in p.stop_token_ids:
            seq.output_text = self.tokenizer.decode(seq.output_token_ids)
            return "stop"
        if p.stop and self._tail_has_stop(seq, p.stop):
            text = self.tokenizer.decode(seq.output_token_ids)
            cut = min((i for i in (text.find(s) for s in p.stop) if i >= 0), default=-1)
            if cut >= 0:
                seq.output_text = text[:cut]
                return "stop"
        if seq.num_output_tokens >= p.max_tokens or len(seq.token_ids) >= self.max_model_len:
            seq.output_text = self.tokenizer.decode(seq.output_token_ids)
            return "length"
        return None

    def _tail_has_stop(self, seq: Sequence, stops: tuple[str, ...]) -> bool:
        """Whether a stop string shows in the text of the last tokens: a new occurrence ends
        with the newest token, and a character takes at most 4 byte-level tokens, so the tail
        covers it with a margin for the tail's own first characters. Decoding only the tail
        keeps the check per token constant; decoding the whole output made it grow with it."""
        tail = 4 * max(len(s) for s in stops) + 8
        text = self.tokenizer.decode(seq.output_token_ids[-tail:])
        return any(s in text for s in stops)


def make_engine(config: EngineConfig, simulate: bool = False):
    """One engine, or data-parallel replicas behind the same interface; with `simulate`, one on a
    virtual GPU."""
    if simulate:
        return Engine(config, simulate=True)
    if config.data_parallel_size > 1:
        from pdtune.executor.data_parallel import DataParallelEngine

        return DataParallelEngine(config)
    return Engine(config)
