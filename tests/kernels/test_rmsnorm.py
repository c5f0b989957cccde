import pytest
import torch
from pdtune.kernels import rms_norm, rms_norm_ref
from transformers.models.llama.modeling_llama import LlamaRMSNorm


def test_ref_matches_hf_llama_rmsnorm() -> None:
    x = torch.randn(7, 96)
    hf = LlamaRMSNorm(96, eps=1e-6)
    hf.weight.data = torch.randn(96)
    torch.testing.assert_close(rms_norm_ref(x, hf.weight.data, 1e-6), hf(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("hidden", [64, 96, 1000])
@pytest.mark.parametrize("with_residual", [False, True])
def test_rms_norm_matches_ref(hidden: int, with_residual: bool) -> None:
    x = torch.randn(37, hidden)
    w = torch.randn(hidden)
    res = torch.randn(37, hidden) if with_residual else None
    out = rms_norm(x, w, 1e-5, res)
    ref = rms_norm_ref(x, w, 1e-5, res)
    if with_residual:
        torch.testing.assert_close(out[0], ref[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[1], x + res, atol=0, rtol=0)
    else:
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_rms_norm_3d_strided_heads() -> None:
    """Qwen3 q/k norm: a per-head norm over a strided view of a fused qkv output."""
    qkv = torch.randn(9, 6 * 32)
    q = qkv[:, : 4 * 32].view(9, 4, 32)
    w = torch.randn(32)
    out = rms_norm(q, w, 1e-6)
    assert out.shape == (9, 4, 32) and out.is_contiguous()
    torch.testing.assert_close(out, rms_norm_ref(q, w, 1e-6), atol=1e-5, rtol=1e-5)


def test_rms_norm_bf16_residual() -> None:
    x = torch.randn(11, 128).bfloat16()
    res = torch.randn(11, 128).bfloat16()
    w = torch.randn(128).bfloat16()
    out, r = rms_norm(x, w, 1e-6, res)
    ref_out, ref_r = rms_norm_ref(x, w, 1e-6, res)
    assert out.dtype == r.dtype == torch.bfloat16
    # The interpreter truncates fp32 -> bf16 where GPUs round: allow one bf16 ulp for r
    # and about two for the output (normalised from the truncated r, then truncated itself).
    torch.testing.assert_close(r, ref_r, atol=1e-6, rtol=2**-7)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=3e-2)
