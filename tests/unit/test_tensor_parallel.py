"""Tensor parallelism on the CPU (gloo, 2 processes): the same tokens as one process."""

import os

import pytest
from typer.testing import CliRunner

from pdtune import LLM, SamplingParams
from pdtune.cli.app import app
from pdtune.errors import PdtuneError
from pdtune.executor.tensor_parallel import NCCL_ENV

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


STATIC = {"pdmux_policy": "static", "pdmux_static_split": (96, 36), "pdmux_gang": 1}


@pytest.mark.parametrize("policy", [STATIC, {}, {**STATIC, "pdmux_prefill_jump": "late", "pdmux_prefill_tokens": 8}])
def test_pdmux_on_two_ranks_gives_the_single_process_tokens_with_a_communicator_per_phase(tiny_hf_model, monkeypatch,
                                                                                           policy):
    """Rank 0 sends each step's launches; both ranks run the decode step's all-reduces on the
    decode group and the prefill block's on the prefill group (spied on in rank 0)."""
    import torch.distributed as dist

    folder = tiny_hf_model("qwen2").folder  # 3 layers: gang 1 spreads a prefill over 3 steps
    ref = LLM(folder, num_kv_blocks=64, mode="sequential").generate(PROMPTS, GREEDY)
    seen, phase = [], [None]
    real_all_reduce = dist.all_reduce

    def spy(tensor, group=None, **kw):
        seen.append((phase[0], group))
        return real_all_reduce(tensor, group=group, **kw)

    jobs_in_flight = []
    with LLM(folder, num_kv_blocks=64, mode="pdmux", tensor_parallel_size=2,
             **{"pdmux_prefill_tokens": 20, **policy}) as llm:
        stepper = llm.engine.stepper
        executor = stepper.executor
        if policy.get("pdmux_prefill_jump"):  # every new queue jumps: workers follow two jobs by id
            monkeypatch.setattr(stepper.planner, "jumps_ahead", lambda *args: True)
            step = stepper.step
            monkeypatch.setattr(stepper, "step", lambda: (step(), jobs_in_flight.append(len(stepper.jobs)))[0])
        for name in ("decode", "prefill"):
            launch = getattr(executor, f"launch_{name}")

            def marked(*args, _launch=launch, _name=name):
                phase[0] = _name
                try:
                    return _launch(*args)
                finally:
                    phase[0] = None

            monkeypatch.setattr(executor, f"launch_{name}", marked)
        monkeypatch.setattr(dist, "all_reduce", spy)
        got = llm.generate(PROMPTS, GREEDY)
        groups = llm.engine.runner.tp.groups
        assert all(os.environ[k] == v for k, v in NCCL_ENV.items())  # NVLink multicast off before any communicator
    assert [o.token_ids for o in got] == [o.token_ids for o in ref]
    assert max(abs(a.logprob - b.logprob) for o, r in zip(got, ref) for a, b in zip(o.logprobs, r.logprobs)) < 1e-4
    by_phase = {p: {id(g) for q, g in seen if q == p} for p in ("decode", "prefill", None)}
    assert by_phase["decode"] == {id(groups["decode"])} and by_phase["prefill"] == {id(groups["prefill"])}
    assert groups["decode"] is not groups["prefill"] and not by_phase[None]  # no collective outside a launch
    if policy.get("pdmux_prefill_jump"):
        assert max(jobs_in_flight) == 2  # one prefill overtook another, the workers following both
