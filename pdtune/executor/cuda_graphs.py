"""Decode steps replayed from CUDA graphs, one per batch-size bucket, captured on a given stream.

A graph stays on the SMs of the stream it was captured on, so the multiplexed mode captures one
set per SM partition; this class takes the stream as an argument for that reason.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager

import torch

from pdtune.executor.gemm_libraries import pick_libraries, pinned_libraries, tunable
from pdtune.model.attention import AttentionMetadata, table_width
from pdtune.model.llama import LlamaForCausalLM


@contextmanager
def paused_gc():
    """No garbage collection while graphs are captured: a collection could destroy a dead
    engine's graph or event mid-capture, which CUDA forbids and which invalidates the capture
    (pytorch#161037; seen here as a cuBLAS launch failure in the next engine's decode capture).
    Dead cycles go first, so their memory is free for the graphs."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def batch_buckets(max_batch: int) -> list[int]:
    sizes = [1, 2, 4, 8] + list(range(16, 64, 8)) + list(range(64, 256, 16)) + list(range(256, max_batch + 32, 32))
    return sorted({s for s in sizes if s < max_batch} | {max_batch})


class DecodeGraphs:
    """Static input buffers + one graph per bucket; a step pads its batch to the next bucket.

    Padded rows write no KV (slot -1) and attend to one token of block 0, so they stay finite.
    With `tune_gemms`, each bucket's projections are captured with the BLAS library that runs
    them faster on this stream at that batch (`gemm_libraries`, the picks kept per bucket).
    """

    def __init__(self, model: LlamaForCausalLM, max_batch: int, max_blocks_per_seq: int,
                 stream: torch.cuda.Stream | None = None, pool=None, tune_gemms: bool = True):
        self.model = model
        device = model.embed_tokens.weight.device
        self.tune_gemms = tune_gemms and tunable(model.embed_tokens.weight)
        self.gemm_libraries: dict[int, dict[str, str]] = {}
        self.stream = stream or torch.cuda.Stream(device)
        self.pool = pool if pool is not None else torch.cuda.graph_pool_handle()
        self.buckets = batch_buckets(max_batch)
        self.input_ids = torch.zeros(max_batch, dtype=torch.int64, device=device)
        self.positions = torch.zeros(max_batch, dtype=torch.int64, device=device)
        self.slots = torch.full((max_batch,), -1, dtype=torch.int64, device=device)
        self.seq_lens = torch.ones(max_batch, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(max_batch, table_width(max_blocks_per_seq), dtype=torch.int32, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.logits: dict[int, torch.Tensor] = {}
        with paused_gc():
            for size in reversed(self.buckets):  # largest first: smaller graphs reuse its pool memory
                self._capture(size)

    def _meta(self, size: int) -> AttentionMetadata:
        return AttentionMetadata(self.slots[:size], 0, None, None, None, self.seq_lens[:size], self.block_tables[:size])

    def _forward(self, size: int) -> torch.Tensor:
        hidden = self.model(self.input_ids[:size], self.positions[:size], self._meta(size))
        return self.model.compute_logits(hidden)

    @torch.inference_mode()
    def _capture(self, size: int) -> None:
        self.stream.wait_stream(torch.cuda.current_stream())
        groups = self.model.projection_groups() if self.tune_gemms else {}
        picks = self.gemm_libraries[size] = pick_libraries(groups, size, self.stream) if groups else {}
        with pinned_libraries(groups, picks):
            with torch.cuda.stream(self.stream):
                self._forward(size)  # warm-up: Triton compiles and autotunes outside the capture
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                self.logits[size] = self._forward(size)
        self.graphs[size] = graph
        with torch.cuda.stream(self.stream):
            graph.replay()  # a graph's first launch uploads it to the device: here, not inside a served step
        self.stream.synchronize()

    def bucket(self, batch: int) -> int | None:
        return next((b for b in self.buckets if b >= batch), None)

    @torch.inference_mode()
    def run(self, input_ids: torch.Tensor, positions: torch.Tensor, slots: torch.Tensor, seq_lens: torch.Tensor,
            block_tables: torch.Tensor) -> torch.Tensor:
        """Logits [batch, vocab] of one decode step; the caller's tensors may live on the CPU."""
        n, width = block_tables.shape
        size = self.bucket(n)
        # After whatever the caller queued: the previous step's sampler still reading the logits
        # buffer (overlapped scheduling), or tokens it patched into `input_ids`.
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            self.input_ids[:n].copy_(input_ids, non_blocking=True)
            self.positions[:n].copy_(positions, non_blocking=True)
            self.slots[:n].copy_(slots, non_blocking=True)
            self.seq_lens[:n].copy_(seq_lens, non_blocking=True)
            self.block_tables[:n, :width].copy_(block_tables, non_blocking=True)
            self.slots[n:size].fill_(-1)
            self.seq_lens[n:size].fill_(1)
            self.graphs[size].replay()
        torch.cuda.current_stream().wait_stream(self.stream)
        return self.logits[size][:n]


class PiecewiseGraphs:
    """Steps with prefill rows (chunked's mixed steps, a prompt's prefill, pdmux's prefill blocks),
    replayed in pieces per token-count bucket: one graph from the embedding to layer 0's
    attention, one between each two attentions, one from the last to the final norm; the
    attention itself (whose kernels take the step's variable layout) runs eagerly between them.
    Launched eagerly, such a step is bound by the host: 25-35 ms to issue a step of 4.6-11 ms of
    kernels on the H200 (results/h200/eager-host).

    A set of graphs is captured on each of `streams` (None: a stream of its own), since a graph
    keeps the SMs of the stream it was captured on; pdmux passes each partition's prefill stream.
    All sets share the static buffers and the pool, so one step (or prefill batch) at a time may
    use them: between `begin` and its last layer the batch's state lives in the buffers.

    Steps arrive padded to a `length_bucket` (the engine's eager steps are), so a bucket's graphs
    run every row; rows past a step's own compute on stale, finite values and are not read.
    """

    def __init__(self, model: LlamaForCausalLM, buckets: list[int], pool=None,
                 streams: tuple[torch.cuda.Stream | None, ...] = (None,)):
        self.model = model
        w = model.embed_tokens.weight
        a, device, rows = model.local_arch, w.device, max(buckets)
        self.pool = pool if pool is not None else torch.cuda.graph_pool_handle()
        self.input_ids = torch.zeros(rows, dtype=torch.int64, device=device)
        self.positions = torch.zeros(rows, dtype=torch.int64, device=device)
        self.slots = torch.full((rows,), -1, dtype=torch.int64, device=device)
        self.q = torch.zeros(rows, a.num_heads, a.head_dim, dtype=w.dtype, device=device)
        self.k = torch.zeros(rows, a.num_kv_heads, a.head_dim, dtype=w.dtype, device=device)
        self.v = torch.zeros(rows, a.num_kv_heads, a.head_dim, dtype=w.dtype, device=device)
        self.residual = torch.zeros(rows, a.hidden_size, dtype=w.dtype, device=device)
        self.attn = torch.zeros(rows, a.num_heads, a.head_dim, dtype=w.dtype, device=device)
        self.hidden = torch.zeros(rows, a.hidden_size, dtype=w.dtype, device=device)
        # Per bucket, the rows its attentions read and write: sliced once here, not per layer per step.
        self.attention_rows = {n: (self.q[:n], self.k[:n], self.v[:n], self.attn[:n]) for n in buckets}
        self.rows = 0  # the batch in the buffers
        self.graphs: dict[tuple[torch.cuda.Stream | None, int], list[torch.cuda.CUDAGraph]] = {}
        with paused_gc():
            for stream in streams:
                capture_stream = stream if stream is not None or device.type != "cuda" else torch.cuda.Stream(device)
                for size in sorted(buckets, reverse=True):  # largest first: smaller graphs reuse its pool memory
                    self._capture(stream, capture_stream, size)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the warm-ups' blocks, cached for the capture streams alone

    def _piece(self, index: int, n: int) -> None:
        """Piece `index` of an n-row step: the work after layer index-1's attention (none for
        the first piece) up to layer `index`'s (the final norm for the last piece)."""
        layers = self.model.layers
        if index == 0:
            hidden, residual = self.model.embed(self.input_ids[:n]), None
        else:
            hidden, residual = layers[index - 1].after_attention(self.attn[:n], self.residual[:n])
        if index == len(layers):
            self.hidden[:n].copy_(self.model.norm(hidden, residual)[0])
            return
        qkv, residual = layers[index].attention_input(hidden, residual)
        meta = AttentionMetadata(self.slots[:n], 0, None, None, None, None, None)
        q, k, v = layers[index].self_attn.rotate_and_store(qkv, self.positions[:n], self.model.cos_sin, meta)
        self.q[:n].copy_(q)
        self.k[:n].copy_(k)
        self.v[:n].copy_(v)
        self.residual[:n].copy_(residual)

    @torch.inference_mode()
    def _capture(self, key: torch.cuda.Stream | None, stream: torch.cuda.Stream, size: int) -> None:
        stream.wait_stream(torch.cuda.current_stream())
        graphs = []
        with torch.cuda.stream(stream):
            for index in range(len(self.model.layers) + 1):
                self._piece(index, size)  # warm-up: Triton compiles outside the capture
        stream.synchronize()
        for index in range(len(self.model.layers) + 1):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, stream=stream):
                self._piece(index, size)
            graphs.append(graph)
        self.graphs[key, size] = graphs
        with torch.cuda.stream(stream):
            for graph in graphs:  # a graph's first launch uploads it: here, not inside a served step
                graph.replay()
        stream.synchronize()

    def fits(self, rows: int, stream: torch.cuda.Stream | None = None) -> bool:
        """Whether a step of `rows` (padded) rows has graphs captured on `stream`."""
        return (stream, rows) in self.graphs

    @torch.inference_mode()
    def run(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Final hidden states [rows, hidden] of a step whose row count is a captured bucket
        (`fits`); the tensors are on the device."""
        self.begin(input_ids, positions, meta)
        self.layers(meta, 0, len(self.model.layers))
        return self.hidden[:input_ids.shape[0]]

    def begin(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata,
              stream: torch.cuda.Stream | None = None) -> None:
        """Takes a batch into the buffers and runs its embedding and layer 0 up to the attention,
        on the current stream with the graphs of `stream`."""
        n = input_ids.shape[0]
        self.input_ids[:n].copy_(input_ids)
        self.positions[:n].copy_(positions)
        self.slots[:n].copy_(meta.slot_mapping)
        self.rows = n
        self._replay((stream, n), 0)

    def layers(self, meta: AttentionMetadata, start: int, end: int, stream: torch.cuda.Stream | None = None) -> None:
        """Layers [start, end) of the batch in the buffers: each one's attention, then the
        graph up to the next one's (the final norm after the last layer: `hidden[:rows]`)."""
        key = (stream, self.rows)
        q, k, v, attn = self.attention_rows[self.rows]
        for index in range(start, end):
            attn.copy_(self.model.layers[index].self_attn.attn.attend(q, k, v, meta))
            self._replay(key, index + 1)

    def _replay(self, key: tuple[torch.cuda.Stream | None, int], index: int) -> None:
        self.graphs[key][index].replay()
