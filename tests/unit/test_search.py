"""pdtune search on the tiny model (CPU, simulated pdmux executor): the emitted config drives an
engine, trial plans reach the planner, shared storage accumulates one study, mismatched joins and
bad input are refused cleanly."""

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from pdtune import LLM, SamplingParams
from pdtune.cli.app import app
from pdtune.config import EngineConfig, build_engine_config
from pdtune.engine import Engine
from pdtune.errors import PdtuneError
from pdtune.model.loader import PRESET_DIR
from pdtune.search import SearchConfig, StudyMismatchError, run_search
from pdtune.search.study import join_study
from pdtune.slo import parse_slo

TINY = EngineConfig(model="tiny", load_format="dummy", mode="pdmux")
GREEDY = SamplingParams(max_tokens=10, temperature=0, ignore_eos=True)
PROMPTS = [list(range(1, n + 1)) for n in (1, 7, 17, 40)] + [[5, 9, 200] * 11]


def search_config(engine: EngineConfig = TINY, **kw) -> SearchConfig:
    """A loose SLO over a few short requests: each trial serves in well under a second."""
    kw = {"rate": 30.0, "workload": "random", "num_requests": 6, "trials": 3, "max_prompt_len": 40,
          "max_output_len": 6, "prefill_token_choices": (16, 64), "warmup_requests": 2, **kw}
    return SearchConfig(engine, parse_slo("ttft=3s,tpot=300ms"), **kw)


@pytest.fixture(scope="module")
def first_search(tmp_path_factory):
    """One search on a fresh sqlite study, with every planner decision traced."""
    folder = tmp_path_factory.mktemp("search")
    storage = f"sqlite:///{folder / 'study.db'}"
    trace = folder / "trace.jsonl"
    cfg = search_config(EngineConfig(model="tiny", load_format="dummy", mode="pdmux", trace_path=str(trace)),
                        storage=storage, study_name="s", out=str(folder / "search.json"))
    return cfg, run_search(cfg), trace


def test_the_emitted_config_drives_pdmux_with_the_same_greedy_tokens_as_sequential(first_search):
    cfg, result, _ = first_search
    s = result["search"]
    assert len(s["trials"]) == 3 and all(t["state"] == "COMPLETE" for t in s["trials"])
    best = max(s["trials"], key=lambda t: t["attainment"])
    assert s["best_attainment"] == best["attainment"] > 0 and 0 < s["adaptive_attainment"] <= 1
    config = build_engine_config(cfg.out)
    assert (config.mode, config.pdmux_policy) == ("pdmux", "static")
    assert (list(config.pdmux_static_split), config.pdmux_gang) == (s["best"]["split"], s["best"]["gang"])
    assert config.pdmux_prefill_tokens == s["best"]["prefill_tokens"] and config.slo_tpot_ms == 300
    assert (config.model, config.tensor_parallel_size, config.data_parallel_size) == ("tiny", 1, 1)
    assert len(pd.read_csv(cfg.out.replace(".json", "-trials.csv"))) == 3
    reference = LLM("tiny", load_format="dummy", mode="sequential").generate(PROMPTS, GREEDY)
    outs = LLM(**vars(config)).generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in outs] == [o.token_ids for o in reference]


def test_each_trial_runs_the_split_and_gang_it_suggested(first_search):
    cfg, result, trace = first_search
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    study = optuna.load_study(study_name="s", storage=cfg.storage)
    splits = set()
    runs = [r["run"] for r in rows]  # each row tagged with the run that made it
    assert runs[0] == "warm-up" and runs[-1] == "adaptive" and set(runs) == {
        "warm-up", "adaptive", *(f"trial {t.number}" for t in study.trials)}
    for trial in study.trials:
        beside = [r for r in rows if r["run"] == f"trial {trial.number}" and r["decode_batch"] and r["gang"]
                  and r["prefill_tokens"]]  # prefill blocks beside a decode step: the static plan's steps
        assert beside, f"trial {trial.number} ran no prefill beside decode"
        p, d = map(int, trial.params["split"].split("/"))
        assert {r["split"] for r in beside} == {f"{132 - d}/{d}"}  # simulated: prefill gets the other SMs
        assert max(r["gang"] for r in beside) == trial.params["gang"]  # tiny has 2 layers: gang 1 or 2
        splits.add((p, d))
    assert len(splits) > 1  # the trials did try different plans


def test_a_second_process_adds_its_trials_to_the_shared_study(first_search):
    cfg, _, _ = first_search
    again = run_search(search_config(storage=cfg.storage, study_name="s", trials=2))
    numbers = [t["number"] for t in again["search"]["trials"]]
    assert numbers == [0, 1, 2, 3, 4] and all(t["attainment"] is not None for t in again["search"]["trials"])


def test_a_journal_study_is_shared_and_refuses_another_model_or_size(tmp_path):
    journal = str(tmp_path / "study.log")
    run_search(search_config(storage=journal, study_name="j", trials=1))
    second = run_search(search_config(storage=journal, study_name="j", trials=1))
    assert [t["state"] for t in second["search"]["trials"]] == ["COMPLETE", "COMPLETE"]
    other_model = tmp_path / "other-model"  # tiny's shape under another name: a model folder of its own
    other_model.mkdir()
    (other_model / "config.json").write_text((Path(PRESET_DIR) / "tiny.json").read_text())
    other = EngineConfig(model=str(other_model), load_format="dummy", mode="pdmux")
    with pytest.raises(StudyMismatchError, match="model=tiny.*pick another --study-name"):
        run_search(search_config(other, storage=journal, study_name="j"))
    with pytest.raises(StudyMismatchError, match="data_parallel_size=1; this search has data_parallel_size=2"):
        run_search(search_config(EngineConfig(model="tiny", load_format="dummy", mode="pdmux", data_parallel_size=2),
                                 storage=journal, study_name="j"))
    assert len(optuna.load_study(study_name="j", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal))).trials) == 2  # refused joins added nothing


def test_joining_with_another_tensor_parallel_size_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'tp.db'}"
    join_study(url, "tp", {"model": "m", "tensor_parallel_size": 1}, seed=0)
    with pytest.raises(StudyMismatchError, match="tensor_parallel_size=1; this search has tensor_parallel_size=2"):
        join_study(url, "tp", {"model": "m", "tensor_parallel_size": 2}, seed=0)


def test_set_pdmux_plan_reaches_stepper_and_planner_and_refuses_other_modes():
    engine = Engine(EngineConfig(model="tiny", load_format="dummy", mode="pdmux"))
    engine.set_pdmux_plan("static", (88, 44), 2, 512)
    for config in (engine.config, engine.stepper.config, engine.stepper.planner.config):
        assert (config.pdmux_policy, config.pdmux_static_split, config.pdmux_gang,
                config.pdmux_prefill_tokens) == ("static", (88, 44), 2, 512)
    with pytest.raises(PdtuneError, match="not one of the engine's partitions"):
        engine.set_pdmux_plan("static", (50, 50), 1)
    with pytest.raises(PdtuneError, match="needs a split and a gang"):
        engine.set_pdmux_plan("static", (88, 44))
    with pytest.raises(PdtuneError, match="needs an engine in pdmux mode; this one runs 'chunked'"):
        Engine(EngineConfig(model="tiny", load_format="dummy")).set_pdmux_plan("static", (88, 44), 1)


@pytest.mark.parametrize("args, message", [
    (["--slo", "ttft=200"], "bad SLO 'ttft=200'"),
    (["--slo", "ttft=1s,tpot=1s", "--workload", "nope"], "workload 'nope' is neither"),
    (["--slo", "ttft=1s,tpot=1s", "--prefill-tokens", "big"], "bad --prefill-tokens"),
])
def test_user_errors_are_one_line_without_a_traceback(tmp_path, args, message):
    result = CliRunner().invoke(app, ["search", "--rate", "10", "--model", "tiny", "--load-format", "dummy",
                                      "--out", str(tmp_path / "o.json"), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.json").exists()


def test_cli_refuses_a_chunked_config_and_a_mismatched_study(tmp_path):
    chunked = tmp_path / "chunked.json"
    chunked.write_text(json.dumps({"engine": {"mode": "chunked", "model": "tiny", "load_format": "dummy"}}))
    common = ["search", "--slo", "ttft=1s,tpot=100ms", "--rate", "10", "--workload", "random", "--num-requests", "4"]
    result = CliRunner().invoke(app, [*common, "--config", str(chunked)])
    assert result.exit_code == 1 and "tunes the pdmux mode; this config runs 'chunked'" in result.output
    url = f"sqlite:///{tmp_path / 'x.db'}"
    join_study(url, "x", {"model": "llama-3.1-8b"}, seed=0)
    result = CliRunner().invoke(app, [*common, "--model", "tiny", "--load-format", "dummy", "--storage", url,
                                      "--study-name", "x"], env={"COLUMNS": "400"})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: study 'x'" in result.output and "model=llama-3.1-8b" in result.output


def test_a_short_cli_search_prints_its_trials_and_writes_the_config(tmp_path):
    out = tmp_path / "best.json"
    result = CliRunner().invoke(app, ["search", "--slo", "ttft=3s,tpot=300ms", "--rate", "30", "--workload", "random",
                                      "--num-requests", "4", "--trials", "2", "--max-prompt-len", "24",
                                      "--max-output-len", "4", "--prefill-tokens", "16,4096", "--model", "tiny",
                                      "--load-format", "dummy", "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())  # rich wraps long lines
    assert "trial 2/2" in printed and "adaptive" in printed and "use it with --config" in printed
    assert "headroom" in printed
    engine = json.loads(out.read_text())["engine"]
    assert engine["pdmux_prefill_tokens"] in (16, 2048)  # 4096 capped at tiny's 2048-token context


def test_a_plan_set_on_data_parallel_replicas_reaches_each_planner(tmp_path):
    trace = tmp_path / "trace.jsonl"  # both replicas append their decisions here
    llm = LLM("tiny", load_format="dummy", mode="pdmux", data_parallel_size=2, trace_path=str(trace))
    try:
        llm.engine.set_pdmux_plan("static", (80, 52), 2, 16)
        assert llm.engine.config.pdmux_static_split == (80, 52)
        with pytest.raises(PdtuneError, match="not one of the engine's partitions"):
            llm.engine.set_pdmux_plan("static", (1, 2), 1)
        outs = llm.generate(PROMPTS, GREEDY)
    finally:
        llm.close()
    reference = LLM("tiny", load_format="dummy", mode="sequential").generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in outs] == [o.token_ids for o in reference]
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    beside = [r for r in rows if r["decode_batch"] and r["gang"] and r["prefill_tokens"]]
    assert beside and {(r["split"], r["gang"]) for r in beside} == {("80/52", 2)}
    assert {r["replica"] for r in rows} == {0, 1}  # each row says which replica planned it


def test_ties_on_attainment_go_to_the_plan_with_more_headroom_and_never_outrank_a_request():
    from pdtune.search.runner import headroom, score

    slo = parse_slo("ttft=2s,tpot=40ms")
    summary = {"ttft_s": {"p90": 0.5}, "tpot_s": {"p90": 0.030}}
    assert headroom(summary, slo) == pytest.approx(0.25)  # TPOT is the tighter: 30 of 40 ms
    assert headroom({"ttft_s": {"p90": 5.0}, "tpot_s": {"p90": float("nan")}}, slo) == -1.0  # clipped
    assert headroom({"ttft_s": {"p90": float("nan")}, "tpot_s": {"p90": float("nan")}}, slo) == -1.0
    n = 200
    assert score(1.0, 0.6, n) > score(1.0, 0.1, n)
    assert score(1.0 - 1 / n, 1.0, n) < score(1.0, -1.0, n)  # one more request within the SLO wins
    assert score(1.0, 1.0, n, fell_behind=True) < score(0.0, -1.0, n)  # keeping up with the arrivals comes first


def test_trials_record_attainment_headroom_and_their_score(first_search):
    _, result, _ = first_search
    trials = result["search"]["trials"]
    assert all(-1 <= t["headroom"] <= 1 and t["score"] == pytest.approx(
        t["attainment"] + 0.4 / 6 * t["headroom"] - 2 * t["fell_behind"]) for t in trials)
    assert result["search"]["best"]["score"] == max(t["score"] for t in trials)


def test_report_re_renders_a_saved_search(first_search):
    cfg, result, _ = first_search
    shown = CliRunner().invoke(app, ["report", cfg.out], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert f"search {result['search']['study']}" in shown.output and "adaptive" in shown.output


def test_a_study_made_on_another_gpu_is_refused(tmp_path, monkeypatch):
    import pdtune.search.runner as runner

    url = f"sqlite:///{tmp_path / 'gpu.db'}"
    monkeypatch.setattr(runner, "environment", lambda: {"gpu": "NVIDIA H100 80GB HBM3"})
    run_search(search_config(storage=url, study_name="g", trials=1))
    monkeypatch.setattr(runner, "environment", lambda: {"gpu": "NVIDIA H200"})
    with pytest.raises(StudyMismatchError, match="device=NVIDIA H100 80GB HBM3; this search has device=NVIDIA H200"):
        run_search(search_config(storage=url, study_name="g", trials=1))


def test_the_table_names_one_machine_in_its_title_and_several_in_a_column():
    from rich.console import Console

    from pdtune.report.search_report import search_table

    def result(machines):
        trials = [{"number": i, "state": "COMPLETE", "split": [108, 24], "gang": 2, "prefill_tokens": 4096,
                   "attainment": 0.9, "score": 0.9, "headroom": 0.1, "ttft_p90_ms": 900.0, "tpot_p90_ms": 20.0,
                   "machine": m} for i, m in enumerate(machines)]
        adaptive = {"attainment": 0.95, "headroom": 0.2, "ttft_p90_ms": 800.0, "tpot_p90_ms": 19.0}
        return {"search": {"study": "s", "workload": "mixed", "rate": 8.75, "slo": "ttft=2s", "trials": trials,
                           "adaptive": adaptive}}

    def shown(machines):
        console = Console(width=250, record=True)
        console.print(search_table(result(machines)))
        return console.export_text()

    one = shown(["vm (simulated NVIDIA H100 80GB HBM3)"] * 2)
    assert "2 trials on vm (simulated NVIDIA H100 80GB HBM3)" in one and "machine" not in one
    two = shown(["a (NVIDIA H100 80GB HBM3)", "b (NVIDIA H100 80GB HBM3)"])
    assert "machine" in two and "b (NVIDIA H100 80GB HBM3)" in two and "this run" in two
