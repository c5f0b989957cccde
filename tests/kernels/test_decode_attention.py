import os

import pytest
import torch
from pdtune.kernels import paged_decode_attention, paged_decode_attention_ref

# Lengths around the 16-token cache blocks and 16/32-token KV tiles: 1 token, ends
# exactly at and just past block boundaries, and a few longer ragged ones.
SEQ_LENS = [1, 15, 16, 17, 32, 33, 70, 100]


def _setup(paged_kv, seq_lens: list[int], n_q_heads: int, n_kv_heads: int, head_dim: int,
           block_size: int, dtype: torch.dtype = torch.float32):
    keys, values, k_cache, v_cache, block_tables = paged_kv(seq_lens, n_kv_heads, head_dim, block_size, dtype)
    q = torch.randn(len(seq_lens), n_q_heads, head_dim).to(dtype)
    return q, keys, values, k_cache, v_cache, block_tables, torch.tensor(seq_lens, dtype=torch.int32)


@pytest.mark.parametrize(("n_q_heads", "n_kv_heads"), [(2, 2), (6, 2), (8, 2)])
def test_ref_matches_dense_sdpa(paged_kv, dense_attention, n_q_heads: int, n_kv_heads: int) -> None:
    q, keys, values, k_cache, v_cache, bt, lens = _setup(paged_kv, SEQ_LENS, n_q_heads, n_kv_heads, 32, 16)
    out = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.3)
    for b in range(len(SEQ_LENS)):
        dense = dense_attention(q[b : b + 1], keys[b], values[b], 0.3)[0]
        torch.testing.assert_close(out[b].double(), dense, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("n_q_heads", "n_kv_heads", "head_dim", "block_size", "num_splits", "block_n"),
    [
        (4, 4, 64, 16, None, 16),  # MHA, heuristic split count
        (6, 2, 64, 16, 3, 32),  # GQA 3, tiles spanning two cache blocks
        (8, 2, 128, 32, 1, 16),  # GQA 4, two tiles per cache block, no split
        (4, 1, 32, 16, 8, 16),  # MQA, more splits than the short sequences have tiles
    ],
)
def test_decode_matches_ref(paged_kv, n_q_heads: int, n_kv_heads: int, head_dim: int, block_size: int,
                            num_splits: int | None, block_n: int) -> None:
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, SEQ_LENS, n_q_heads, n_kv_heads, head_dim, block_size)
    scale = head_dim**-0.5
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, scale, num_splits, block_n=block_n)
    assert out.shape == q.shape and out.dtype == q.dtype
    ref = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, scale)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-5)


def test_decode_fp16(paged_kv) -> None:
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, [5, 40], 4, 2, 64, 16, torch.float16)
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.125, 2, block_n=16)
    ref = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=2e-3)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                    reason="the interpreter's tl.dot reads bf16 operands as raw uint16 bits")
def test_decode_bf16(paged_kv) -> None:
    q, _, _, k_cache, v_cache, bt, lens = _setup(paged_kv, [5, 40], 4, 2, 64, 16, torch.bfloat16)
    out = paged_decode_attention(q, k_cache, v_cache, bt, lens, 0.125, 2, block_n=16)
    ref = paged_decode_attention_ref(q, k_cache, v_cache, bt, lens, 0.125)
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
