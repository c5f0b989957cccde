"""On the GPU: split-K decode attention and its merge against the torch reference at the 8B
shape's heads (hundreds of chunks per sequence at 16k), one plan for several layers, and replayed
from a CUDA graph as the engine does, layer after layer."""

import pytest
import torch

from pdtune.kernels import paged_decode_attention, paged_decode_attention_ref, plan_decode_work
from pdtune.kernels.decode_attention import page_tma_fits

pytestmark = pytest.mark.gpu

N_Q_HEADS, N_KV_HEADS, HEAD_DIM = 32, 8, 128


def paged_cache(seq_lens: list[int], dtype: torch.dtype, block_size: int = 16) -> tuple[torch.Tensor, ...]:
    """A KV cache holding every sequence in shuffled blocks, and their block tables."""
    blocks_per_seq = [-(-n // block_size) for n in seq_lens]
    num_blocks = sum(blocks_per_seq)
    shape = (num_blocks, block_size, N_KV_HEADS, HEAD_DIM)
    k_cache = torch.randn(shape, device="cuda", dtype=dtype)
    v_cache = torch.randn(shape, device="cuda", dtype=dtype)
    order = torch.randperm(num_blocks, device="cuda", dtype=torch.int32)
    tables = torch.zeros(len(seq_lens), max(blocks_per_seq), dtype=torch.int32, device="cuda")
    start = 0
    for b, n in enumerate(blocks_per_seq):
        tables[b, :n] = order[start:start + n]
        start += n
    return k_cache, v_cache, tables, torch.tensor(seq_lens, dtype=torch.int32, device="cuda")


@pytest.mark.parametrize("seq_lens", [[1024], [16384], [16000] + [300] * 63, [1, 17, 4096, 33, 9000]])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("block_size", [16, 64])  # gathered tiles; bulk-copied (TMA) above 4 sequences
def test_split_decode_attention_matches_the_reference(seq_lens: list[int], dtype: torch.dtype,
                                                      block_size: int) -> None:
    k_cache, v_cache, tables, lens = paged_cache(seq_lens, dtype, block_size)
    plan = plan_decode_work(lens, N_KV_HEADS)
    assert page_tma_fits(k_cache, plan.block_n) == (block_size == 64)
    batch = len(seq_lens)
    assert max(plan.table[batch:2 * batch].tolist()) > 1  # some sequence is merged
    for layer in range(4):  # one plan, several layers
        q = torch.randn(batch, N_Q_HEADS, HEAD_DIM, device="cuda", dtype=dtype)
        out = paged_decode_attention(q, k_cache, v_cache, tables, lens, HEAD_DIM**-0.5, plan)
        ref = paged_decode_attention_ref(q, k_cache, v_cache, tables, lens, HEAD_DIM**-0.5)
        tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
        torch.testing.assert_close(out, ref, atol=tol, rtol=tol)


@pytest.mark.parametrize("block_size", [16, 64])
def test_decode_attention_graph_replays_stay_exact(block_size: int) -> None:
    """The engine captures the plan and every layer's attention in one graph; 50 replays with
    new queries each match the reference."""
    seq_lens = [2048, 700, 5000, 64, 300]  # five: 64-token pages take the bulk-copied tiles
    k_cache, v_cache, tables, lens = paged_cache(seq_lens, torch.bfloat16, block_size)
    q = torch.randn(len(seq_lens), N_Q_HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    outs = []

    def step() -> None:
        plan = plan_decode_work(lens, N_KV_HEADS)
        outs.clear()
        for layer in range(3):
            outs.append(paged_decode_attention(q * (layer + 1), k_cache, v_cache, tables, lens, 0.09, plan))

    step()  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for _ in range(50):
        q.copy_(torch.randn_like(q))
        graph.replay()
        for layer, out in enumerate(outs):
            ref = paged_decode_attention_ref(q * (layer + 1), k_cache, v_cache, tables, lens, 0.09)
            torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
