"""SwiGLU activation: silu(gate) * up over a fused [gate | up] projection output."""

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def _silu_and_mul_kernel(x_ptr, out_ptr, inter, stride_xt, BLOCK: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < inter
    gate = tl.load(x_ptr + t * stride_xt + cols, mask=mask, other=0.0)
    up = tl.load(x_ptr + t * stride_xt + inter + cols, mask=mask, other=0.0)
    g = gate.to(tl.float32)
    y = g / (1.0 + tl.exp(-g)) * up.to(tl.float32)
    tl.store(out_ptr + t * inter + cols, y.to(gate.dtype), mask=mask)


def silu_and_mul_ref(x: Tensor) -> Tensor:
    """Torch reference and CPU path; same semantics as `silu_and_mul`."""
    inter = x.shape[1] // 2
    return (torch.nn.functional.silu(x[:, :inter].float()) * x[:, inter:].float()).to(x.dtype)


def silu_and_mul(x: Tensor, *, block: int | None = None) -> Tensor:
    """[T, 2I] -> [T, I]: silu(x[:, :I]) * x[:, I:], computed in fp32."""
    assert x.dim() == 2 and x.shape[1] % 2 == 0 and x.stride(1) == 1
    n_tokens, inter = x.shape[0], x.shape[1] // 2
    out = torch.empty((n_tokens, inter), dtype=x.dtype, device=x.device)
    if n_tokens == 0:
        return out
    block = block or min(1024, triton.next_power_of_2(inter))
    _silu_and_mul_kernel[(n_tokens, triton.cdiv(inter, block))](x, out, inter, x.stride(0), BLOCK=block)
    return out
