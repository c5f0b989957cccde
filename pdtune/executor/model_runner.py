"""Runs one step: lays out the scheduled chunks as a flat batch, calls the model, samples."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from pdtune.config import EngineConfig
from pdtune.executor.cuda_graphs import DecodeGraphs, PiecewiseGraphs
from pdtune.executor.tensor_parallel import TPGroup, broadcast_step
from pdtune.executor.upload import upload
from pdtune.model.attention import AttentionMetadata, length_bucket, table_width
from pdtune.model.loader import LoadedModel
from pdtune.request.sequence import Sequence, TokenLogprobs
from pdtune.sampler import SampledTokens, Sampler
from pdtune.scheduler.scheduler import ScheduledChunk, StepPlan


@dataclass
class StepInputs:
    chunks: list[ScheduledChunk]  # prefill rows (more than one new token) first, then single-token rows
    input_ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    logits_rows: torch.Tensor  # row of each completing chunk's last token
    sampled_chunks: list[ScheduledChunk]
    # (row, sequence) of each input token still on the GPU, sampled by the step in flight
    pending_rows: list[tuple[int, Sequence]] = dataclasses.field(default_factory=list)
    num_logits: int = 0  # the real rows of `logits_rows`, which may be padded to a bucket

    def for_workers(self) -> StepInputs:
        """The tensors alone, as tensor-parallel workers receive them (no sequences to pickle)."""
        return dataclasses.replace(self, chunks=[], sampled_chunks=[], pending_rows=[])


@dataclass
class LaunchedStep:
    """A step running on the GPU: its plan, and its sampled tokens not yet read back."""

    plan: StepPlan
    inputs: StepInputs
    sampled: SampledTokens | None

    def __post_init__(self) -> None:
        self._rows = {id(c.seq): i for i, c in enumerate(self.inputs.sampled_chunks)}

    def row_of(self, seq: Sequence) -> int:
        return self._rows[id(seq)]


def _block_tables(chunks: list[ScheduledChunk]) -> torch.Tensor:
    """The chunks' block tables, zero-padded to the longest (to `table_width`)."""
    width = table_width(max(len(c.seq.block_table) for c in chunks))
    table = np.zeros((len(chunks), width), dtype=np.int32)
    for row, chunk in zip(table, chunks):
        ids = chunk.seq.block_table.array
        row[:len(ids)] = ids
    return torch.from_numpy(table)


def kv_bytes_per_block(loaded: LoadedModel, block_size: int) -> int:
    a = loaded.arch if loaded.model is None else loaded.model.local_arch  # None: a virtual GPU's, unsharded
    return 2 * a.num_layers * block_size * a.num_kv_heads * a.head_dim * loaded.dtype.itemsize


class ModelRunner:
    def __init__(self, loaded: LoadedModel, config: EngineConfig, num_kv_blocks: int, max_model_len: int,
                 tp: TPGroup | None = None):
        self.model = loaded.model
        self.device = loaded.device
        self.block_size = config.block_size
        self.sampler = Sampler(self.device, config.seed)
        self.tp = tp
        self.tune_decode_gemms = config.tune_decode_gemms
        a = loaded.model.local_arch
        self.kv_cache = torch.zeros(2, a.num_layers, num_kv_blocks, config.block_size, a.num_kv_heads, a.head_dim,
                                    dtype=loaded.dtype, device=self.device)
        for i, layer in enumerate(self.model.layers):
            layer.self_attn.attn.k_cache = self.kv_cache[0, i]
            layer.self_attn.attn.v_cache = self.kv_cache[1, i]
            layer.self_attn.attn.bucket_prompts = self.device.type == "cuda"
        # Eager steps run padded to `length_bucket` rows up to this many tokens (on GPUs): a step
        # longer than the budget is a whole prompt of a non-chunked mode, rare enough to run as it is.
        self.pad_steps = self.device.type == "cuda"
        self.padded_rows_max = max(config.max_num_batched_tokens, config.pdmux_prefill_tokens if config.mode == "pdmux" else 0)
        if self.device.type == "cuda":
            self.model.layers[0].self_attn.attn.prepare_kernels(max_model_len)
            self.prepare_matmuls(self.padded_rows_max, config.max_num_seqs)
        self.graphs: DecodeGraphs | None = None  # pdmux captures its own, one set per partition
        self.piecewise: PiecewiseGraphs | None = None  # pdmux's executor keeps its own, per prefill stream
        if self.device.type == "cuda" and not config.enforce_eager and config.mode != "pdmux":
            self.graphs = DecodeGraphs(self.model, config.max_num_seqs, -(-max_model_len // config.block_size),
                                       tune_gemms=config.tune_decode_gemms)
            if tp is None:  # collectives are not captured
                self.piecewise = PiecewiseGraphs(self.model, self.row_buckets(self.padded_rows_max), self.graphs.pool)

    @staticmethod
    def row_buckets(max_rows: int) -> list[int]:
        """The row counts of padded steps up to `max_rows`."""
        return sorted({length_bucket(n) for n in range(1, max_rows + 1)})

    def padded_rows(self, n: int) -> int:
        return length_bucket(n) if self.pad_steps and 0 < n <= self.padded_rows_max else n

    @torch.inference_mode()
    def prepare_matmuls(self, max_rows: int, max_logits: int) -> int:
        """cuBLAS picks, and may first load, a kernel the first time it meets a row count: 0.3-5
        ms per projection on the H200 (results/h200/warmup/gemm-first-call), which, unpadded,
        lands inside most eager steps of a first run and not of a second. Steps run padded to
        `length_bucket` rows, so these are all their shapes: each bucket up to `max_rows` through
        one layer's projections, and each up to `max_logits` through the LM head. Returns the
        buckets prepared."""
        dev, weight = self.device, self.model.lm_head_weight
        buckets = self.row_buckets(max_rows)
        for rows in buckets:
            for proj in self.model.projections():
                proj(torch.zeros(rows, proj.in_features, device=dev, dtype=weight.dtype))
        for rows in self.row_buckets(max_logits):
            F.linear(torch.zeros(rows, weight.shape[1], device=dev, dtype=weight.dtype), weight)
        return len(buckets)

    def prepare(self, plan: StepPlan) -> StepInputs:
        """Builds the step's tensors on the host; `to_device` moves them in one go."""
        chunks = sorted(plan.chunks, key=lambda c: c.num_new_tokens == 1)  # stable: prefill rows first
        bs = self.block_size
        input_ids, positions, slots, logits_rows, sampled, pending = [], [], [], [], [], []
        for chunk in chunks:
            seq, start = chunk.seq, chunk.seq.num_computed_tokens
            end = start + chunk.num_new_tokens
            input_ids.extend(seq.token_ids[start:end])
            for _ in range(len(seq.token_ids), end):  # its last token is still on the GPU
                pending.append((len(input_ids), seq))
                input_ids.append(0)
            positions.extend(range(start, end))
            table = seq.block_table
            if end - start == 1:
                slots.append(table[start // bs] * bs + start % bs)
            else:
                pos = np.arange(start, end)
                slots.extend((table.array[pos // bs].astype(np.int64) * bs + pos % bs).tolist())
            if chunk.completes:
                logits_rows.append(len(input_ids) - 1)
                sampled.append(chunk)
        prefill = [c for c in chunks if c.num_new_tokens > 1]
        decode = chunks[len(prefill):]
        num_real, num_logits = len(input_ids), len(logits_rows)
        pad = self.padded_rows(num_real) - num_real if prefill else 0  # decode graphs pad their own batch
        input_ids.extend([0] * pad)
        positions.extend([0] * pad)
        slots.extend([-1] * pad)
        if prefill:
            logits_rows.extend([0] * (self.padded_rows(num_logits) - num_logits))
        cu = [0]
        for c in prefill:
            cu.append(cu[-1] + c.num_new_tokens)
        i32 = torch.int32
        meta = AttentionMetadata(
            slot_mapping=torch.tensor(slots, dtype=torch.int64),
            num_prefill_tokens=cu[-1],
            prefill_cu_seqlens_q=torch.tensor(cu, dtype=i32) if prefill else None,
            prefill_seq_lens=torch.tensor([c.seq.num_computed_tokens + c.num_new_tokens for c in prefill], dtype=i32)
            if prefill else None,
            prefill_block_tables=_block_tables(prefill) if prefill else None,
            decode_seq_lens=torch.tensor([c.seq.num_computed_tokens + 1 for c in decode], dtype=i32) if decode else None,
            decode_block_tables=_block_tables(decode) if decode else None,
            fresh_prefill_lens=[c.num_new_tokens for c in prefill]
            if prefill and all(c.seq.num_computed_tokens == 0 for c in prefill) else None,
            num_padding_tokens=pad,
        )
        return StepInputs(chunks, torch.tensor(input_ids, dtype=torch.int64), torch.tensor(positions, dtype=torch.int64),
                          meta, torch.tensor(logits_rows, dtype=torch.int64), sampled, pending, num_logits)

    def to_device(self, inputs: StepInputs) -> tuple[torch.Tensor, torch.Tensor, AttentionMetadata]:
        dev = self.device
        meta = AttentionMetadata(**{k: upload(v, dev) if isinstance(v, torch.Tensor) else v
                                    for k, v in vars(inputs.meta).items()})
        return upload(inputs.input_ids, dev), upload(inputs.positions, dev), meta

    def logits_at(self, hidden: torch.Tensor, inputs: StepInputs) -> torch.Tensor | None:
        """The logits of the step's sampled rows (None when none samples), computed at the
        padded row count of `logits_rows`."""
        if not inputs.num_logits:
            return None
        return self.model.compute_logits(hidden[upload(inputs.logits_rows, self.device)])[:inputs.num_logits]

    def _eager_logits(self, inputs: StepInputs, input_ids: torch.Tensor | None = None) -> torch.Tensor | None:
        """A step with prefill rows (or a decode step no graph holds): in graph pieces between
        eager attentions where its padded row count has them, else eagerly throughout."""
        ids, positions, meta = self.to_device(inputs)
        ids = ids if input_ids is None else input_ids
        if self.piecewise is not None and self.piecewise.fits(len(ids)):
            return self.logits_at(self.piecewise.run(ids, positions, meta), inputs)
        return self.logits_at(self.model(ids, positions, meta), inputs)

    def decode_logits(self, inputs: StepInputs, graphs: DecodeGraphs | None,
                      input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """A decode-only step: replayed from `graphs` when its batch fits a bucket, else eager.
        `input_ids` (on the device) replaces the host's when some tokens were patched in there."""
        if graphs is not None and graphs.bucket(len(inputs.input_ids)) is not None:
            ids, positions, m = self.to_device(inputs)
            return graphs.run(ids if input_ids is None else input_ids, positions, m.slot_mapping, m.decode_seq_lens,
                              m.decode_block_tables)
        return self._eager_logits(inputs, input_ids)

    def input_ids_after(self, inputs: StepInputs, previous: LaunchedStep | None) -> torch.Tensor | None:
        """The step's input ids on the device with the tokens that `previous` (still on the GPU)
        sampled copied in there; None when no input token is pending."""
        if not inputs.pending_rows:
            return None
        dev = self.device
        rows = upload(torch.tensor([r for r, _ in inputs.pending_rows]), dev)
        src = upload(torch.tensor([previous.row_of(seq) for _, seq in inputs.pending_rows]), dev)
        input_ids = upload(inputs.input_ids, dev)
        input_ids[rows] = previous.sampled.tokens[src]
        return input_ids

    @torch.inference_mode()
    def launch(self, plan: StepPlan, previous: LaunchedStep | None) -> LaunchedStep:
        """Runs a step without waiting for it (overlapped scheduling). Its input tokens that the
        step in flight (`previous`) sampled are copied from that step's device tensor."""
        inputs = self.prepare(plan)
        input_ids = self.input_ids_after(inputs, previous)
        if inputs.meta.num_prefill_tokens == 0:
            logits = self.decode_logits(inputs, self.graphs, input_ids)
        else:
            logits = self._eager_logits(inputs, input_ids)
        sampled = None if logits is None else self.sampler.sample(logits, [c.seq for c in inputs.sampled_chunks])
        return LaunchedStep(plan, inputs, sampled)

    def sample(self, inputs: StepInputs, logits: torch.Tensor | None) -> list[tuple[ScheduledChunk, int, TokenLogprobs | None]]:
        if logits is None:
            return []
        tokens, logprobs = self.sampler(logits, [c.seq for c in inputs.sampled_chunks])
        return list(zip(inputs.sampled_chunks, tokens, logprobs))

    @torch.inference_mode()
    def forward(self, inputs: StepInputs) -> torch.Tensor | None:
        """A tensor-parallel worker's part of a step, graph or eager as rank 0 runs it (rank 0
        samples from the gathered logits)."""
        if inputs.meta.num_prefill_tokens == 0:
            return self.decode_logits(inputs, self.graphs)
        return self._eager_logits(inputs)

    @torch.inference_mode()
    def run(self, plan: StepPlan) -> list[tuple[ScheduledChunk, int, TokenLogprobs | None]]:
        """Returns the sampled token (and logprobs) of every chunk that reached its sequence's end."""
        inputs = self.prepare(plan)
        if self.tp is not None:
            broadcast_step(inputs.for_workers())
        return self.sample(inputs, self.forward(inputs))
