import pytest
import torch
from pdtune.kernels import silu_and_mul, silu_and_mul_ref


@pytest.mark.parametrize("inter", [64, 100, 1500])
def test_silu_and_mul_matches_ref(inter: int) -> None:
    x = torch.randn(13, 2 * inter)
    out = silu_and_mul(x)
    assert out.shape == (13, inter)
    torch.testing.assert_close(out, silu_and_mul_ref(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(silu_and_mul_ref(x), torch.nn.functional.silu(x[:, :inter]) * x[:, inter:])


def test_silu_and_mul_bf16() -> None:
    x = torch.randn(5, 256).bfloat16()
    torch.testing.assert_close(silu_and_mul(x), silu_and_mul_ref(x), atol=2e-2, rtol=2e-2)
