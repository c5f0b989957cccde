"""Fresh prompts padded to length buckets (as on GPUs) attend exactly as unpadded ones."""

import torch

from pdtune.model.attention import PagedAttention, prompt_bucket
from pdtune.model.ops import select_ops


def test_buckets_bound_the_padding_and_the_number_of_lengths():
    for n in range(1, 40000):
        b = prompt_bucket(n)
        assert n <= b < n + max(64, n // 8 + 1) and b % 64 == 0  # under 1/8 more rows, or under 64
    assert len({prompt_bucket(n) for n in range(1, 20001)}) == 50


def attention(bucket: bool) -> PagedAttention:
    attn = PagedAttention(num_heads=4, num_kv_heads=2, head_dim=16, ops=select_ops("torch", torch.device("cpu")))
    attn.k_cache = torch.zeros(4, 16, 2, 16)
    attn.v_cache = torch.zeros_like(attn.k_cache)
    attn.bucket_prompts = bucket
    return attn


def test_padded_fresh_prefill_equals_the_unpadded_one():
    torch.manual_seed(0)
    lens = [5, 70, 130, 1]  # the last prompts' buckets run past the step's rows: zero rows are added
    total = sum(lens)
    q, k, v = torch.randn(total, 4, 16), torch.randn(total, 2, 16), torch.randn(total, 2, 16)
    exact = attention(bucket=False)._fresh_prefill(q, k, v, lens)
    padded = attention(bucket=True)._fresh_prefill(q, k, v, lens)
    assert padded.shape == exact.shape
    torch.testing.assert_close(padded, exact, rtol=1e-5, atol=1e-5)


def test_the_plans_are_built_once_per_bucket():
    assert attention(bucket=True).build_fused_plans(300) == len({prompt_bucket(n) for n in range(1, 301)}) == 5
