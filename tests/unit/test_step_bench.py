"""Synthetic decode steps of the GPU benchmarks, on the CPU: the long-context case's layout and
its result against the same sequences decoded one by one."""

import torch

from pdtune import LLM
from pdtune.model.attention import AttentionMetadata
from pdtune.perf import step_bench


def test_decode_inputs_with_a_long_first_sequence_have_disjoint_blocks_and_the_right_slots():
    engine = LLM("tiny", load_format="dummy", num_kv_blocks=64).engine
    bs = engine.config.block_size
    ids, positions, slots, seq_lens, bt = step_bench.decode_inputs(engine, 3, 20, long_context=100)
    assert positions.tolist() == [100, 20, 20] and seq_lens.tolist() == [101, 21, 21]
    blocks = [bt[b, : -(-n // bs)].tolist() for b, n in enumerate(seq_lens.tolist())]
    assert bt.shape[1] == len(blocks[0]) and len({x for row in blocks for x in row}) == sum(map(len, blocks))
    for b, pos in enumerate(positions.tolist()):
        assert slots[b] == blocks[b][pos // bs] * bs + pos % bs
    assert step_bench.decode_inputs(engine, 8, 200) is None  # 8 x 13 blocks > 64


def test_a_skewed_decode_batch_gives_each_sequence_its_own_result():
    """Row b of the batched step equals sequence b decoded alone over the same cache."""
    engine = LLM("tiny", load_format="dummy", num_kv_blocks=64).engine
    step_bench.fill_kv_randomly(engine)
    model = engine.runner.model
    ids, positions, slots, seq_lens, bt = step_bench.decode_inputs(engine, 3, 20, long_context=100)
    with torch.inference_mode():
        batched = model.compute_logits(model(ids, positions, AttentionMetadata(slots, 0, None, None, None, seq_lens, bt)))
        for b in range(3):
            meta = AttentionMetadata(slots[b:b + 1], 0, None, None, None, seq_lens[b:b + 1], bt[b:b + 1])
            alone = model.compute_logits(model(ids[b:b + 1], positions[b:b + 1], meta))
            torch.testing.assert_close(batched[b], alone[0], atol=1e-4, rtol=1e-4)


def test_bench_kernels_adds_a_long_context_row_per_batch_with_its_own_floor(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from pdtune.cli.app import app

    result = CliRunner().invoke(app, ["bench-kernels", "--model", "tiny", "--device", "cpu", "--batches", "1,2",
                                      "--contexts", "32", "--long-context", "96", "--prefill-tokens", "16",
                                      "--max-model-len", "256", "--no-transformers", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "decode.csv")
    assert rows[["batch", "context"]].values.tolist() == [[1, 32], [2, 32], [2, 32]]
    assert (rows["back_to_back_ms"] > 0).all() and (rows["eager_ms"] > 0).all()
    uniform, skewed = rows.iloc[1], rows.iloc[2]
    assert pd.isna(uniform["long_context"]) and skewed["long_context"] == 96
    kv_per_token = (skewed["roofline_ms"] - uniform["roofline_ms"]) / (96 - 32)
    assert kv_per_token > 0 and abs(uniform["roofline_ms"] - rows.iloc[0]["roofline_ms"] - 32 * kv_per_token) < 1e-9


def test_bench_kernels_refuses_lengths_past_the_context_with_a_message(tmp_path):
    from typer.testing import CliRunner

    from pdtune.cli.app import app

    result = CliRunner().invoke(app, ["bench-kernels", "--model", "tiny", "--device", "cpu", "--batches", "2",
                                      "--contexts", "32", "--long-context", "300", "--prefill-tokens", "16",
                                      "--max-model-len", "256", "--no-transformers", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "--max-model-len 256" in result.output and "Traceback" not in result.output


def test_back_to_back_timing_is_per_call_over_runs_of_calls():
    import time

    from pdtune.perf.timing import time_back_to_back_ms

    calls = []

    def step():
        calls.append(None)
        time.sleep(0.002)

    ms = time_back_to_back_ms(step, torch.device("cpu"), steps=4, repeats=3)
    assert len(calls) == 4 + 4 * 3 and 2.0 <= ms < 50  # one run of steps warms up, then three timed


def test_a_timed_decode_step_is_the_executors_step_with_its_logits():
    """The benchmark times `decode_logits` (the engine's path) on inputs that carry their logits rows."""
    engine = LLM("tiny", load_format="dummy", num_kv_blocks=64).engine
    step_bench.fill_kv_randomly(engine)
    inputs = step_bench.decode_step_inputs(engine, 3, 20, long_context=40)
    model = engine.runner.model
    with torch.inference_mode():
        logits = engine.runner.decode_logits(inputs, None)
        direct = model.compute_logits(model(inputs.input_ids, inputs.positions, inputs.meta))
    torch.testing.assert_close(logits, direct)
    assert inputs.positions.tolist() == [40, 20, 20]
