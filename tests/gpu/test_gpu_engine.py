"""On the GPU: Triton kernels, CUDA-graph decode and the torch path agree with the CPU reference."""

import pytest

from pdtune import LLM, SamplingParams

pytestmark = pytest.mark.gpu

PROMPTS = [list(range(3, 3 + n)) for n in (1, 9, 16, 17, 50, 130)]
GREEDY = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True, logprobs=1)


@pytest.fixture(scope="module")
def qwen3_folder(tiny_hf_model):
    """A real checkpoint folder: CPU and GPU load the very same weights."""
    return tiny_hf_model("qwen3").folder


def run(model="tiny", **kw):
    load_format = "dummy" if model == "tiny" else "auto"
    return LLM(model, load_format=load_format, num_kv_blocks=128, **kw).generate(PROMPTS, GREEDY)


@pytest.fixture(scope="module")
def cpu_reference(qwen3_folder):
    return run(qwen3_folder, device="cpu", dtype="float32", attention_backend="torch")


@pytest.mark.parametrize("backend,eager", [("triton", False), ("triton", True), ("torch", True)])
@pytest.mark.parametrize("mode", ["sequential", "chunked"])
def test_float32_gpu_greedy_tokens_equal_the_cpu_path(qwen3_folder, cpu_reference, backend, eager, mode):
    outs = run(qwen3_folder, device="cuda", dtype="float32", attention_backend=backend, enforce_eager=eager, mode=mode,
               max_num_batched_tokens=64)
    for got, ref in zip(outs, cpu_reference):
        assert got.token_ids == ref.token_ids
        assert max(abs(a.logprob - b.logprob) for a, b in zip(got.logprobs, ref.logprobs)) < 1e-3


def test_piecewise_graph_steps_of_several_buckets_give_the_cpu_tokens(qwen3_folder, cpu_reference):
    """Chunked steps of 64 to 256 rows replayed in graph pieces between eager attentions."""
    llm = LLM(qwen3_folder, device="cuda", dtype="float32", num_kv_blocks=128, mode="chunked", max_num_batched_tokens=256)
    assert llm.engine.runner.piecewise is not None and len(llm.engine.runner.piecewise.graphs) == 4
    for got, ref in zip(llm.generate(PROMPTS, GREEDY), cpu_reference):
        assert got.token_ids == ref.token_ids
        assert max(abs(a.logprob - b.logprob) for a, b in zip(got.logprobs, ref.logprobs)) < 1e-3


def test_projections_pinned_to_cublaslt_compute_what_cublas_does():
    import torch

    from pdtune.executor.gemm_libraries import pinned_libraries
    from pdtune.model.projection import Projection

    default = torch.backends.cuda.preferred_blas_library()
    proj = Projection(1024, 3072, bias=False).to("cuda", torch.bfloat16)
    x = torch.randn(64, 1024, device="cuda", dtype=torch.bfloat16)
    ref = proj(x)
    with pinned_libraries({"p": [proj]}, {"p": "cublaslt"}):
        got = proj(x)
        assert torch.backends.cuda.preferred_blas_library() == default  # set only around the call
    torch.testing.assert_close(got, ref, rtol=2e-2, atol=2e-2)


def test_bfloat16_decode_graphs_pick_a_library_per_projection_and_bucket(qwen3_folder):
    llm = LLM(qwen3_folder, device="cuda", dtype="bfloat16", num_kv_blocks=128, max_num_seqs=16)
    graphs = llm.engine.runner.graphs
    assert set(graphs.gemm_libraries) == set(graphs.buckets)
    for picks in graphs.gemm_libraries.values():
        assert set(picks) == {"qkv", "o", "gate_up", "down"} and set(picks.values()) <= {"cublas", "cublaslt"}
    untuned = LLM(qwen3_folder, device="cuda", dtype="bfloat16", num_kv_blocks=128, max_num_seqs=16,
                  tune_decode_gemms=False)
    assert untuned.engine.runner.graphs.gemm_libraries == {b: {} for b in untuned.engine.runner.graphs.buckets}
    for got, ref in zip(llm.generate(PROMPTS[:2], GREEDY), untuned.generate(PROMPTS[:2], GREEDY)):
        assert max(abs(a.logprob - b.logprob) for a, b in zip(got.logprobs[:2], ref.logprobs[:2])) < 0.1  # later tokens may follow a near-tie apart
