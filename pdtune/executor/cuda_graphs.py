"""Decode steps replayed from CUDA graphs, one per batch-size bucket, captured on a given stream.

A graph stays on the SMs of the stream it was captured on, so the multiplexed mode captures one
set per SM partition; this class takes the stream as an argument for that reason.
"""

from __future__ import annotations

import torch

from pdtune.model.attention import AttentionMetadata, table_width
from pdtune.model.llama import LlamaForCausalLM


def batch_buckets(max_batch: int) -> list[int]:
    sizes = [1, 2, 4, 8] + list(range(16, 64, 8)) + list(range(64, 256, 16)) + list(range(256, max_batch + 32, 32))
    return sorted({s for s in sizes if s < max_batch} | {max_batch})


class DecodeGraphs:
    """Static input buffers + one graph per bucket; a step pads its batch to the next bucket.

    Padded rows write no KV (slot -1) and attend to one token of block 0, so they stay finite.
    """

    def __init__(self, model: LlamaForCausalLM, max_batch: int, max_blocks_per_seq: int,
                 stream: torch.cuda.Stream | None = None, pool=None):
        self.model = model
        device = model.embed_tokens.weight.device
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
