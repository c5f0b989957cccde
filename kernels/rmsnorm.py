"""RMSNorm (optionally fused with the residual add) over the last dimension."""

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit(do_not_specialize=["n_rows"])  # one compile for every token count (no JIT stall mid-run)
def _rms_norm_kernel(
    x_ptr, res_ptr, w_ptr, out_ptr, res_out_ptr,
    n_rows, n_heads, hidden, eps,
    stride_xt, stride_xh, stride_rt, stride_rh,
    HAS_RESIDUAL: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_H: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    cols = tl.arange(0, BLOCK_H)
    row_ok = rows < n_rows
    mask = row_ok[:, None] & (cols < hidden)[None, :]
    # A row is (token, head); 2-D inputs use n_heads == 1.
    t = (rows // n_heads).to(tl.int64)
    h = rows % n_heads
    x_offs = (t * stride_xt + h * stride_xh)[:, None] + cols[None, :]
    x = tl.load(x_ptr + x_offs, mask=mask, other=0.0)
    out_offs = rows.to(tl.int64)[:, None] * hidden + cols[None, :]
    if HAS_RESIDUAL:
        r_offs = (t * stride_rt + h * stride_rh)[:, None] + cols[None, :]
        res = tl.load(res_ptr + r_offs, mask=mask, other=0.0)
        # The residual stream is kept in model dtype: round before normalising.
        x = (x.to(tl.float32) + res.to(tl.float32)).to(x.dtype)
        tl.store(res_out_ptr + out_offs, x, mask=mask)
    xf = x.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(xf * xf, axis=1) / hidden + eps)
    w = tl.load(w_ptr + cols, mask=cols < hidden, other=0.0).to(tl.float32)
    y = xf * rstd[:, None] * w[None, :]
    tl.store(out_ptr + out_offs, y.to(x.dtype), mask=mask)


def rms_norm_ref(
    x: Tensor, weight: Tensor, eps: float, residual: Tensor | None = None
) -> Tensor | tuple[Tensor, Tensor]:
    """Torch reference and CPU path; same semantics as `rms_norm`."""
    if residual is not None:
        x = (x.float() + residual.float()).to(x.dtype)
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    return y.to(x.dtype) if residual is None else (y.to(x.dtype), x)


def _rows_view(t: Tensor) -> tuple[int, int, int, int]:
    """(n_heads, hidden, stride_t, stride_h) of a [T, H] or [T, nheads, D] tensor."""
    assert t.dim() in (2, 3) and t.stride(-1) == 1, "last dim must be contiguous"
    if t.dim() == 2:
        return 1, t.shape[1], t.stride(0), 0
    return t.shape[1], t.shape[2], t.stride(0), t.stride(1)


def rms_norm(
    x: Tensor, weight: Tensor, eps: float, residual: Tensor | None = None,
    *, block_rows: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """RMSNorm over the last dim of [T, H] or [T, nheads, D]; with `residual`,
    returns (norm(x + residual) * weight, x + residual). Outputs are contiguous."""
    n_heads, hidden, sxt, sxh = _rows_view(x)
    assert weight.shape == (hidden,) and weight.is_contiguous()
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    res_out = None
    srt = srh = 0
    if residual is not None:
        assert residual.shape == x.shape and residual.dtype == x.dtype
        _, _, srt, srh = _rows_view(residual)
        res_out = torch.empty_like(out)
    n_rows = x.shape[0] * n_heads
    block_h = triton.next_power_of_2(hidden)
    # Small rows (q/k norm) are batched per program so each program moves ~4K elements.
    if block_rows is None:
        block_rows = max(1, min(64, 4096 // block_h))
    grid = (triton.cdiv(n_rows, block_rows),)
    _rms_norm_kernel[grid](
        x, residual if residual is not None else x, weight, out,
        res_out if res_out is not None else out,
        n_rows, n_heads, hidden, eps, sxt, sxh, srt, srh,
        HAS_RESIDUAL=residual is not None, BLOCK_ROWS=block_rows, BLOCK_H=block_h,
    )
    return out if res_out is None else (out, res_out)
