"""Kernel tests run the Triton kernels on CPU tensors through Triton's interpreter."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the @triton.jit decorations

from collections.abc import Callable  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402


def _build_paged_kv(
    seq_lens: list[int], n_kv_heads: int, head_dim: int, block_size: int,
    dtype: torch.dtype = torch.float32, seed: int = 0,
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random per-sequence K/V scattered into shuffled cache blocks.

    Unused cache slots hold NaN and unused block-table entries -1, so a kernel that
    reads past a sequence's tokens or blocks shows up as NaN or a crash."""
    gen = torch.Generator().manual_seed(seed)
    keys = [torch.randn(n, n_kv_heads, head_dim, generator=gen).to(dtype) for n in seq_lens]
    values = [torch.randn(n, n_kv_heads, head_dim, generator=gen).to(dtype) for n in seq_lens]
    n_blocks = [-(-n // block_size) for n in seq_lens]
    total = sum(n_blocks) + 2
    perm = torch.randperm(total, generator=gen)
    shape = (total, block_size, n_kv_heads, head_dim)
    k_cache = torch.full(shape, float("nan"), dtype=dtype)
    v_cache = torch.full(shape, float("nan"), dtype=dtype)
    block_tables = torch.full((len(seq_lens), max(n_blocks) + 2), -1, dtype=torch.int32)
    used = 0
    for b, n in enumerate(seq_lens):
        blocks = perm[used : used + n_blocks[b]]
        used += n_blocks[b]
        block_tables[b, : n_blocks[b]] = blocks.int()
        pos = torch.arange(n)
        k_cache[blocks[pos // block_size], pos % block_size] = keys[b]
        v_cache[blocks[pos // block_size], pos % block_size] = values[b]
    return keys, values, k_cache, v_cache, block_tables


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def paged_kv() -> Callable[..., tuple]:
    """Factory: (seq_lens, n_kv_heads, head_dim, block_size, dtype=fp32, seed=0) ->
    (keys, values, k_cache, v_cache, block_tables)."""
    return _build_paged_kv


def dense_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Naive check: SDPA over contiguous K/V; q [L, Hq, D] are the last L of k's Lk tokens."""
    q_len, n_q_heads, _ = q.shape
    seq_len, n_kv_heads, _ = k.shape
    group = n_q_heads // n_kv_heads
    mask = torch.arange(seq_len)[None, :] <= torch.arange(seq_len - q_len, seq_len)[:, None]
    out = torch.nn.functional.scaled_dot_product_attention(
        q.double().transpose(0, 1), k.double().repeat_interleave(group, 1).transpose(0, 1),
        v.double().repeat_interleave(group, 1).transpose(0, 1), attn_mask=mask, scale=scale,
    )
    return out.transpose(0, 1)


@pytest.fixture
def dense_attention() -> Callable[..., torch.Tensor]:
    """The naive dense causal-with-offset attention (float64) the references are checked against."""
    return dense_causal_attention
