"""Tensor parallelism over NCCL on two GPUs: the single-GPU tokens in every mode, decode from CUDA
graphs holding their all-reduce, pdmux with a communicator per phase. Skipped below two GPUs."""

import pytest
import torch

from pdtune import LLM, SamplingParams

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")]

PROMPTS = [list(range(3, 3 + n)) for n in (1, 9, 16, 17, 50, 130)]
GREEDY = SamplingParams(max_tokens=24, temperature=0, ignore_eos=True, logprobs=1)


@pytest.fixture(scope="module")
def folder(tiny_hf_model):
    return tiny_hf_model("qwen2").folder


@pytest.mark.parametrize("engine", [dict(mode="chunked", max_num_batched_tokens=64),
                                    dict(mode="chunked", enforce_eager=True),
                                    dict(mode="pdmux", pdmux_prefill_tokens=64),
                                    dict(mode="pdmux", pdmux_policy="static", pdmux_static_split=(96, 36),
                                         pdmux_gang=1, pdmux_prefill_tokens=64)])
def test_two_gpus_give_the_single_gpu_tokens(folder, engine):
    ref = LLM(folder, dtype="float32", mode="sequential", num_kv_blocks=128).generate(PROMPTS, GREEDY)
    with LLM(folder, dtype="float32", num_kv_blocks=128, tensor_parallel_size=2, **engine) as llm:
        assert llm.engine.runner.tp.groups["decode"] is not llm.engine.runner.tp.groups["prefill"]
        got = llm.generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in got] == [o.token_ids for o in ref]
    assert max(abs(a.logprob - b.logprob) for o, r in zip(got, ref) for a, b in zip(o.logprobs, r.logprobs)) < 1e-3
