"""The piecewise graphs' split of a step (graph pieces between eager attentions, through static
buffers) on the CPU: each piece run where a GPU would replay its graph gives the model's logits,
for mixed steps with prefill, decode and padding rows, a smaller step after a larger one (stale
rows in the buffers) and a prompt whose prefix is cached (the paged prefill kernel's path); and
pdmux's prefill blocks through them, one batch at a time holding the buffers."""

import dataclasses
import gc

import pytest
import torch

from pdtune import LLM, SamplingParams
from pdtune.executor.cuda_graphs import PiecewiseGraphs
from pdtune.executor.pdmux import PrefillJob
from pdtune.perf import step_bench
from pdtune.scheduler.scheduler import StepPlan

GREEDY = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
PROMPTS = [list(range(1, n + 1)) for n in (1, 7, 16, 17, 40, 70)] + [[5, 9, 200] * 11]


class EagerPieces(PiecewiseGraphs):
    """Runs each piece where the GPU replays its graph."""

    def _capture(self, key, stream, size: int) -> None:
        self.graphs[key, size] = [None] * (len(self.model.layers) + 1)

    def _replay(self, key, index: int) -> None:
        self._piece(index, key[1])


def _mixed_plan(engine, prompt_lens):
    """The chunked scheduler's next step once fresh prompts arrive beside decoding sequences."""
    for i, n in enumerate(prompt_lens):
        engine.add_request(list(range(3 + i, 3 + i + n)), SamplingParams(max_tokens=16, ignore_eos=True))
    return engine.stepper.policy.plan(engine.scheduler)


@torch.inference_mode()
def test_pieces_between_eager_attentions_give_the_models_logits():
    engine = LLM("tiny", load_format="dummy", num_kv_blocks=64, seed=0, mode="chunked", max_num_batched_tokens=256,
                 overlap_scheduling=False).engine
    runner = engine.runner
    runner.pad_steps, runner.padded_rows_max = True, 256  # pad as on a GPU
    pieces = EagerPieces(runner.model, runner.row_buckets(256), pool=object())
    hits = []
    for prompt_lens in ([20, 9], [70, 33], [5], [70]):  # the last repeats a prompt: a prefix-cache hit
        plan = _mixed_plan(engine, prompt_lens)
        inputs = runner.prepare(plan)
        hits.append(inputs.meta.fresh_prefill_lens is None)
        assert inputs.meta.num_padding_tokens > 0 and pieces.fits(len(inputs.input_ids))
        kv = runner.kv_cache.clone()
        runner.piecewise = None
        eager = runner._eager_logits(inputs)
        written = runner.kv_cache.clone()
        runner.kv_cache.copy_(kv)
        runner.piecewise = pieces
        piecewise = runner._eager_logits(inputs)
        torch.testing.assert_close(piecewise, eager, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(runner.kv_cache, written)
        runner.piecewise = None
        engine.step()  # serves this step, so the next one decodes beside the new prompts
    assert any(c.num_new_tokens == 1 for c in plan.chunks) and any(c.num_new_tokens > 1 for c in plan.chunks)
    assert not hits[0] and hits[-1]  # fresh prompts (the fused kernel) and cached prefixes (the paged one)


def pdmux_in_pieces(**config) -> LLM:
    """A pdmux engine on the simulated executor whose prefill blocks of up to 256 rows take
    the pieces (steps padded as on a GPU)."""
    llm = LLM("tiny", load_format="dummy", mode="pdmux", **config)
    runner, executor = llm.engine.runner, llm.engine.stepper.executor
    runner.pad_steps, runner.padded_rows_max = True, 256
    executor.pieces = EagerPieces(runner.model, runner.row_buckets(256), pool=object())
    return llm


@pytest.mark.parametrize("policy", [{}, dict(pdmux_policy="static", pdmux_static_split=(96, 36), pdmux_gang=1)])
def test_pdmux_prefill_blocks_in_pieces_give_sequentials_tokens(policy):
    reference = [o.token_ids for o in LLM("tiny", load_format="dummy", mode="sequential").generate(PROMPTS, GREEDY)]
    llm = pdmux_in_pieces(**policy)
    pieces = llm.engine.stepper.executor.pieces
    batches = []
    begin = pieces.begin
    pieces.begin = lambda ids, *rest: batches.append(len(ids)) or begin(ids, *rest)
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY)] == reference
    assert batches and all(n % 64 == 0 for n in batches)  # padded row counts, each a bucket


@torch.inference_mode()
def test_one_prefill_batch_at_a_time_holds_the_pieces_and_a_dropped_one_frees_them():
    llm = pdmux_in_pieces()
    engine = llm.engine
    executor, part = engine.stepper.executor, engine.stepper.executor.partitions[0]
    inputs = dataclasses.replace(step_bench.prefill_step_inputs(engine, 64), num_logits=1)  # its last row's logits

    def job():
        return PrefillJob(StepPlan(), inputs, len(executor.model.layers))

    first, second = job(), job()
    executor.launch_prefill(first, part, 1)
    executor.launch_prefill(second, part, 1)  # overtakes while the first holds the buffers: eager
    assert first.in_pieces and not second.in_pieces
    executor.launch_prefill(second, part, 1)
    executor.launch_prefill(first, part, 1)
    assert first.logits.shape == (1, engine.loaded.arch.vocab_size)
    torch.testing.assert_close(first.logits, second.logits, atol=1e-5, rtol=1e-5)
    probe = job()
    executor.launch_prefill(probe, part, 1)  # the first launched its last layer: the probe may take them
    assert probe.in_pieces
    del probe  # dropped unfinished (a timing probe)
    gc.collect()
    after = job()
    executor.launch_prefill(after, part, 1)
    assert after.in_pieces


def test_graphs_are_captured_with_the_garbage_collector_paused_after_dead_cycles_went():
    """A collection mid-capture may destroy a dead engine's graph, which invalidates the capture."""
    model = LLM("tiny", load_format="dummy", mode="sequential").engine.runner.model
    freed, seen = [], []

    class Cycle:
        def __init__(self):
            self.me = self

        def __del__(self):
            freed.append(True)

    class Watched(EagerPieces):
        def _capture(self, key, stream, size: int) -> None:
            seen.append((bool(freed), gc.isenabled()))
            super()._capture(key, stream, size)

    Cycle()
    Watched(model, [64, 128], pool=object())
    assert seen == [(True, False)] * 2 and gc.isenabled()
