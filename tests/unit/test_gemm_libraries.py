"""The BLAS-library pins of decode-graph projections: set for a capture, cleared after, never on CPUs."""

import torch
import torch.nn.functional as F

from pdtune.executor.gemm_libraries import pinned_libraries, tunable
from pdtune.model.projection import Projection


def test_a_projection_is_a_linear_layer_until_pinned():
    proj = Projection(8, 6, bias=True)
    x = torch.randn(3, 8)
    torch.testing.assert_close(proj(x), F.linear(x, proj.weight, proj.bias), rtol=0, atol=0)
    assert proj.blas_library is None


def test_pins_hold_inside_the_capture_only():
    groups = {"a": [Projection(4, 4), Projection(4, 4)], "b": [Projection(4, 2)]}
    with pinned_libraries(groups, {"a": "cublaslt", "b": "cublas"}):
        assert [p.blas_library for p in groups["a"]] == ["cublaslt", "cublaslt"]
        assert groups["b"][0].blas_library == "cublas"
    assert all(p.blas_library is None for ps in groups.values() for p in ps)


def test_pins_are_cleared_when_the_capture_fails():
    groups = {"a": [Projection(4, 4)]}
    try:
        with pinned_libraries(groups, {"a": "cublaslt"}):
            raise RuntimeError("capture failed")
    except RuntimeError:
        pass
    assert groups["a"][0].blas_library is None


def test_only_16_bit_gpu_weights_are_tuned():
    assert not tunable(torch.zeros(2, dtype=torch.bfloat16))
    assert not tunable(torch.zeros(2))
