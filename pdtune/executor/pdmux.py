"""PD-multiplexed launches: one decode step and a block of prefill layers on the two streams of a
partition, ordered by CUDA events only (no device-wide synchronisation). Under tensor parallelism
rank 0 sends each step's launches to the other ranks, which repeat them on their own partitions,
the decode step's collectives on the decode communicator and the prefill block's on the prefill one."""

from __future__ import annotations

import time
import weakref
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from pdtune.config import EngineConfig
from pdtune.executor.cuda_graphs import DecodeGraphs, PiecewiseGraphs
from pdtune.executor.model_runner import LaunchedStep, ModelRunner, StepInputs
from pdtune.executor.partitions import Partition, make_partitions, simulated_partitions
from pdtune.executor.tensor_parallel import broadcast_step
from pdtune.model.attention import AttentionMetadata, table_width
from pdtune.perf.model_costs import PrefillShape
from pdtune.scheduler.scheduler import StepPlan


# Prefill blocks of more rows launch eagerly: the 8B model's 2048-token prefill keeps the whole GPU
# busy for 47.6 ms against 29.3 ms to launch it (results/h200/eager-host), so from there on the
# GPU, not the host, bounds a block; and each bucket costs a graph per layer on every prefill stream.
PIECE_ROWS_MAX = 2048


class DoneEvent:
    """The simulated executor's event (CPU): work launched on no stream has already run."""

    def query(self) -> bool:
        return True

    def synchronize(self) -> None:
        pass


def _record(stream: torch.cuda.Stream | None):
    if stream is None:
        return DoneEvent()
    event = torch.cuda.Event(enable_timing=True)
    event.record(stream)
    return event


def _on(stream: torch.cuda.Stream | None):
    return nullcontext() if stream is None else torch.cuda.stream(stream)


@dataclass
class PrefillBlock:
    """One launched block of prefill layers, timed by its own events: several can be in flight
    on the prefill stream, and the planner learns from each."""

    start: object
    done: object
    started_at: float  # host clock at launch
    ended_at: float  # host clock after the launch: the block's end when it ran on no stream (CPU)

    def ms(self) -> float | None:
        """The block's measured time once it has finished (polled, never waited on)."""
        if not self.done.query():
            return None
        if isinstance(self.done, DoneEvent):
            return (self.ended_at - self.started_at) * 1e3
        return self.start.elapsed_time(self.done)


@dataclass
class PrefillJob:
    """A prefill batch moving through the layers over several steps; hidden state and residual
    are carried between steps."""

    plan: StepPlan
    inputs: StepInputs
    num_layers: int
    shape: PrefillShape = PrefillShape()  # its cost terms, for the planner
    id: int = 0  # names it to tensor-parallel workers while another job waits behind it
    next_layer: int = 0
    hidden: torch.Tensor | None = None
    residual: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    meta: object = None
    logits: torch.Tensor | None = None
    stream: torch.cuda.Stream | None = None
    in_pieces: bool = False  # its layers replay the executor's graph pieces; its state lives in their buffers
    done: object = None  # event after the last launched block
    prev_done: object = None  # event after the block launched before it
    last_block: PrefillBlock | None = None

    @property
    def remaining_layers(self) -> int:
        return self.num_layers - self.next_layer

    @property
    def queue_full(self) -> bool:
        """A block is still queued behind the running one (polled): launching another would let
        the prefill stream run ahead of the planner, on SMs it may have given to decode since."""
        return self.prev_done is not None and not self.prev_done.query()

    @property
    def finished(self) -> bool:
        """All layers launched and the last block done (polled, never waited on)."""
        return self.remaining_layers == 0 and self.done.query()


@dataclass
class PdmuxStep:
    """One step's launches as rank 0 made them, for the other tensor-parallel ranks: partitions
    by index, a new prefill job's inputs with its first block, host tensors only."""

    decode_partition: int | None
    decode_inputs: StepInputs | None
    prefill_partition: int | None
    prefill_job: int
    prefill_inputs: StepInputs | None
    prefill_layers: int


@dataclass
class DecodeLaunch:
    logits: torch.Tensor
    start: object
    end: object
    started_at: float
    ended_at: float  # host clock after the launch: the step's end when it ran on no stream (CPU)
    simulated: bool
    step: LaunchedStep | None = None  # overlapped: its plan, inputs and the tokens sampled on its stream


class PdmuxExecutor:
    def __init__(self, runner: ModelRunner, partitions: list[Partition], graph_batch: int, max_blocks_per_seq: int,
                 use_graphs: bool, piece_rows: int = 0):
        self.runner = runner
        self.model = runner.model
        self.partitions = partitions
        self.graphs: dict[str, DecodeGraphs] = {}
        self.num_jobs = 0
        if runner.device.type == "cuda":
            self.prepare_prefill_pools(runner.padded_rows(runner.padded_rows_max))
        if use_graphs:
            pool = torch.cuda.graph_pool_handle()
            for p in partitions:
                if p.decode_stream is not None:  # one set per decode partition: a graph keeps its SMs
                    self.graphs[p.name] = DecodeGraphs(self.model, graph_batch, max_blocks_per_seq, p.decode_stream, pool,
                                                       tune_gemms=runner.tune_decode_gemms)
        # Prefill blocks of up to `piece_rows` rows replay graph pieces captured on each prefill
        # stream, in a pool of their own: they run while a decode graph does.
        self.pieces: PiecewiseGraphs | None = None
        if use_graphs and piece_rows and runner.tp is None:  # collectives are not captured
            streams = tuple(p.prefill_stream for p in partitions if p.prefill_sms)
            self.pieces = PiecewiseGraphs(self.model, runner.row_buckets(piece_rows), streams=streams)
        self._piece_owner = None  # weak reference to the job whose state is in the pieces' buffers
        self._pieces_done = None  # event after the last block that used them

    @torch.inference_mode()
    def prepare_prefill_pools(self, rows: int) -> None:
        """torch's allocator caches blocks per stream and each partition prefills on its own
        stream, so a first timed run grew those pools mid-run (41-81 new segments on the H200,
        none in the runs after: session 8). Two layers of a `rows`-token prefill batch on each
        prefill stream, writing no KV (slot -1), grow them at start-up instead; the memory plan
        (`activation_bytes`) holds room for them."""
        dev = self.runner.device
        layers = min(2, len(self.model.layers))
        for part in self.partitions:
            if not part.prefill_sms:
                continue
            with _on(part.prefill_stream), self._phase("prefill"):
                i32 = torch.int32
                meta = AttentionMetadata(torch.full((rows,), -1, dtype=torch.int64, device=dev), rows,
                                         torch.tensor([0, rows], dtype=i32, device=dev),
                                         torch.tensor([rows], dtype=i32, device=dev),
                                         torch.zeros(1, table_width(1), dtype=i32, device=dev), None, None,
                                         fresh_prefill_lens=[rows])
                positions = torch.zeros(rows, dtype=torch.int64, device=dev)
                hidden = self.model.embed(torch.zeros(rows, dtype=torch.int64, device=dev))
                self.model.forward_layers(hidden, None, positions, meta, 0, layers)
            if part.prefill_stream is not None:
                part.prefill_stream.synchronize()

    def _phase(self, name: str):
        tp = self.runner.tp
        return nullcontext() if tp is None else tp.phase(name)

    def start_prefill(self, plan: StepPlan) -> PrefillJob:
        self.num_jobs += 1
        return PrefillJob(plan, self.runner.prepare(plan), len(self.model.layers), PrefillShape.of_chunks(plan.chunks),
                          self.num_jobs)

    def _claim_pieces(self, job: PrefillJob, stream: torch.cuda.Stream | None) -> bool:
        """Whether the job's layers can replay the graph pieces, which it then holds until its last
        layer: they have its row count on this stream, and no job holds them with layers still to
        run (a job dropped unfinished, a timing probe, holds nothing). Its first block waits on
        the GPU for the last block that used them."""
        owner = self._piece_owner() if self._piece_owner is not None else None
        if self.pieces is None or (owner is not None and owner.remaining_layers) or not self.pieces.fits(
                len(job.inputs.input_ids), stream):
            return False
        if self._pieces_done is not None and stream is not None:
            stream.wait_event(self._pieces_done)
        self._piece_owner = weakref.ref(job)
        return True

    @torch.inference_mode()
    def launch_prefill(self, job: PrefillJob, partition: Partition, num_layers: int) -> PrefillBlock:
        """Launches the next `num_layers` layers (embedding before the first, logits after the last)."""
        stream = partition.prefill_stream
        with _on(stream), self._phase("prefill"):
            if job.next_layer == 0:
                ids, job.positions, job.meta = self.runner.to_device(job.inputs)
                job.in_pieces = self._claim_pieces(job, stream)
                if job.in_pieces:
                    self.pieces.begin(ids, job.positions, job.meta, stream)
                else:
                    job.hidden = self.model.embed(ids)
            elif stream is not job.stream and stream is not None:
                stream.wait_event(job.done)  # the previous block ran on another partition's stream
                for t in (job.hidden, job.residual, job.positions, *vars(job.meta).values()):
                    if isinstance(t, torch.Tensor):
                        t.record_stream(stream)
            start, started_at = _record(stream), time.perf_counter()
            end = min(job.next_layer + num_layers, job.num_layers)
            if job.in_pieces:
                self.pieces.layers(job.meta, job.next_layer, end, stream)
                if end == job.num_layers:
                    job.logits = self.runner.logits_at(self.pieces.hidden[:self.pieces.rows], job.inputs)
            else:
                job.hidden, job.residual = self.model.forward_layers(job.hidden, job.residual, job.positions,
                                                                     job.meta, job.next_layer, end)
                if end == job.num_layers:
                    job.logits = self.runner.logits_at(self.model.norm(job.hidden, job.residual)[0], job.inputs)
                    job.hidden = job.residual = None
            job.next_layer, job.stream = end, stream
            job.prev_done, job.done = job.done, _record(stream)
            job.last_block = PrefillBlock(start, job.done, started_at, time.perf_counter())
            if job.in_pieces:
                self._pieces_done = job.done
        return job.last_block

    @torch.inference_mode()
    def launch_decode(self, partition: Partition, inputs: StepInputs, previous: DecodeLaunch | None = None,
                      plan: StepPlan | None = None) -> DecodeLaunch:
        """Enqueues one decode step on the partition's decode SMs without waiting for it, so the
        host can launch the prefill block while the GPU decodes. Overlapped (`plan` given), it
        also samples on that stream, and starts on the GPU once `previous` (a decode step still
        in flight, maybe on another partition) is done, taking its sampled tokens as inputs: no
        host wait comes between the two."""
        stream = partition.decode_stream
        graphs = self.graphs.get(partition.name)
        started = time.perf_counter()
        with _on(stream), self._phase("decode"):
            if previous is not None and stream is not None:
                stream.wait_event(previous.end)
                previous.step.sampled.tokens.record_stream(stream)  # read here, made on another stream
            start = _record(stream)
            input_ids = None if previous is None else self.runner.input_ids_after(inputs, previous.step)
            logits = self.runner.decode_logits(inputs, graphs, input_ids)
            step = None
            if plan is not None:
                step = LaunchedStep(plan, inputs, self.runner.sampler.sample(logits, [c.seq for c in inputs.sampled_chunks]))
            end = _record(stream)
        return DecodeLaunch(logits, start, end, started, time.perf_counter(), stream is None, step)

    def launch_step(self, decode: tuple[Partition, StepInputs] | None, job: PrefillJob | None,
                    prefill_partition: Partition | None, prefill_layers: int, previous: DecodeLaunch | None = None,
                    plan: StepPlan | None = None) -> DecodeLaunch | None:
        """Enqueues the step's decode (overlapped after `previous`, with its `plan`: see
        `launch_decode`), then `prefill_layers` layers of `job` (none: 0 or no job), so the host
        launches the prefill block while the GPU decodes. Rank 0 of a tensor-parallel group
        first tells the other ranks to launch the same."""
        block = job is not None and prefill_layers > 0
        tp = self.runner.tp
        if tp is not None and tp.rank == 0:
            index = self.partitions.index
            broadcast_step(PdmuxStep(
                index(decode[0]) if decode else None, decode[1].for_workers() if decode else None,
                index(prefill_partition) if block else None, job.id if block else 0,
                job.inputs.for_workers() if block and job.next_layer == 0 else None, prefill_layers if block else 0))
        launch = self.launch_decode(*decode, previous, plan) if decode else None
        if block:
            self.launch_prefill(job, prefill_partition, prefill_layers)
        return launch

    def finish_decode(self, launch: DecodeLaunch) -> tuple[torch.Tensor, float]:
        """Waits for the decode step (the one wait of a step: its tokens are needed on the host);
        returns its logits and measured ms."""
        if launch.simulated:
            return launch.logits, (launch.ended_at - launch.started_at) * 1e3
        torch.cuda.current_stream().wait_event(launch.end)
        launch.end.synchronize()
        return launch.logits, launch.start.elapsed_time(launch.end)


def pdmux_piece_rows(config: EngineConfig) -> int:
    """The rows of pdmux's largest prefill graph piece; 0 when prefill blocks run eagerly."""
    return min(config.max_num_batched_tokens, PIECE_ROWS_MAX) if config.pdmux_prefill_graphs else 0


def make_pdmux_executor(runner: ModelRunner, config: EngineConfig, max_model_len: int) -> tuple[PdmuxExecutor, int]:
    """The executor over green-context partitions of this process's GPU, or over simulated ones
    on a CPU (same launch code, no streams), and the GPU's SM count (132, simulated)."""
    if runner.device.type == "cuda":
        torch.cuda.empty_cache()  # the start-up passes' blocks, cached for the default stream, which pdmux leaves idle
        partitions = make_partitions(config.pdmux_splits)
        total_sms = torch.cuda.get_device_properties(runner.device).multi_processor_count
    else:
        partitions, total_sms = simulated_partitions(config.pdmux_splits), 132
    executor = PdmuxExecutor(runner, partitions, config.max_num_seqs, -(-max_model_len // config.block_size),
                             use_graphs=runner.device.type == "cuda" and not config.enforce_eager,
                             piece_rows=pdmux_piece_rows(config))
    return executor, total_sms


class PdmuxMirror:
    """A tensor-parallel worker's pdmux executor: repeats rank 0's launches in rank 0's order, so
    every collective meets its peers; the tokens are rank 0's to sample."""

    def __init__(self, runner: ModelRunner, config: EngineConfig, max_model_len: int):
        self.executor, _ = make_pdmux_executor(runner, config, max_model_len)
        self.jobs: dict[int, PrefillJob] = {}  # by rank 0's job id

    def run(self, step: PdmuxStep) -> None:
        ex = self.executor
        if step.prefill_inputs is not None:
            self.jobs[step.prefill_job] = PrefillJob(StepPlan(), step.prefill_inputs, len(ex.model.layers))
        decode = None
        if step.decode_partition is not None:
            decode = (ex.partitions[step.decode_partition], step.decode_inputs)
        prefill = ex.partitions[step.prefill_partition] if step.prefill_partition is not None else None
        job = self.jobs.get(step.prefill_job) if prefill is not None else None
        launch = ex.launch_step(decode, job, prefill, step.prefill_layers)
        if job is not None and job.remaining_layers == 0:
            del self.jobs[step.prefill_job]
        if launch is not None:
            ex.finish_decode(launch)
