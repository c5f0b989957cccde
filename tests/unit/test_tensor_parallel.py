"""Tensor parallelism on the CPU (gloo, 2 processes): the same tokens as one process."""

import pytest
from typer.testing import CliRunner

from pdtune import LLM, SamplingParams
from pdtune.cli.app import app
from pdtune.errors import PdtuneError

PROMPTS = [list(range(3, 3 + n)) for n in (1, 9, 17, 40)]
GREEDY = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True, logprobs=1)


@pytest.mark.parametrize("arch,mode", [("qwen2", "chunked"), ("llama", "sequential")])
def test_two_ranks_give_the_single_process_tokens(tiny_hf_model, arch, mode):
    folder = tiny_hf_model(arch).folder
    ref = LLM(folder, num_kv_blocks=64, mode=mode).generate(PROMPTS, GREEDY)
    # a small KV pool and token budget: chunked prefill and preemption also cross the broadcast
    with LLM(folder, num_kv_blocks=5, max_num_batched_tokens=16, mode=mode, tensor_parallel_size=2) as llm:
        got = llm.generate(PROMPTS, GREEDY)
        if mode == "chunked":
            assert llm.engine.scheduler.num_preemptions > 0
    assert [o.token_ids for o in got] == [o.token_ids for o in ref]
    assert max(abs(a.logprob - b.logprob) for o, r in zip(got, ref) for a, b in zip(o.logprobs, r.logprobs)) < 1e-4


def test_a_size_that_does_not_divide_the_heads_is_refused(tiny_hf_model):
    with pytest.raises(PdtuneError, match="does not divide"):
        LLM(tiny_hf_model("llama").folder, tensor_parallel_size=3)


def test_run_batch_with_two_ranks(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"custom_id": "a", "method": "POST", "url": "/v1/completions", '
                   '"body": {"prompt": "hello", "max_tokens": 4, "temperature": 0}}\n')
    result = CliRunner().invoke(app, ["run-batch", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", "tiny",
                                      "--load-format", "dummy", "--num-kv-blocks", "16", "-tp", "2"])
    assert result.exit_code == 0, result.output
    assert '"completion_tokens": 4' in (tmp_path / "o.jsonl").read_text()
