import pytest
import torch
from pdtune.kernels import write_kv, write_kv_ref


@pytest.mark.parametrize("slot_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_write_kv_matches_ref(slot_dtype: torch.dtype, dtype: torch.dtype) -> None:
    n_blocks, block_size, n_heads, head_dim = 6, 16, 3, 64
    qkv = torch.randn(10, 5 * n_heads * head_dim).to(dtype)  # k/v as strided views
    k = qkv[:, : n_heads * head_dim].view(10, n_heads, head_dim)
    v = qkv[:, 2 * n_heads * head_dim : 3 * n_heads * head_dim].view(10, n_heads, head_dim)
    slots = torch.tensor([0, 15, 16, 17, -1, 95, 40, -1, 63, 64], dtype=slot_dtype)
    caches = [torch.randn(n_blocks, block_size, n_heads, head_dim).to(dtype) for _ in range(2)]
    ref_caches = [c.clone() for c in caches]
    write_kv(k, v, *caches, slots)
    write_kv_ref(k, v, *ref_caches, slots)
    torch.testing.assert_close(caches, ref_caches, atol=0, rtol=0)
    keep = slots >= 0
    s = slots[keep].long()
    torch.testing.assert_close(caches[0].view(-1, n_heads, head_dim)[s], k[keep], atol=0, rtol=0)
    torch.testing.assert_close(caches[1].view(-1, n_heads, head_dim)[s], v[keep], atol=0, rtol=0)
