"""Overlapped scheduling (step n+1 planned and launched before step n's tokens are read) gives
exactly what the synchronous loop gives, under every way a request can end or be interrupted."""

import pytest

from pdtune import LLM, SamplingParams

PROMPTS = [list(range(1, n + 1)) for n in (1, 7, 16, 17, 40)] + [[5, 9, 200] * 11]
GREEDY = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)


def tiny(**kw) -> LLM:
    return LLM("tiny", load_format="dummy", **kw)


def outputs(overlap: bool, prompts, params, **kw):
    llm = tiny(overlap_scheduling=overlap, **kw)
    return llm.generate(prompts, params), llm


def assert_same(overlapped, sync):
    """Tokens, finish reasons, text and logprob ids exactly; logprob values within 1e-5, since a
    step's batch (and so the float32 sums) can differ between the two loops."""
    assert [(o.token_ids, o.finish_reason, o.text) for o in overlapped] == \
        [(o.token_ids, o.finish_reason, o.text) for o in sync]
    for a, b in zip(overlapped, sync):
        assert len(a.logprobs or []) == len(b.logprobs or [])
        for x, y in zip(a.logprobs or [], b.logprobs or []):
            assert x.token_id == y.token_id and [t for t, _ in x.top] == [t for t, _ in y.top]
            assert [x.logprob, *(v for _, v in x.top)] == pytest.approx([y.logprob, *(v for _, v in y.top)], abs=1e-5)


@pytest.mark.parametrize("mode,budget", [("sequential", 2048), ("chunked", 2048), ("chunked", 8)])
def test_mixed_sampling_stops_and_logprobs_match_the_synchronous_loop(mode, budget):
    greedy = tiny(overlap_scheduling=False).generate(PROMPTS, GREEDY)
    stop_on = greedy[2].token_ids[3]  # ends request 2 (and maybe others) mid-way
    params = [GREEDY,
              SamplingParams(max_tokens=9, temperature=0.9, top_p=0.9, seed=7, ignore_eos=True),
              SamplingParams(max_tokens=12, temperature=0, stop_token_ids=(stop_on,)),
              SamplingParams(max_tokens=6, temperature=0, ignore_eos=True, logprobs=3),
              SamplingParams(max_tokens=12, temperature=0.7, top_k=5, seed=3, ignore_eos=True, logprobs=2),
              SamplingParams(max_tokens=1, temperature=0, ignore_eos=True)]
    sync, _ = outputs(False, PROMPTS, params, mode=mode, max_num_batched_tokens=budget)
    overlapped, llm = outputs(True, PROMPTS, params, mode=mode, max_num_batched_tokens=budget)
    assert_same(overlapped, sync)
    assert sync[2].finish_reason == "stop" and len(sync[2].token_ids) == 4 and sync[3].logprobs
    assert llm.engine.block_manager.num_free_blocks == llm.engine.num_kv_blocks


@pytest.mark.parametrize("mode", ["sequential", "chunked"])
def test_preemption_and_prefix_hits_match_the_synchronous_loop(mode):
    shared = [3, 1, 4, 1, 5, 9, 2, 6] * 5
    prompts = PROMPTS + [shared + [7], shared + [8, 8]]
    sync, _ = outputs(False, prompts, GREEDY, mode=mode, num_kv_blocks=7, max_num_batched_tokens=64)
    overlapped, llm = outputs(True, prompts, GREEDY, mode=mode, num_kv_blocks=7, max_num_batched_tokens=64)
    assert_same(overlapped, sync)
    assert llm.engine.scheduler.num_preemptions > 0
    assert llm.engine.block_manager.num_free_blocks == 7


def test_the_context_limit_matches_the_synchronous_loop():
    params = SamplingParams(max_tokens=50, temperature=0, ignore_eos=True)
    sync, _ = outputs(False, [list(range(1, 16)), [4] * 9], params, max_model_len=20)
    overlapped, _ = outputs(True, [list(range(1, 16)), [4] * 9], params, max_model_len=20)
    assert_same(overlapped, sync)
    assert [len(o.token_ids) for o in sync] == [5, 11]


def test_a_request_ending_by_length_gets_no_wasted_row():
    llm = tiny(mode="chunked")
    rows = []
    launch = llm.engine.runner.launch

    def counting(plan, previous):
        rows.append(plan.num_tokens)
        return launch(plan, previous)

    llm.engine.runner.launch = counting
    outs = llm.generate(PROMPTS, GREEDY)
    prompt_tokens = sum(len(p) for p in PROMPTS)
    # every output token but the last of each request is fed back once; nothing more is computed
    assert sum(rows) == prompt_tokens + sum(len(o.token_ids) - 1 for o in outs)
