"""Data-parallel replicas (processes) behind the SLO-aware dispatcher."""

import pytest

from pdtune import LLM, SamplingParams
from pdtune.model.arch import ModelArch
from pdtune.model.loader import PRESET_DIR, read_json
from pdtune.planner.dispatch import SLODispatcher, StepCost

GREEDY = SamplingParams(max_tokens=8, temperature=0, ignore_eos=True)


def dispatcher(slo_ttft_s=2.0, slo_tpot_s=0.05, replicas=2) -> SLODispatcher:
    arch = ModelArch.from_hf_config(read_json(f"{PRESET_DIR}/llama-3.1-8b.json"))
    return SLODispatcher(replicas, 16, StepCost(arch, 2), slo_ttft_s, slo_tpot_s, cached_blocks_per_replica=1000)


def test_a_later_turn_goes_where_its_prefix_is_cached():
    d = dispatcher()
    first = list(range(100, 420))
    r = d.choose(first)
    d.report(r, waiting_tokens=0, running=1, context_tokens=330)
    d.choose(list(range(5000, 5100)))  # unrelated traffic lands on the idle replica
    assert d.choose(first + [7] * 50) == r


def test_load_spreads_and_an_overloaded_replica_is_avoided_even_with_its_cache():
    d = dispatcher(slo_ttft_s=0.5)
    prompt = list(range(100, 2100))
    r = d.choose(prompt)
    assert d.choose(list(range(9000, 11000))) != r  # the other replica has no queue
    d.report(r, waiting_tokens=60_000, running=200, context_tokens=400_000)  # a long queue: misses TTFT now
    d.report(1 - r, waiting_tokens=0, running=0, context_tokens=0)
    assert d.choose(prompt + [1] * 10) == 1 - r
    ttft, tpot = d.predict(r, 2010, 2000)
    assert ttft > 0.5 and tpot < 0.05


def test_two_replicas_give_the_tokens_of_one_engine(tiny_hf_model):
    folder = tiny_hf_model("llama").folder
    prompts = [list(range(3, 3 + n)) for n in (1, 9, 17, 40, 33, 5)]
    ref = [o.token_ids for o in LLM(folder, num_kv_blocks=64).generate(prompts, GREEDY)]
    with LLM(folder, num_kv_blocks=64, data_parallel_size=2) as llm:
        got = llm.generate(prompts, GREEDY)
        assert llm.engine.num_preemptions == 0 and llm.engine.prefix_cache_hit_rate == 0.0
    assert [o.token_ids for o in got] == ref


def test_replicas_reject_what_one_engine_rejects(tiny_hf_model):
    from pdtune.errors import PromptTooLongError

    with LLM(tiny_hf_model("llama").folder, num_kv_blocks=4, data_parallel_size=2) as llm:
        with pytest.raises(PromptTooLongError, match="KV blocks"):
            llm.engine.add_request(list(range(3, 200)), GREEDY)


def test_run_batch_and_bench_with_two_replicas(tmp_path):
    import json

    from typer.testing import CliRunner

    from pdtune.cli.app import app

    tiny = ["--model", "tiny", "--load-format", "dummy", "--num-kv-blocks", "32", "-dp", "2"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
                                       "body": {"prompt": f"hello {i}", "max_tokens": 4, "temperature": 0}}) + "\n"
                           for i in range(6)))
    runner = CliRunner()
    result = runner.invoke(app, ["run-batch", str(src), "-o", str(tmp_path / "o.jsonl"), *tiny])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 6
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "6", "--rate", "50", "--mode",
                                 "chunked", "--max-prompt-len", "32", "--max-output-len", "4", "--out",
                                 str(tmp_path / "b"), *tiny])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["summaries"][0]["requests"] == 6


def test_with_a_perf_model_the_dispatcher_predicts_from_its_whole_gpu_fits(tmp_path, tiny_hf_model):
    import json

    from pdtune.perf.model_costs import PrefillShape
    from pdtune.perf.perf_model import KIND, VERSION, read_perf_model

    def line(**coef):
        return {"coef_ms": coef, "rms_residual_ms": 0.0}

    alone = {"prefill_sms": 132, "decode_sms": 0, "decode_fit": None, "contention_factor": 1.0,
             "layer_fit": line(const=0.5, tokens=1e-3, square=1e-6, cross=2e-6)}
    decode = {"prefill_sms": 0, "decode_sms": 132, "layer_fit": None, "contention_factor": 1.0,
              "decode_fit": line(const=4.0, context_tokens=1e-4, batch=0.02)}
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"kind": KIND, "version": VERSION, "model": "llama-3.1-8b", "dtype": "torch.bfloat16",
                                "tensor_parallel_size": 1, "environment": {"gpu": None}, "partitions": [
                                    {"name": "132/0", **alone}, {"name": "0/132", **decode}]}))
    arch = ModelArch.from_hf_config(read_json(f"{PRESET_DIR}/llama-3.1-8b.json"))
    cost = StepCost(arch, 2, perf_model=read_perf_model(str(path)))
    assert cost.decode_s(10, 20_000) == pytest.approx((4.0 + 2.0 + 0.2) / 1e3)
    assert cost.prefill_s(PrefillShape.single(100, 50)) == pytest.approx(
        (0.5 + 0.1 + 0.01 + 0.01) * arch.num_layers / 1e3)
    d = SLODispatcher(2, 16, cost, 2.0, 0.05, cached_blocks_per_replica=1000)
    d.report(0, waiting_tokens=0, running=10, context_tokens=20_000)
    ttft, tpot = d.predict(0, 100, 0)
    assert tpot == pytest.approx(cost.decode_s(11, 20_100))
    assert ttft == pytest.approx(cost.prefill_s(PrefillShape.single(100)) + cost.decode_s(10, 20_000))


def test_the_replicas_matmul_rate_counts_each_gpu_their_ranks_run_on_once(monkeypatch):
    import torch

    from pdtune.executor.data_parallel import DataParallelEngine
    from pdtune.perf.timing import Ceilings

    measured = [Ceilings(1e12, 700e12), Ceilings(1e12, 800e12)]  # each replica's first GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert DataParallelEngine._matmul_flops_per_s(measured, ranks=4) == pytest.approx(4 * 750e12)  # 2 replicas x TP 2
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert DataParallelEngine._matmul_flops_per_s(measured, ranks=4) == pytest.approx(2 * 750e12)  # ranks share GPUs
    assert DataParallelEngine._matmul_flops_per_s([measured[0], None], ranks=2) is None
