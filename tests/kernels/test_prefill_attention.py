import os

import pytest
import torch
from pdtune.kernels import paged_prefill_attention, paged_prefill_attention_ref

# (chunk length, keys in cache) per sequence, cache blocks of 16: plain prefills ending
# at / just past block boundaries, prefix-cache hits and chunked-prefill chunks
# (keys > chunk), and single-token decode rows mixed in.
CHUNKS = [(16, 16), (17, 17), (1, 1), (5, 37), (1, 16), (20, 64), (33, 33), (1, 50)]


def _setup(paged_kv, chunks: list[tuple[int, int]], n_q_heads: int, n_kv_heads: int, head_dim: int,
           block_size: int, dtype: torch.dtype = torch.float32):
    seq_lens = [k for _, k in chunks]
    keys, values, k_cache, v_cache, block_tables = paged_kv(seq_lens, n_kv_heads, head_dim, block_size, dtype)
    q_lens = torch.tensor([q for q, _ in chunks])
    cu = torch.zeros(len(chunks) + 1, dtype=torch.int32)
    cu[1:] = q_lens.cumsum(0)
    q = torch.randn(int(cu[-1]), n_q_heads, head_dim).to(dtype)
    return q, keys, values, k_cache, v_cache, block_tables, cu, torch.tensor(seq_lens, dtype=torch.int32)


@pytest.mark.parametrize(("n_q_heads", "n_kv_heads"), [(2, 2), (6, 2), (8, 2)])
def test_ref_matches_dense_sdpa(paged_kv, dense_attention, n_q_heads: int, n_kv_heads: int) -> None:
    q, keys, values, k_cache, v_cache, bt, cu, lens = _setup(paged_kv, CHUNKS, n_q_heads, n_kv_heads, 32, 16)
    out = paged_prefill_attention_ref(q, k_cache, v_cache, bt, cu, lens, 0.3)
    for b in range(len(CHUNKS)):
        rows = slice(int(cu[b]), int(cu[b + 1]))
        dense = dense_attention(q[rows], keys[b], values[b], 0.3)
        torch.testing.assert_close(out[rows].double(), dense, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("n_q_heads", "n_kv_heads", "head_dim", "block_size", "block_m", "block_n"),
    [
        (2, 2, 64, 16, 16, 16),  # MHA, tiles = cache blocks
        (3, 1, 64, 16, 32, 32),  # GQA 3, KV tiles spanning two cache blocks
        (8, 2, 128, 32, 16, 16),  # GQA 4, two KV tiles per cache block
        (4, 2, 32, 16, None, None),  # heuristic tile sizes
    ],
)
def test_prefill_matches_ref(paged_kv, n_q_heads: int, n_kv_heads: int, head_dim: int, block_size: int,
                             block_m: int | None, block_n: int | None) -> None:
    q, _, _, k_cache, v_cache, bt, cu, lens = _setup(paged_kv, CHUNKS, n_q_heads, n_kv_heads, head_dim, block_size)
    scale = head_dim**-0.5
    out = paged_prefill_attention(q, k_cache, v_cache, bt, cu, lens, scale, block_m=block_m, block_n=block_n)
    assert out.shape == q.shape and out.dtype == q.dtype
    ref = paged_prefill_attention_ref(q, k_cache, v_cache, bt, cu, lens, scale)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)


def test_prefill_strided_q_and_empty_chunk(paged_kv) -> None:
    """q as a view of a fused qkv output; a sequence with no new tokens is skipped."""
    chunks = [(3, 20), (0, 8), (18, 18)]
    q, _, _, k_cache, v_cache, bt, cu, lens = _setup(paged_kv, chunks, 4, 2, 64, 16)
    qkv = torch.cat([q, torch.randn(q.shape[0], 4, 64)], dim=1)
    out = paged_prefill_attention(qkv[:, :4], k_cache, v_cache, bt, cu, lens, 0.125, block_m=16, block_n=16)
    ref = paged_prefill_attention_ref(q, k_cache, v_cache, bt, cu, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)


def test_prefill_fp16(paged_kv) -> None:
    q, _, _, k_cache, v_cache, bt, cu, lens = _setup(paged_kv, [(5, 37), (17, 17)], 4, 2, 64, 16, torch.float16)
    out = paged_prefill_attention(q, k_cache, v_cache, bt, cu, lens, 0.125, block_m=16, block_n=16)
    ref = paged_prefill_attention_ref(q, k_cache, v_cache, bt, cu, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=2e-3)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                    reason="the interpreter's tl.dot reads bf16 operands as raw uint16 bits")
def test_prefill_bf16(paged_kv) -> None:
    q, _, _, k_cache, v_cache, bt, cu, lens = _setup(paged_kv, [(5, 37), (17, 17)], 4, 2, 64, 16, torch.bfloat16)
    out = paged_prefill_attention(q, k_cache, v_cache, bt, cu, lens, 0.125, block_m=16, block_n=16)
    ref = paged_prefill_attention_ref(q, k_cache, v_cache, bt, cu, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
