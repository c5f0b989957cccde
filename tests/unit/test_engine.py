"""Engine behaviour on the tiny preset: modes, prefix cache, preemption, sampling, limits."""

import pytest

from pdtune import LLM, SamplingParams
from pdtune.errors import PromptTooLongError

GREEDY = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
PROMPTS = [list(range(1, n + 1)) for n in (1, 7, 16, 17, 40)] + [[5, 9, 200] * 11]


def tiny(**kw) -> LLM:
    return LLM("tiny", load_format="dummy", **kw)


@pytest.fixture(scope="module")
def reference_tokens():
    return [o.token_ids for o in tiny(mode="sequential").generate(PROMPTS, GREEDY)]


@pytest.mark.parametrize("mode,budget", [("sequential", 2048), ("chunked", 2048), ("chunked", 8), ("chunked", 33)])
def test_every_mode_gives_the_same_greedy_tokens(mode, budget, reference_tokens):
    llm = tiny(mode=mode, max_num_batched_tokens=budget)
    outs = llm.generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in outs] == reference_tokens
    assert all(len(o.token_ids) == 12 and o.finish_reason == "length" for o in outs)


@pytest.mark.parametrize("overlap,calls", [(False, 5), (True, 6)])
def test_chunked_prefill_spreads_a_long_prompt_over_steps(overlap, calls):
    llm = tiny(mode="chunked", max_num_batched_tokens=8, overlap_scheduling=overlap)
    llm.engine.add_request(list(range(1, 41)), GREEDY)
    steps = 0
    while not llm.engine.scheduler.running or llm.engine.scheduler.running[0].num_output_tokens == 0:
        llm.engine.step()
        steps += 1
    assert steps == calls  # 40 prompt tokens in chunks of 8; overlapped, the token is read one call later


def test_prefix_cache_hit_gives_the_same_tokens_as_a_miss(reference_tokens):
    shared = [7] * 40
    prompts = [shared + [1, 2, 3], shared + [4, 5]]
    cold = tiny(enable_prefix_caching=False)
    expected = [o.token_ids for o in cold.generate(prompts, GREEDY)]
    warm = tiny()
    first = warm.generate(prompts[:1], GREEDY)[0]
    second = warm.generate(prompts[1:], GREEDY)[0]
    assert [first.token_ids, second.token_ids] == expected
    assert first.metrics.num_cached_tokens == 0
    assert second.metrics.num_cached_tokens == 32  # two full 16-token blocks of the shared prefix
    assert warm.engine.block_manager.hit_rate == pytest.approx(32 / (43 + 42))
    # a prompt that is entirely cached still recomputes its last token for the logits
    again = warm.generate(prompts[:1], GREEDY)[0]
    assert again.token_ids == expected[0] and again.metrics.num_cached_tokens == 32


@pytest.mark.parametrize("mode", ["sequential", "chunked"])
def test_a_small_kv_pool_forces_preemption_and_keeps_the_tokens(mode, reference_tokens):
    llm = tiny(mode=mode, num_kv_blocks=6, max_num_batched_tokens=64)
    outs = llm.generate(PROMPTS, GREEDY)
    assert llm.engine.scheduler.num_preemptions > 0
    assert [o.token_ids for o in outs] == reference_tokens
    assert llm.engine.block_manager.num_free_blocks == 6  # every block returned


def test_seeded_sampling_is_reproducible_whatever_the_batch():
    params = SamplingParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=1234, ignore_eos=True)
    alone = tiny().generate([PROMPTS[2]], params)[0].token_ids
    batched = tiny().generate([PROMPTS[0], PROMPTS[2], PROMPTS[4]], params)[1].token_ids
    assert alone == batched
    other = tiny().generate([PROMPTS[2]], SamplingParams(max_tokens=10, temperature=1.0, seed=99, ignore_eos=True))
    assert other[0].token_ids != alone


def test_top_k_one_is_greedy_and_min_p_one_is_greedy(reference_tokens):
    for params in (SamplingParams(max_tokens=12, temperature=1.0, top_k=1, ignore_eos=True, seed=3),
                   SamplingParams(max_tokens=12, temperature=0.7, min_p=1.0, ignore_eos=True, seed=3)):
        assert [o.token_ids for o in tiny().generate(PROMPTS, params)] == reference_tokens


def test_stop_token_ids_and_eos_end_a_request(reference_tokens):
    first = reference_tokens[1][0]
    out = tiny().generate([PROMPTS[1]], SamplingParams(max_tokens=12, temperature=0, stop_token_ids=(first,)))[0]
    assert out.token_ids == [first] and out.finish_reason == "stop"


def test_stop_string_cuts_the_text():
    llm = tiny()
    text = llm.generate([PROMPTS[3]], GREEDY)[0].text
    probe = next((text[i:i + 2] for i in range(1, len(text) - 1) if text[i:i + 2].isprintable()
                  and text[i:i + 2].strip() and text.find(text[i:i + 2]) == i), None)
    if probe is None:
        pytest.skip("the random model produced no printable text to stop on")
    out = llm.generate([PROMPTS[3]], SamplingParams(max_tokens=12, temperature=0, ignore_eos=True, stop=(probe,)))[0]
    assert out.finish_reason == "stop" and out.text == text[:text.find(probe)]


def test_logprobs_are_returned_for_each_token():
    out = tiny().generate([PROMPTS[1]], SamplingParams(max_tokens=5, temperature=0, ignore_eos=True, logprobs=3))[0]
    assert len(out.logprobs) == 5
    for tok, lp in zip(out.token_ids, out.logprobs):
        assert lp.token_id == tok and len(lp.top) == 3
        assert lp.top[0][0] == tok and lp.logprob == pytest.approx(lp.top[0][1]) and lp.logprob <= 0


def test_prompts_that_can_never_fit_get_a_clear_error():
    llm = tiny(max_model_len=32)
    with pytest.raises(PromptTooLongError, match="context is 32 tokens"):
        llm.engine.add_request(list(range(40)), GREEDY)
    small = tiny(num_kv_blocks=2)
    with pytest.raises(PromptTooLongError, match="KV blocks"):
        small.engine.add_request(list(range(40)), GREEDY)


def test_generation_stops_at_the_context_length():
    out = tiny(max_model_len=20).generate([list(range(1, 16))], SamplingParams(max_tokens=50, temperature=0, ignore_eos=True))[0]
    assert len(out.token_ids) == 5 and out.finish_reason == "length"


def test_a_stop_string_late_in_a_long_output_cuts_where_the_whole_text_says():
    llm = tiny()
    long = SamplingParams(max_tokens=200, temperature=0, ignore_eos=True)
    text = llm.generate([PROMPTS[3]], long)[0].text
    probe = next((text[i:i + 3] for i in range(len(text) // 2, len(text) - 2) if text[i:i + 3].isprintable()
                  and text[i:i + 3].strip() and text.find(text[i:i + 3]) == i), None)
    if probe is None:
        pytest.skip("the random model produced no printable text to stop on")
    out = llm.generate([PROMPTS[3]], SamplingParams(max_tokens=200, temperature=0, ignore_eos=True, stop=(probe,)))[0]
    assert out.finish_reason == "stop" and out.text == text[:text.find(probe)]
