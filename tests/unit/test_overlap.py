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


@pytest.mark.parametrize("mode,budget", [("sequential", 2048), ("chunked", 2048), ("chunked", 8), ("pdmux", 2048),
                                         ("pdmux", 8)])
def test_mixed_sampling_stops_and_logprobs_match_the_synchronous_loop(mode, budget):
    greedy = tiny(overlap_scheduling=False).generate(PROMPTS, GREEDY)
    stop_on = greedy[2].token_ids[3]  # ends request 2 (and maybe others) mid-way
    params = [GREEDY,
              SamplingParams(max_tokens=9, temperature=0.9, top_p=0.9, seed=7, ignore_eos=True),
              SamplingParams(max_tokens=12, temperature=0, stop_token_ids=(stop_on,)),
              SamplingParams(max_tokens=6, temperature=0, ignore_eos=True, logprobs=3),
              SamplingParams(max_tokens=12, temperature=0.7, top_k=5, seed=3, ignore_eos=True, logprobs=2),
              SamplingParams(max_tokens=1, temperature=0, ignore_eos=True)]
    kw = dict(mode=mode, max_num_batched_tokens=budget, pdmux_prefill_tokens=budget)
    sync, _ = outputs(False, PROMPTS, params, **kw)
    overlapped, llm = outputs(True, PROMPTS, params, **kw)
    assert_same(overlapped, sync)
    assert sync[2].finish_reason == "stop" and len(sync[2].token_ids) == 4 and sync[3].logprobs
    assert llm.engine.block_manager.num_free_blocks == llm.engine.num_kv_blocks


@pytest.mark.parametrize("mode", ["sequential", "chunked", "pdmux"])
def test_preemption_and_prefix_hits_match_the_synchronous_loop(mode):
    shared = [3, 1, 4, 1, 5, 9, 2, 6] * 5
    prompts = PROMPTS + [shared + [7], shared + [8, 8]]
    kw = dict(mode=mode, num_kv_blocks=7, max_num_batched_tokens=64, pdmux_prefill_tokens=64)
    sync, _ = outputs(False, prompts, GREEDY, **kw)
    overlapped, llm = outputs(True, prompts, GREEDY, **kw)
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



def clashes_with_the_decode_in_flight(llm: LLM) -> tuple[list[int], dict]:
    """Watches an overlapped pdmux engine: the blocks each prefill it starts would write while
    the decode step in flight reads them, or share while that step writes them (filled in as it
    runs), and each decode launch's (read, written) blocks."""
    engine, ex = llm.engine, llm.engine.stepper.executor
    bs = engine.config.block_size
    uses, clashes = {}, []
    launch_decode, start_prefill = ex.launch_decode, ex.start_prefill

    def recording_decode(partition, inputs, previous=None, plan=None):
        launch = launch_decode(partition, inputs, previous, plan)
        reads = {b for c in inputs.chunks for b in c.seq.block_table}
        uses[id(launch)] = reads, {int(s) // bs for s in inputs.meta.slot_mapping if s >= 0}
        return launch

    def checked_prefill(plan):
        flight = engine.stepper.in_flight
        if flight is not None:
            reads, writes = uses[id(flight.launch)]
            for c in plan.chunks:
                table = list(c.seq.block_table)
                clashes.extend(set(table[c.seq.num_computed_tokens // bs:]) & reads)
                clashes.extend(set(table) & writes)
        return start_prefill(plan)

    ex.launch_decode, ex.start_prefill = recording_decode, checked_prefill
    return clashes, uses


FIRST = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9]  # 15 tokens: its first decode step fills block 0


def test_pdmux_prefills_never_write_blocks_freed_under_the_decode_in_flight():
    """An overlapped pdmux decode step runs on its stream while the host reads back the step
    before it and starts prefills on another stream: the blocks of requests that ended (a stop
    token, with a row in the step in flight) or were preempted meanwhile are held until it is done."""
    llm = tiny(mode="pdmux", num_kv_blocks=8, pdmux_prefill_tokens=64)
    clashes, uses = clashes_with_the_decode_in_flight(llm)
    first_out = tiny(overlap_scheduling=False).generate([FIRST], GREEDY)[0].token_ids
    prompts = [FIRST, FIRST + first_out[:1] + [7, 7], *PROMPTS]
    params = [SamplingParams(max_tokens=12, temperature=0, stop_token_ids=(first_out[2],))] + [GREEDY] * 7
    reference = tiny(mode="sequential", num_kv_blocks=8).generate(prompts, params)
    assert [o.token_ids for o in llm.generate(prompts, params)] == [o.token_ids for o in reference]
    assert not clashes and len(uses) > 10
    engine = llm.engine
    assert engine.block_manager.num_free_blocks == engine.num_kv_blocks and engine.stepper.in_flight is None


def test_pdmux_prefills_never_share_a_block_the_decode_in_flight_fills():
    """A block that an overlapped decode step completes is published for prefix reuse only once
    that step is read back: a prompt arriving meanwhile with the same tokens does not read it."""
    llm = tiny(mode="pdmux", num_kv_blocks=8, pdmux_prefill_tokens=64)
    clashes, uses = clashes_with_the_decode_in_flight(llm)
    engine = llm.engine
    first_out = tiny(overlap_scheduling=False).generate([FIRST], GREEDY)[0].token_ids
    seqs = [engine.add_request(FIRST, GREEDY)]
    while seqs[0].num_output_tokens == 0:
        engine.step()
    engine.step()  # launches the first decode step, which writes the last slot of block 0
    seqs.append(engine.add_request(FIRST + first_out[:1] + [7, 7], GREEDY))
    while engine.has_unfinished():
        engine.step()
    reference = tiny(mode="sequential").generate([s.prompt_token_ids for s in seqs], GREEDY)
    assert [s.output_token_ids for s in seqs] == [o.token_ids for o in reference]
    assert not clashes and uses
