"""Paged attention over the shared KV pool; the step's layout comes in an explicit metadata object."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pdtune.model.ops import Ops


@dataclass
class AttentionMetadata:
    """Where one step's tokens go in the KV pool and what each query may see.

    Tokens are laid out prefill rows first (query chunks longer than one token), then
    single-token rows (decode), so each group runs its own kernel.
    """

    slot_mapping: torch.Tensor  # [T] slot of each new token, -1 for padding
    num_prefill_tokens: int
    prefill_cu_seqlens_q: torch.Tensor | None  # [P+1]
    prefill_seq_lens: torch.Tensor | None  # [P] keys visible to each prefill sequence
    prefill_block_tables: torch.Tensor | None  # [P, max_blocks]
    decode_seq_lens: torch.Tensor | None  # [D]
    decode_block_tables: torch.Tensor | None  # [D, max_blocks]
    # Query lengths of the prefill rows when none has a cached prefix (host ints, no device sync):
    # their keys are exactly this step's k/v, so a dense causal kernel can read them in place.
    fresh_prefill_lens: list[int] | None = None
    # The decode rows' attention work plan: made by the first layer, reused by the others.
    decode_plan: object | None = None
    # Rows after the decode rows that belong to no sequence (slot -1): the step runs padded to a
    # `length_bucket`; they attend to nothing and come out as zeros.
    num_padding_tokens: int = 0


def table_width(blocks: int) -> int:
    """Block tables are this wide for `blocks` blocks: a multiple of 16, so the kernels' row
    stride always has the same divisibility and Triton compiles one variant, not one for width 1,
    one for multiples of 16 and one for the rest (each a JIT compile that stalls a step mid-run)."""
    return -(-max(blocks, 1) // 16) * 16


def length_bucket(n: int) -> int:
    """The rows a variable-length operand runs at on a GPU: a multiple of 64, and of an eighth
    of its octave above 512 (8 buckets an octave, under 1/8 more rows). A fresh prompt's fused
    attention builds a plan per query length (cuDNN: 39-56 ms each on the H200) and cuBLAS picks,
    and may load, a kernel per row count (0.3-5 ms per projection), where a serving run meets a
    new length on most prompts and steps (results/h200/warmup/); buckets make them few enough to
    prepare at start-up."""
    granule = max(64, 1 << max(0, n.bit_length() - 4))
    return -(-n // granule) * granule


class PagedAttention(torch.nn.Module):
    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, ops: Ops):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.scale = head_dim**-0.5
        self.ops = ops
        self.k_cache: torch.Tensor | None = None  # [num_blocks, block_size, kv_heads, head_dim]
        self.v_cache: torch.Tensor | None = None
        self.bucket_prompts = False  # fresh prompts padded to `length_bucket` lengths (set on GPUs)

    def rotate_and_store(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor,
                         cos_sin: torch.Tensor, meta: AttentionMetadata) -> tuple[torch.Tensor, torch.Tensor]:
        """One kernel rotates q and k (returned) and writes k and v into the pool."""
        return self.ops.rotary_write_kv(q, k, v, positions, cos_sin, self.k_cache, self.v_cache, meta.slot_mapping)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Each group of rows attends (q and k rotated, k and v in the pool); padding rows give zeros."""
        num_prefill, pad = meta.num_prefill_tokens, meta.num_padding_tokens
        real = q.shape[0] - pad
        parts = []
        if num_prefill:
            parts.append(self._prefill(q[:num_prefill], k, v, meta))
        if real > num_prefill:
            parts.append(self._decode(q[num_prefill:real], meta))
        if pad:
            parts.append(q.new_zeros((pad, *q.shape[1:])))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor,
                cos_sin: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Attention of q, k, v before rotary."""
        q, k = self.rotate_and_store(q, k, v, positions, cos_sin, meta)
        return self.attend(q, k, v, meta)

    def _prefill(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        if meta.fresh_prefill_lens is not None:
            return self._fresh_prefill(q, k, v, meta.fresh_prefill_lens)
        return self.ops.prefill_attention(q, self.k_cache, self.v_cache, meta.prefill_block_tables,
                                          meta.prefill_cu_seqlens_q, meta.prefill_seq_lens, self.scale)

    def _fresh_prefill(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lens: list[int]) -> torch.Tensor:
        """Prompts with no cached prefix: torch's fused causal attention on the contiguous k/v of
        this step (cuDNN's kernel on an H100/H200 by torch's choice), one call per sequence. v arrives as a view of the
        fused qkv output (the KV write and the decode rows read it as it is); it is made
        contiguous here, for the fused kernel, and only here. On a GPU each prompt runs padded to
        its length bucket (`length_bucket`): its real rows are exact, since a causal row never
        sees a later key, and the rows past them (the next prompt's, or zeros) are finite."""
        padded = [length_bucket(n) for n in lens] if self.bucket_prompts else lens
        starts = [0]
        for n in lens[:-1]:
            starts.append(starts[-1] + n)
        overflow = max(st + p for st, p in zip(starts, padded)) - q.shape[0]
        if overflow > 0:
            q, k, v = (torch.cat([x, x.new_zeros((overflow, *x.shape[1:]))]) for x in (q, k, v))
        else:
            v = v.contiguous()
        out = torch.empty((sum(lens), *q.shape[1:]), dtype=q.dtype, device=q.device)
        for start, n, p in zip(starts, lens, padded):
            qs, ks, vs = (x[start:start + p].transpose(0, 1).unsqueeze(0) for x in (q, k, v))
            o = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=self.scale,
                                                                 enable_gqa=self.num_heads != self.num_kv_heads)
            out[start:start + n] = o.squeeze(0)[:, :n].transpose(0, 1)
        return out

    def prepare_kernels(self, max_len: int) -> int:
        """Start-up work that would otherwise stall a request mid-run: the fused prefill plan of
        every prompt bucket up to `max_len` (cuDNN builds one per length: 39-56 ms each on the
        H200) and, on the Triton path, the JIT compile of each tile variant of the paged prefill
        kernel. Every layer has the same shapes, so one layer prepares them all.
        Returns the prompt buckets built."""
        from pdtune.kernels import prefill_tile_variants

        heads, kv_heads, dim = self.num_heads, self.num_kv_heads, self.head_dim
        dev, dtype = self.k_cache.device, self.k_cache.dtype
        lengths = sorted({length_bucket(n) for n in range(1, max_len + 1)})
        for n in lengths:
            q = torch.zeros(n, heads, dim, device=dev, dtype=dtype)
            kv = torch.zeros(n, kv_heads, dim, device=dev, dtype=dtype)
            self._fresh_prefill(q, kv, kv, [n])
        if self.ops.backend == "triton":
            q = torch.zeros(2, heads, dim, device=dev, dtype=dtype)
            table = torch.zeros(1, table_width(1), dtype=torch.int32, device=dev)
            cu = torch.tensor([0, 2], dtype=torch.int32, device=dev)
            seen = torch.tensor([2], dtype=torch.int32, device=dev)
            for block_m, block_n in prefill_tile_variants(heads // kv_heads, dim):
                self.ops.prefill_attention(q, self.k_cache, self.v_cache, table, cu, seen, self.scale,
                                           block_m=block_m, block_n=block_n)
        return len(lengths)

    def _decode(self, q: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        if meta.decode_plan is None and self.ops.plan_decode is not None:
            meta.decode_plan = self.ops.plan_decode(meta.decode_seq_lens, self.num_kv_heads)
        return self.ops.decode_attention(q, self.k_cache, self.v_cache, meta.decode_block_tables,
                                         meta.decode_seq_lens, self.scale, meta.decode_plan)
