"""The piecewise graphs' split of a step (graph pieces between eager attentions, through static
buffers) on the CPU: each piece run where a GPU would replay its graph gives the model's logits,
for mixed steps with prefill, decode and padding rows, a smaller step after a larger one (stale
rows in the buffers) and a prompt whose prefix is cached (the paged prefill kernel's path)."""

import torch

from pdtune import LLM, SamplingParams
from pdtune.executor.cuda_graphs import PiecewiseGraphs


class EagerPieces(PiecewiseGraphs):
    """Runs each piece where the GPU replays its graph."""

    def _capture(self, size: int) -> None:
        self.graphs[size] = [None] * (len(self.model.layers) + 1)

    def _replay(self, size: int, index: int) -> None:
        self._piece(index, size)


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
