"""bench: metrics on hand-made timelines, goodput bisection, SLO parsing, open-loop timing, CLI errors."""

import dataclasses
import json
import os
import re

import pytest
from pdtune.workloads.request import WorkloadRequest
from typer.testing import CliRunner

from pdtune.bench.serve import RequestRecord, RunResult, serve_open_loop
from pdtune.bench.summary import attainment, backlog_s, fell_behind, find_goodput, partial_goodput, repeat_spread, summarize_run
from pdtune.cli.app import app
from pdtune.config import EngineConfig
from pdtune.engine import Engine
from pdtune.errors import PdtuneError
from pdtune.request.output import RequestMetrics, RequestOutput
from pdtune.slo import SLO, itl_p99, parse_slo


def record(rid, arrival, token_times, error=None):
    out = RequestOutput(rid, [1, 2, 3], list(range(len(token_times))), "", "length", None,
                        RequestMetrics(arrival, token_times[0], token_times[-1], 0, 0), token_times)
    rec = RequestRecord.from_output(out, start=100.0)
    rec.error = error
    return rec


def test_metrics_of_a_hand_made_timeline():
    # arrivals at 100.0 (run start) + offsets; token times absolute
    a = record("a", 100.0, [100.5, 100.6, 100.7])  # TTFT 0.5, TPOT 0.1
    b = record("b", 101.0, [101.2, 101.5])  # TTFT 0.2, TPOT 0.3
    c = record("c", 102.0, [103.0])  # TTFT 1.0, one token: no TPOT
    assert (a.ttft_s, a.tpot_s, a.e2e_s) == pytest.approx((0.5, 0.1, 0.7))
    assert a.itl_s == pytest.approx([0.1, 0.1]) and b.arrival_s == pytest.approx(1.0)
    run = RunResult("chunked", 1.0, None, [a, b, c], wall_s=4.0, steps=10, engine_s=2.0, harness_s=0.02,
                    prefix_cache_hit_rate=0.0)
    s = summarize_run(run, SLO(ttft_s=0.6, tpot_s=0.2))
    assert s["ttft_s"]["p50"] == pytest.approx(0.5) and s["ttft_s"]["p90"] == pytest.approx(0.9)
    assert s["tpot_s"]["p50"] == pytest.approx(0.2) and s["e2e_s"]["mean"] == pytest.approx((0.7 + 0.5 + 1.0) / 3)
    assert s["output_tokens_per_s"] == pytest.approx(6 / 4.0) and s["request_throughput"] == pytest.approx(0.75)
    assert s["slo_attainment"] == pytest.approx(1 / 3)  # a meets both; b misses TPOT; c misses TTFT
    assert s["slo_misses"] == {"ttft": 1, "tpot": 1, "unserved": 0}
    assert s["harness_overhead"] == pytest.approx(0.01)
    failed = record("d", 100.0, [100.1], error="prompt too long")
    assert attainment(RunResult("x", 1.0, None, [a, failed], 1, 1, 1, 0, 0), SLO(1, 1)) == 0.5


def test_goodput_bisection_finds_a_known_threshold():
    seen = []

    def fake_engine(rate):  # a failing probe stops early
        seen.append(rate)
        return (0.95, False, False) if rate <= 7.3 else (0.5, True, False)

    g = find_goodput(fake_engine, start_rate=1.0, target=0.9, iterations=6)
    assert 7.0 <= g.goodput <= 7.3 and seen[:4] == [1.0, 2.0, 4.0, 8.0]
    assert [p[0] for p in g.points] == seen and all(stopped == (rate > 7.3) for rate, _, stopped, _ in g.points)
    assert 7.3 < g.failing_rate <= 7.3 + 7 / 2**6 and g.complete
    assert find_goodput(lambda r: (0.0, True, False), 1.0, iterations=3).goodput == 0.0


def test_a_probe_that_fell_behind_its_arrivals_fails_whatever_its_attainment():
    def deferring_engine(rate):  # meets 91% at any rate by serving the long requests after the last arrival
        return 0.91, False, rate > 12

    g = find_goodput(deferring_engine, start_rate=5.0, target=0.9, iterations=3)
    assert 10.0 <= g.goodput <= 12 and 12 < g.failing_rate <= 12.5
    assert partial_goodput([(5.0, 1.0, False, False), (10.0, 0.95, False, True)], 0.9).failing_rate == 10.0
    assert partial_goodput([(5.0, 1.0, False), (10.0, 0.95, False)], 0.9).goodput == 10.0  # saved before the check


def test_the_backlog_is_the_last_first_token_after_the_last_arrival():
    on_time = [record("a", 100.0, [100.5, 100.6]), record("b", 101.0, [101.2, 101.3])]
    deferred = [*on_time, record("c", 100.2, [103.6, 103.7])]  # arrived early, first token 2.6 s after the last arrival
    assert backlog_s(on_time) == pytest.approx(0.2) and backlog_s(deferred) == pytest.approx(2.6)
    assert not fell_behind(on_time, SLO(2.0, 1.0)) and fell_behind(deferred, SLO(2.0, 1.0))
    assert backlog_s([record("d", 100.0, [100.1], error="prompt too long")]) is None


def test_a_bracket_from_an_earlier_run_is_bisected_without_serving_its_ends():
    seen = []

    def fake_engine(rate):
        seen.append(rate)
        return (0.95, False, False) if rate <= 2.4 else (0.5, True, False)

    g = find_goodput(fake_engine, start_rate=1.0, target=0.9, iterations=2, bracket=(1.5, 3.0))
    assert seen == [2.25, 2.625] and g.goodput == 2.25 and g.failing_rate == 2.625
    assert g.bracket == (1.5, 3.0)
    all_fail = find_goodput(lambda r: (0.0, True, False), 1.0, iterations=2, bracket=(1.5, 3.0))
    assert all_fail.goodput == 1.5 and all_fail.failing_rate == 1.875  # the bracket's pass stands
    cut = partial_goodput([(2.25, 0.3, True)], 0.9, bracket=(1.5, 3.0))
    assert (cut.goodput, cut.failing_rate, cut.complete) == (1.5, 2.25, False)
    with pytest.raises(ValueError):
        find_goodput(fake_engine, 1.0, bracket=(3.0, 1.5))


def test_a_sweep_cut_short_reports_what_its_probes_establish():
    # passes at 1.5 and 2.25, fails at 3 and 2.625; a noisy pass above a failure does not count
    points = [(1.5, 0.93, False), (3.0, 0.47, True), (2.25, 0.99, False), (2.625, 0.48, True), (3.5, 0.95, False)]
    g = partial_goodput(points, 0.9)
    assert (g.goodput, g.failing_rate, g.complete) == (2.25, 2.625, False)
    assert partial_goodput([(2.0, 0.2, True)], 0.9).goodput == 0.0
    assert partial_goodput([(2.0, 1.0, False)], 0.9).failing_rate is None


def test_report_reads_a_gzipped_result_and_refuses_other_files(tmp_path):
    import gzip

    out = tmp_path / "res"
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "4", "--rate", "50",
                                 "--mode", "chunked", "--slo", "ttft=5s,tpot=1s", "--goodput", "--goodput-iterations",
                                 "1", "--max-prompt-len", "32", "--max-output-len", "4", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "bench.json").read_text())
    assert data["goodput"]["chunked"]["complete"] and data["goodput"]["chunked"]["goodput"] > 0
    packed = tmp_path / "packed"
    packed.mkdir()
    with gzip.open(packed / "bench.json.gz", "wt") as f:
        json.dump(data, f)
    again = runner.invoke(app, ["report", str(packed)])
    assert again.exit_code == 0 and "goodput" in again.output and "chunked" in again.output
    (tmp_path / "other.json").write_text("[1, 2]")
    bad = runner.invoke(app, ["report", str(tmp_path / "other.json")])
    message = " ".join(bad.output.split())  # the console wraps the long path where it fits
    assert bad.exit_code == 1 and "not a pdtune bench result" in message and "Traceback" not in bad.output


def _saved_result(mode_goodput: dict, slo: str = "ttft=2000ms,tpot=30ms", gpu: str = "H100", **engine) -> dict:
    """A saved goodput sweep per mode, as `pdtune bench` writes it (fields the combining reads)."""
    return {"config": {"slo": slo, "rate": None, "goodput": True, "engine": {"trace_path": "/tmp/t.jsonl", **engine}},
            "environment": {"gpu": gpu},
            "summaries": [{"mode": m} for m in mode_goodput], "runs": [{"mode": m} for m in mode_goodput],
            "goodput": {m: {"goodput": g, "target": 0.9, "points": [[g, 0.95, False, False]]}
                        for m, g in mode_goodput.items()}}


def _saved_single_run(mode: str, rate: float, attainment: float, backlog_s: float = 0.1, **engine) -> dict:
    """A saved run at one rate (no goodput sweep)."""
    summary = {"mode": mode, "rate": rate, "slo": "ttft=2000ms,tpot=30ms", "slo_attainment": attainment,
               "stopped_early": False, "backlog_s": backlog_s}
    return {"config": {"slo": "ttft=2000ms,tpot=30ms", "rate": rate, "goodput": False,
                       "engine": {"trace_path": f"/tmp/{rate}/trace.jsonl", **engine}},
            "environment": {"gpu": "H100"}, "summaries": [summary], "runs": [{"mode": mode}], "goodput": {}}


def test_report_keeps_same_mode_runs_of_different_setups_apart(tmp_path):
    from pdtune.report.saved import combine_benches

    (tmp_path / "alone").mkdir()
    combined = combine_benches([
        (str(tmp_path / "base"), _saved_result({"chunked": 15.75, "pdmux": 9.19})),
        (str(tmp_path / "alone" / "bench.json"), _saved_result({"pdmux": 10.5}, pdmux_prefill_alone=True))])
    assert [s["mode"] for s in combined["summaries"]] == ["chunked", "pdmux [base]", "pdmux [alone]"]
    assert [r["mode"] for r in combined["runs"]] == ["chunked", "pdmux [base]", "pdmux [alone]"]
    assert {m: g["goodput"] for m, g in combined["goodput"].items()} == {
        "chunked": 15.75, "pdmux [base]": 9.19, "pdmux [alone]": 10.5}
    # the same flags on another GPU are another setup too
    other_gpu = combine_benches([("a", _saved_result({"pdmux": 9.19})), ("b", _saved_result({"pdmux": 7.0}, gpu="H200"))])
    assert list(other_gpu["goodput"]) == ["pdmux [a]", "pdmux [b]"]


def test_report_joins_runs_of_one_setup_at_several_rates_into_one_goodput():
    from pdtune.bench.summary import goodput_text
    from pdtune.report.saved import combine_benches

    sweep = _saved_result({"pdmux": 13.5}, perf_model="/tmp/r/profile.json", pdmux_prefill_jump=False)
    sweep["goodput"]["pdmux"] = {"goodput": 13.5, "target": 0.9, "failing_rate": 14.4, "bracket": [10.8, 14.4],
                                 "points": [[12.6, 0.957, False, False], [13.5, 0.953, False, False]]}
    combined = combine_benches([
        ("c8", _saved_single_run("chunked", 8.0, 0.993)), ("c875", _saved_single_run("chunked", 8.75, 0.947)),
        ("c9", _saved_single_run("chunked", 9.125, 0.897)),
        # the same setup, its profile at another path and the prefill jump saved as the old switch
        ("p108", _saved_single_run("pdmux", 10.8, 0.983, perf_model="results/profile.json", pdmux_prefill_jump="off")),
        ("up", sweep),
        ("p144", _saved_single_run("pdmux", 14.4, 0.953, backlog_s=3.05, perf_model="results/profile.json",
                                   pdmux_prefill_jump="off", pdmux_spare_decode_target=1.0))])  # saved after it came in
    assert {s["mode"] for s in combined["summaries"]} == {"chunked", "pdmux"}
    chunked, pdmux = combined["goodput"]["chunked"], combined["goodput"]["pdmux"]
    assert (chunked["goodput"], chunked["failing_rate"], goodput_text(chunked)) == (8.75, 9.125, "8.75")
    # 14.4 met the target but fell behind its arrivals; the bracket's 14.4, taken on trust, is now served
    assert (pdmux["goodput"], pdmux["failing_rate"], goodput_text(pdmux)) == (13.5, 14.4, "13.50")
    assert [p[0] for p in pdmux["points"]] == [10.8, 12.6, 13.5, 14.4] and pdmux["bracket"] is None
    # a setting one result predates counts at its default; set otherwise, it is another setup
    def later(target: float) -> dict:
        return _saved_single_run("pdmux", 14.4, 0.96, perf_model="p/profile.json", pdmux_prefill_jump="off",
                                 pdmux_spare_decode_target=target)
    spare = combine_benches([("p135", sweep), ("s", later(0.8)), ("d", later(1.0))])
    assert [s["mode"] for s in spare["summaries"]] == ["pdmux [p135]", "pdmux [s]", "pdmux [p135]"]
    # a bracketed sweep alone keeps its bracket
    assert combine_benches([("up", sweep)])["goodput"]["pdmux"]["bracket"] == [10.8, 14.4]


def test_a_chunked_run_beside_pdmux_modes_joins_one_served_alone_but_pdmux_settings_part_pdmux_runs():
    from pdtune.report.saved import combine_benches

    one_command = _saved_single_run("chunked", 8.75, 0.96, perf_model="p/profile.json", pdmux_decode_target=0.8)
    one_command["summaries"].append(dict(one_command["summaries"][0], mode="pdmux"))
    one_command["runs"].append({"mode": "pdmux"})
    combined = combine_benches([("alone", _saved_single_run("chunked", 9.125, 0.897)),
                                ("pdmux", _saved_single_run("pdmux", 8.75, 0.99)), ("all", one_command)])
    assert [s["mode"] for s in combined["summaries"]] == ["chunked", "pdmux [pdmux]", "chunked", "pdmux [all]"]
    assert [p[0] for p in combined["goodput"]["chunked"]["points"]] == [8.75, 9.125]
    replicas = _saved_single_run("chunked", 8.75, 0.96, perf_model="p/profile.json", data_parallel_size=2)
    alone = _saved_single_run("chunked", 9.125, 0.897, data_parallel_size=2)
    assert len(combine_benches([("a", alone), ("r", replicas)])["goodput"]) == 2  # their dispatcher reads it


def test_a_config_files_pdmux_mode_joins_the_same_planner_settings_given_as_flags_and_is_named_by_its_file():
    from pdtune.report.saved import combine_benches

    def with_files(rate: float, files: dict[str, dict]) -> dict:
        """One result of pdmux@FILE modes, each run recording its planner settings."""
        result = _saved_single_run("chunked", rate, 0.96)
        for label, settings in files.items():
            result["summaries"].append(dict(result["summaries"][0], mode=label))
            result["runs"].append({"mode": label, "extra": {"planner": {"settings": settings}}})
        return result

    t08 = {"pdmux_decode_target": 0.8, "pdmux_prefill_jump": "shorter"}
    flags = _saved_single_run("pdmux", 8.75, 0.987, pdmux_decode_target=0.8, pdmux_prefill_jump="shorter")
    one_command = with_files(13.5, {"pdmux@a/t0.8.json": t08, "pdmux@a/spare.json": {"pdmux_spare_decode_target": 0.8},
                                    "pdmux@b/spare.json": {"pdmux_spare_decode_target": 0.7}})
    combined = combine_benches([("flags", flags), ("all", one_command)])
    assert [s["mode"] for s in combined["summaries"]] == [
        "pdmux [flags]", "chunked", "pdmux [flags]", "pdmux [spare]", "pdmux [spare #2]"]
    assert [p[0] for p in combined["goodput"]["pdmux [flags]"]["points"]] == [8.75, 13.5]
    # a result saved before runs recorded their settings keeps its label
    old = with_files(13.5, {"pdmux@a/t0.8.json": None})
    assert [s["mode"] for s in combine_benches([("old", old)])["summaries"]] == ["chunked", "pdmux@a/t0.8.json"]


def test_report_saves_the_joined_runs_and_goodputs_as_csv_and_json(tmp_path):
    import pandas as pd

    from pdtune.report.saved import combine_benches, save_combined

    combined = combine_benches([
        ("c875", _saved_single_run("chunked", 8.75, 0.947)), ("c9", _saved_single_run("chunked", 9.125, 0.897)),
        ("p135", _saved_single_run("pdmux", 13.5, 0.953)), ("p144", _saved_single_run("pdmux", 14.4, 0.953, 3.05))])
    paths = save_combined(combined, str(tmp_path / "out"))
    assert [os.path.basename(p) for p in paths] == ["summary.csv", "goodput.csv", "vs-chunked.csv", "report.json"]
    assert list(pd.read_csv(paths[0])["rate"]) == [8.75, 9.125, 13.5, 14.4]
    goodput = pd.read_csv(paths[1], dtype=str, keep_default_na=False).set_index("mode")
    assert goodput.loc["chunked", "goodput_req_s"] == "8.75" and goodput.loc["chunked", "fails_at"] == "9.12"
    assert goodput.loc["pdmux", "vs_chunked"] == "1.54x"
    assert goodput.loc["pdmux", "probes"] == "13.5:0.953 14.4:0.953+"  # + fell behind
    assert list(pd.read_csv(paths[2]).columns) == ["rate", "mode"]  # no rate served by chunked and another mode
    saved = json.loads(open(paths[3]).read())
    assert "runs" not in saved and saved["goodput_rows"][1]["mode"] == "pdmux" and saved["vs_chunked_rows"] == []


def _latency_run(mode: str, rate: float, ttft_p90: float, tpot_p90: float, attainment: float = 0.95) -> dict:
    """A run's summary with the p90s the comparison against chunked reads."""
    return {"mode": mode, "rate": rate, "slo_attainment": attainment, "stopped_early": False,
            "ttft_s": {"p90": ttft_p90}, "tpot_s": {"p90": tpot_p90}}


def test_each_mode_is_compared_with_chunked_at_the_rates_both_served(tmp_path):
    import pandas as pd
    from rich.console import Console

    from pdtune.bench.summary import against_baseline
    from pdtune.report.bench_report import against_baseline_table
    from pdtune.report.saved import save_combined

    summaries = [_latency_run("chunked", 8.75, 1.12, 0.0275), _latency_run("chunked", 8.75, 1.10, 0.0270),
                 _latency_run("pdmux", 8.75, 0.837, 0.0183, 0.987), _latency_run("chunked", 9.125, 1.18, 0.030),
                 _latency_run("pdmux", 13.5, 1.79, 0.026),
                 _latency_run("pdmux:sglang", 9.125 + 1e-9, 0.5, float("nan"))]
    rows = against_baseline(summaries)
    assert [(r["rate"], r["mode"]) for r in rows] == [
        (8.75, "chunked"), (8.75, "chunked"), (8.75, "pdmux"), (9.125, "chunked"), (9.125 + 1e-9, "pdmux:sglang")]
    pdmux = rows[2]  # against the mean of chunked's two runs at 8.75: TTFT 1.11 s, TPOT 27.25 ms
    assert pdmux["ttft_p90_change"] == pytest.approx(0.837 / 1.11 - 1)
    assert pdmux["tpot_p90_change"] == pytest.approx(0.0183 / 0.02725 - 1)
    assert rows[0]["tpot_p90_change"] is None and rows[-1]["ttft_p90_change"] == pytest.approx(0.5 / 1.18 - 1)
    assert rows[-1]["tpot_p90_change"] is None  # no request of that run had a second token
    report = {"summaries": summaries, "goodput": {"chunked": {"goodput": 8.75, "failing_rate": 9.125, "target": 0.9,
                                                                "points": [[8.75, 0.95, False, False],
                                                                           [9.125, 0.897, False, False]]}}}
    console = Console(record=True, width=200)
    console.print(against_baseline_table(report))
    text = console.export_text()
    assert text.count("8.75 (chunked goodput)") == 3 and "9.12 (chunked goodput)" not in text
    assert "-25%" in text and "-33%" in text and "chunked's goodput: 8.75 req/s" in text
    assert against_baseline_table({"summaries": summaries[4:5]}) is None  # pdmux alone at 13.5
    paths = save_combined(dict(report, runs=[], config={}), str(tmp_path))
    saved = pd.read_csv(paths[2])
    assert list(saved["mode"]) == [r["mode"] for r in rows]
    assert saved["tpot_p90_change"][2] == pytest.approx(-0.3284, abs=1e-4)


def test_report_gives_no_goodput_for_results_served_at_different_slos():
    from pdtune.report.saved import combine_benches

    combined = combine_benches([("t30", _saved_result({"chunked": 8.75})),
                                ("t50", _saved_result({"chunked": 10.56}, slo="ttft=2000ms,tpot=50ms"))])
    assert [s["mode"] for s in combined["summaries"]] == ["chunked [t30]", "chunked [t50]"]
    assert combined["goodput"] == {}


def test_the_tables_print_a_runs_folder_label_instead_of_reading_it_as_markup():
    from rich.console import Console

    from pdtune.report.bench_report import bench_table, goodput_table

    run = RunResult("pdmux [t0.8-shorter]", 8.75, None, [record("a", 100.0, [100.5, 100.6])], 1.0, 2, 0.5, 0.01, 0.0)
    report = {"workload": {"name": "mixed", "requests": 1}, "config": {"slo": "ttft=2000ms,tpot=1000ms"},
              "summaries": [summarize_run(run, SLO(2.0, 1.0))],
              "goodput": {"pdmux [t0.8-shorter]": {"goodput": 8.75, "target": 0.9, "points": [[8.75, 1.0, False]]}}}
    console = Console(record=True, width=200)
    console.print(bench_table(report), goodput_table(report))
    assert console.export_text().count("pdmux [t0.8-shorter]") == 2


@pytest.mark.parametrize("text,expected", [("ttft=200ms,tpot=20ms", (0.2, 0.02)), ("tpot=0.05s, ttft=2s", (2.0, 0.05))])
def test_slo_strings(text, expected):
    slo = parse_slo(text)
    assert (slo.ttft_s, slo.tpot_s) == pytest.approx(expected)


def test_an_itl_bound_holds_each_requests_99th_percentile_gap():
    slo = parse_slo("ttft=2s,tpot=30ms,itl=50ms")
    assert slo.itl_s == pytest.approx(0.05) and str(slo) == "ttft=2000ms,tpot=30ms,itl=50ms"
    assert slo.engine_targets() == pytest.approx(dict(slo_ttft_ms=2000.0, slo_tpot_ms=30.0, slo_itl_ms=50.0))
    with pytest.raises(PdtuneError, match="SLO targets must be positive"):
        EngineConfig(slo_itl_ms=0.0)
    assert parse_slo("ttft=2s,tpot=30ms").itl_s is None and str(parse_slo("ttft=2s,tpot=30ms")) == "ttft=2000ms,tpot=30ms"
    steady, one_stall = [0.02] * 150, [0.02] * 149 + [0.3]
    assert itl_p99(one_stall) == 0.02 and itl_p99([0.02] * 50 + [0.3]) == 0.3  # below 100 gaps: the worst
    assert slo.met(0.5, 0.022, steady) and slo.met(0.5, 0.022, one_stall)
    chunked_like = [0.055] * 20 + [0.01] * 130  # a mean TPOT of 16 ms, a gap over 50 ms on 13% of tokens
    assert parse_slo("ttft=2s,tpot=30ms").met(0.5, sum(chunked_like) / 150, chunked_like)
    assert not slo.met(0.5, sum(chunked_like) / 150, chunked_like)
    assert slo.met(0.5, None, [])  # one output token: no gap to miss
    record = RequestRecord("a", 0.0, 10, 151, 0, ttft_s=0.5, tpot_s=0.016, e2e_s=3.0, itl_s=chunked_like)
    run = RunResult("x", 1.0, None, [record], 1, 1, 1, 0, 0)
    assert attainment(run, slo) == 0.0 and attainment(run, parse_slo("ttft=2s,tpot=30ms")) == 1.0


def test_report_rescores_saved_runs_against_another_slo(tmp_path):
    from pdtune.bench.summary import rescore

    def record(i: int, gaps: list[float]) -> dict:
        return dataclasses.asdict(RequestRecord(str(i), 0.0, 10, len(gaps) + 1, 0, ttft_s=0.5, tpot_s=sum(gaps) / len(gaps),
                                                e2e_s=1.0, itl_s=gaps))

    smooth, stalled = [0.02] * 40, [0.02] * 36 + [0.08] * 4  # both a mean TPOT under 30 ms (26 ms)
    runs = [{"mode": "chunked", "rate": 1.0, "extra": {}, "records": [record(0, smooth), record(1, smooth)]},
            {"mode": "chunked", "rate": 2.0, "extra": {}, "records": [record(0, smooth), record(1, stalled)]}]
    saved = {"config": {"slo": "ttft=2000ms,tpot=30ms"}, "runs": runs,
             "summaries": [{"mode": "chunked", "slo_attainment": 1.0}] * 2,
             "goodput": {"chunked": {"goodput": 2.0, "target": 0.9, "points": [(1.0, 1.0, False), (2.0, 1.0, False)],
                                     "bracket": [2.0, 4.0]}}}
    again = rescore(saved, parse_slo("ttft=2s,tpot=30ms,itl=50ms"))
    assert [s["slo_attainment"] for s in again["summaries"]] == [1.0, 0.5]
    assert [s["slo_misses"] for s in again["summaries"]] == [{"ttft": 0, "tpot": 0, "itl": 0, "unserved": 0},
                                                             {"ttft": 0, "tpot": 0, "itl": 1, "unserved": 0}]
    g = again["goodput"]["chunked"]
    assert (g["goodput"], g["failing_rate"], g["bracket"]) == (1.0, 2.0, None)  # the old SLO's bracket dropped
    assert again["config"]["slo"] == "ttft=2000ms,tpot=30ms,itl=50ms"
    assert again["config"]["slo_served"] == "ttft=2000ms,tpot=30ms" and saved["summaries"][1]["slo_attainment"] == 1.0
    out = tmp_path / "res"
    served = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "3", "--rate", "50", "--mode",
                                 "chunked", "--slo", "ttft=5s,tpot=1s", "--max-prompt-len", "16", "--max-output-len",
                                 "4", "--out", str(out), *TINY])
    assert served.exit_code == 0, served.output
    shown = runner.invoke(app, ["report", str(out), "--slo", "ttft=5s,tpot=1s,itl=0.001ms"])
    assert shown.exit_code == 0, shown.output
    assert "SLO attainment (ttft=5000ms,tpot=1000ms,itl=0.001ms)" in " ".join(shown.output.split())
    assert "0.0%" in shown.output  # no CPU gap between tokens is a microsecond
    bad = runner.invoke(app, ["report", str(out), "--slo", "itl=5"])
    assert bad.exit_code == 1 and "bad SLO" in bad.output and "Traceback" not in bad.output


def test_a_probe_that_stopped_early_decides_nothing_rescored_where_its_unserved_requests_could_pass():
    from pdtune.bench.summary import rescore

    def served(tpot_s: float) -> dict:
        return dataclasses.asdict(RequestRecord("a", 0.0, 10, 5, 0, ttft_s=0.5, tpot_s=tpot_s, e2e_s=1.0, itl_s=[tpot_s] * 4))

    unserved = dataclasses.asdict(RequestRecord("u", 0.0, 10, 0, 0, None, None, None, [], error="not served: stopped early"))
    # 9.5: stopped early at TPOT 30 with 2 of 10 unserved; every served request meets TPOT 50
    runs = [{"mode": "chunked", "rate": 8.0, "extra": {}, "records": [served(0.02)] * 10},
            {"mode": "chunked", "rate": 9.5, "extra": {"stopped_early": True},
             "records": [served(0.04)] * 8 + [unserved] * 2},
            {"mode": "chunked", "rate": 12.0, "extra": {"stopped_early": True},
             "records": [served(0.06)] * 8 + [unserved] * 2}]
    saved = {"config": {"slo": "ttft=2000ms,tpot=30ms"}, "runs": runs, "summaries": [{"mode": "chunked"}] * 3,
             "goodput": {"chunked": {"goodput": 8.0, "target": 0.9, "points": []}}}
    g = rescore(saved, parse_slo("ttft=2s,tpot=50ms"))["goodput"]["chunked"]
    # 9.5 at 80% could have reached 90%: no point; 12 at 0% fails for certain
    assert [p[0] for p in g["points"]] == [8.0, 12.0] and (g["goodput"], g["failing_rate"]) == (8.0, 12.0)


@pytest.mark.parametrize("bad", ["ttft=200", "ttft=200ms", "ttft=1ms,tpot=2ms,ttft=3ms", "latency=3ms,tpot=2ms", "",
                                 "ttft=1s,tpot=20ms,itl=0ms"])
def test_malformed_slo_gets_a_clear_error(bad):
    with pytest.raises(PdtuneError, match="bad SLO"):
        parse_slo(bad)


def test_open_loop_arrivals_follow_the_clock():
    engine = Engine(EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=64))
    reqs = [WorkloadRequest(str(i), 0.15 * i, list(range(5, 25)), 4) for i in range(4)]
    run = serve_open_loop(engine, reqs, rate=None)
    by_id = {r.request_id: r for r in run.records}
    for i in range(4):
        rec = by_id[str(i)]
        assert rec.arrival_s == pytest.approx(0.15 * i, abs=1e-6)
        assert rec.arrival_s + rec.ttft_s >= 0.15 * i  # no token before the request arrived
        assert rec.output_tokens == 4 and rec.ttft_s > 0
    assert run.wall_s >= 0.45


runner = CliRunner()
TINY = ["--model", "tiny", "--load-format", "dummy", "--num-kv-blocks", "64"]


def test_bench_cli_compares_modes_and_saves_results(tmp_path):
    out = tmp_path / "res"
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "6", "--rate", "50",
                                 "--mode", "chunked,pdmux:sglang", "--slo", "ttft=5s,tpot=1s",
                                 "--max-prompt-len", "64", "--max-output-len", "8", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    assert [s["mode"] for s in report["summaries"]] == ["chunked", "pdmux:sglang"]
    assert all(s["requests"] == 6 and s["slo_attainment"] == 1.0 for s in report["summaries"])
    assert {"latency-cdf.png", "timeline.png", "requests.csv", "summary.csv"} <= {p.name for p in out.iterdir()}
    again = runner.invoke(app, ["report", str(out)])
    assert again.exit_code == 0 and "pdmux:sglang" in again.output
    for output in (result.output, again.output):  # both served at one rate: sglang's p90s against chunked's
        assert "p90 latency (ms) against chunked at the same rate" in output


def test_several_rates_serve_every_mode_at_each_and_give_the_goodput_they_establish(tmp_path):
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "4", "--rate", "40,20",
                                 "--mode", "chunked,pdmux:sglang", "--slo", "ttft=5s,tpot=1s", "--max-prompt-len", "32",
                                 "--max-output-len", "4", "--out", str(out), *TINY], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    assert [(s["mode"], s["rate"]) for s in report["summaries"]] == [
        ("chunked", 40.0), ("chunked", 20.0), ("pdmux:sglang", 40.0), ("pdmux:sglang", 20.0)]
    for mode in ("chunked", "pdmux:sglang"):  # every rate met the SLO: the goodput is at least the highest
        goodput = report["goodput"][mode]
        assert [p[0] for p in goodput["points"]] == [40.0, 20.0] and goodput["goodput"] == 40.0
        assert goodput["failing_rate"] is None and goodput["complete"]
    assert (out / "attainment-vs-rate.png").exists()
    assert "goodput (ttft=5000ms,tpot=1000ms" in result.output and "p90 latency (ms) against chunked" in result.output


def test_repeat_spread_of_hand_made_summaries():
    def run(mode, ttft, tpot):
        return {"mode": mode, "ttft_s": {"p90": ttft}, "tpot_s": {"p90": tpot}}

    spread = repeat_spread([run("chunked", 1.0, 0.020), run("pdmux", 2.0, 0.010), run("chunked", 1.25, 0.021),
                            run("chunked", 1.1, float("nan"))])
    assert list(spread) == ["chunked"]  # pdmux ran once
    assert spread["chunked"]["ttft_s"] == {"p90": [1.0, 1.25, 1.1], "spread": pytest.approx(0.25)}
    assert spread["chunked"]["tpot_s"]["spread"] is None  # a run without a TPOT figure: no spread

    def record(rid, tpot, error=None):
        return RequestRecord(rid, 0.0, 8, 9, 0, ttft_s=0.1, tpot_s=tpot, e2e_s=1.0, itl_s=[],
                             error=error)

    first = [record("a", 0.020), record("b", 0.010), record("c", 0.030), record("d", 0.010, error="x")]
    later = [record("a", 0.019), record("b", 0.009), record("c", 0.036), record("d", 0.001)]
    paired = repeat_spread([run("chunked", 1.0, 0.030), run("chunked", 1.0, 0.036)], [first, later])
    # every request but one 5-10% faster: the median says so, though the p90 (request c) grew 20%
    assert paired["chunked"]["tpot_s"]["median_change"] == [pytest.approx(-0.05)]
    assert paired["chunked"]["tpot_s"]["spread"] == pytest.approx(0.2)


def test_bench_repeat_serves_the_same_arrivals_again_and_reports_the_spread(tmp_path):
    out = tmp_path / "rep"
    result = runner.invoke(app, ["bench", "--workload", "sharegpt", "--num-requests", "5", "--rate", "40",
                                 "--max-prompt-len", "48", "--max-output-len", "4", "--mode", "chunked",
                                 "--repeat", "2", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "bench.json").read_text())
    first, second = ([(r["request_id"], round(r["arrival_s"], 6)) for r in run["records"]] for run in report["runs"])
    assert len(report["runs"]) == 2 and first == second
    row = report["repeatability"]["chunked"]
    p90s = [s["ttft_s"]["p90"] for s in report["summaries"]]
    assert row["ttft_s"]["p90"] == p90s and row["ttft_s"]["spread"] == pytest.approx(max(p90s) / min(p90s) - 1)
    assert len(row["ttft_s"]["median_change"]) == 1 and row["ttft_s"]["median_change"][0] > -1
    assert "2 runs of one seed" in result.output and "median request" in " ".join(result.output.split())
    saved = dict(report, repeatability={m: {k: {"p90": v["p90"], "spread": v["spread"]} for k, v in row.items()}
                                        for m, row in report["repeatability"].items()})  # as saved before it
    (out / "bench.json").write_text(json.dumps(saved))
    shown = " ".join(runner.invoke(app, ["report", str(out)]).output.split())
    assert "2 runs of one seed" in shown and "median request" in shown  # recomputed from the records


@pytest.mark.parametrize("args,message", [
    (["--slo", "ttft=fast"], "bad SLO"),
    (["--goodput"], "--goodput needs --slo"),
    (["--repeat", "2", "--goodput", "--slo", "ttft=1s,tpot=50ms"], "--repeat does not combine"),
    (["--workload", "no-such-thing"], "neither a generator"),
    (["--workload", "BADFILE"], ":2:"),
    (["--mode", "chunked,sequential", "--dispatch", "edf"], "--dispatch applies only to pdmux modes"),
    (["--mode", "chunked", "--pdmux-prefill-jump", "late", "--trace", "t.jsonl"], "--pdmux-prefill-jump, --trace apply only"),
    (["--mode", "pdmux", "--pdmux-prefill-jump", "soon"], "pdmux prefill jump must be one of"),
    (["--rate", "2,fast"], "--rate '2,fast': expected a rate"),
    (["--rate", "2,0"], "request rates must be positive"),
    (["--rate", "2,4", "--goodput", "--slo", "ttft=1s,tpot=50ms"], "several rates are a sweep of their own"),
    (["--rate", "2,4", "--repeat", "2"], "several rates are a sweep of their own"),
])
def test_bench_user_errors(tmp_path, args, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"name": "w", "metadata": {}}) + "\n{not json\n")
    args = [str(bad) if a == "BADFILE" else a for a in args]
    result = runner.invoke(app, ["bench", *args, *TINY, "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["openai", "sharegpt"])
def test_bench_reads_a_users_batch_or_sharegpt_file(tmp_path, kind):
    if kind == "openai":
        path = tmp_path / "in.jsonl"
        path.write_text("".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                            "body": {"messages": [{"role": "user", "content": f"hi {i}"}],
                                                     "max_tokens": 3}}) + "\n" for i in range(4)))
    else:
        path = tmp_path / "sg.json"
        path.write_text(json.dumps([{"conversations": [{"from": "human", "value": f"question {i}"},
                                                        {"from": "gpt", "value": "an answer " * (i + 1)}]}
                                    for i in range(4)]))
    out = tmp_path / "o"
    result = runner.invoke(app, ["bench", "--workload", str(path), "--rate", "50", "--mode", "chunked",
                                 "--num-requests", "4", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "bench.json").read_text())["summaries"][0]
    assert summary["requests"] == 4 and summary["failed"] == 0


def test_a_saved_workload_replays_the_same_requests(tmp_path):
    saved = tmp_path / "w.jsonl"
    first = runner.invoke(app, ["bench", "--workload", "sharegpt", "--num-requests", "5", "--rate", "40",
                                "--max-prompt-len", "48", "--max-output-len", "4", "--mode", "chunked",
                                "--save-workload", str(saved), "--out", str(tmp_path / "a"), *TINY])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["bench", "--workload", str(saved), "--mode", "chunked", "--out", str(tmp_path / "b"),
                                *TINY])
    assert again.exit_code == 0, again.output
    records = [json.loads((tmp_path / d / "bench.json").read_text())["runs"][0]["records"] for d in "ab"]
    key = lambda recs: sorted((r["request_id"], r["prompt_tokens"], r["output_tokens"], round(r["arrival_s"], 6))  # noqa: E731
                              for r in recs)
    assert key(records[0]) == key(records[1])


def test_a_mode_that_fails_keeps_the_results_of_the_modes_before_it(tmp_path, monkeypatch):
    from pdtune.bench import runner as bench_runner
    from pdtune.errors import PdtuneError

    real = bench_runner.make_engine

    def make_engine(config, simulate=False):  # the second mode's engine fails to build, as one out of memory would
        if config.mode == "pdmux":
            raise PdtuneError("no memory is left for the KV cache: lower the batch limits or raise the memory share")
        return real(config, simulate)

    monkeypatch.setattr(bench_runner, "make_engine", make_engine)
    out = tmp_path / "o"
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "3", "--rate", "50",
                                 "--max-prompt-len", "32", "--max-output-len", "4", "--mode", "chunked,pdmux",
                                 "--out", str(out), *TINY])
    assert result.exit_code == 1 and "no memory is left" in result.output
    assert [s["mode"] for s in json.loads((out / "bench.json").read_text())["summaries"]] == ["chunked"]


def test_a_pdmux_run_records_what_its_planner_predicted_from(tmp_path):
    from pdtune.bench.runner import BenchConfig, run_bench
    from pdtune.config import EngineConfig
    from pdtune.slo import parse_slo

    engine = EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=64)
    cfg = BenchConfig(engine, ("chunked", "pdmux"), "random", 4, 50.0, max_prompt_len=24, max_output_len=3,
                      slo=parse_slo("ttft=5s,tpot=1s"), warmup_requests=1)
    runs = {r["mode"]: r for r in run_bench(cfg)["runs"]}
    assert "planner" not in runs["chunked"]["extra"]
    planner = runs["pdmux"]["extra"]["planner"]
    assert planner["partitions"]["96/36"] == "none" and planner["perf_model"] is None
    assert planner["rates_measured"] is False and planner["copy_bytes_per_s"] > 1e12  # CPU: the simulated H100


def test_pdmux_policies_share_one_engine_and_other_modes_build_their_own(tmp_path, monkeypatch):
    import itertools

    from pdtune.bench import runner as bench_runner
    from pdtune.bench.runner import BenchConfig, run_bench
    from pdtune.config import EngineConfig
    from pdtune.engine import switches_plan_to
    from pdtune.slo import parse_slo

    built, served = [], []
    real_make, real_serve = bench_runner.make_engine, bench_runner.serve_workload

    def make_engine(config, simulate=False):
        built.append(config.mode + ("" if config.pdmux_prefill_graphs else " eager"))
        return real_make(config, simulate)

    def serve_workload(engine, label, *args, **kwargs):
        served.append((label, engine.config.pdmux_policy, engine.stepper.planner.config.pdmux_policy
                       if engine.config.mode == "pdmux" else None))
        return real_serve(engine, label, *args, **kwargs)

    monkeypatch.setattr(bench_runner, "make_engine", make_engine)
    monkeypatch.setattr(bench_runner, "serve_workload", serve_workload)
    trace = tmp_path / "trace.jsonl"
    engine = EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=64, trace_path=str(trace))
    cfg = BenchConfig(engine, ("pdmux", "pdmux:sglang", "pdmux:eager-prefill", "chunked"), "random", 4, 50.0,
                      max_prompt_len=24, max_output_len=3, slo=parse_slo("ttft=5s,tpot=1s"), warmup_requests=1)
    report = run_bench(cfg)
    assert [s["mode"] for s in report["summaries"]] == list(cfg.modes)
    assert built == ["pdmux", "pdmux eager", "chunked"]  # pdmux:sglang switched the first engine's planner
    assert served == [("pdmux", "adaptive", "adaptive"), ("pdmux:sglang", "sglang", "sglang"),
                      ("pdmux:eager-prefill", "adaptive", "adaptive"), ("chunked", "adaptive", None)]
    # the pdmux runs share one trace file; each row says which run (and rate) made it
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [run for run, _ in itertools.groupby(r["run"] for r in rows)] == [
        "warm-up", "pdmux", "warm-up", "pdmux:sglang", "warm-up", "pdmux:eager-prefill"]
    assert {r.get("rate") for r in rows if r["run"] != "warm-up"} == {50.0}
    assert not any("rate" in r for r in rows if r["run"] == "warm-up")
    pdmux = EngineConfig(mode="pdmux")
    assert switches_plan_to(pdmux, EngineConfig(mode="pdmux", pdmux_policy="static", pdmux_static_split=(96, 36),
                                                pdmux_gang=2))
    assert switches_plan_to(pdmux, EngineConfig(mode="pdmux", pdmux_decode_target=0.8, dispatch="edf"))
    assert not switches_plan_to(pdmux, EngineConfig(mode="pdmux", pdmux_splits=((96, 36),)))  # partitions are built
    assert not switches_plan_to(pdmux, EngineConfig(mode="pdmux", block_size=16))  # the KV pool is built
    assert not switches_plan_to(EngineConfig(mode="pdmux", tensor_parallel_size=2),
                                EngineConfig(mode="pdmux", pdmux_policy="sglang", tensor_parallel_size=2))


def test_a_config_files_planner_settings_are_a_pdmux_mode_served_on_the_same_engine(tmp_path, monkeypatch):
    from pdtune.bench import runner as bench_runner
    from pdtune.bench.runner import _engine_config
    from pdtune.errors import PdtuneError

    spare = tmp_path / "spare.json"
    spare.write_text(json.dumps({"engine": {"mode": "pdmux", "model": "tiny", "pdmux_spare_decode_target": 0.8,
                                            "pdmux_prefill_jump": "shorter"}}))
    base = EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=64)
    wanted = _engine_config(base, f"pdmux@{spare}")
    assert (wanted.mode, wanted.pdmux_spare_decode_target, wanted.pdmux_prefill_jump) == ("pdmux", 0.8, "shorter")
    other_model = tmp_path / "other.json"
    other_model.write_text(json.dumps({"model": "llama-3.1-8b", "pdmux_decode_target": 0.8}))
    chunked = tmp_path / "chunked.json"
    chunked.write_text(json.dumps({"mode": "chunked"}))
    for label, message in [(f"pdmux@{other_model}", "sets model='llama-3.1-8b' (this run: 'tiny')"),
                           (f"pdmux@{chunked}", "sets mode 'chunked'"), (f"chunked@{spare}", "pdmux@FILE"),
                           (f"pdmux@{tmp_path / 'none.json'}", "config file not found")]:
        with pytest.raises(PdtuneError, match=re.escape(message)):
            _engine_config(base, label)

    built, served = [], []
    real_make, real_serve = bench_runner.make_engine, bench_runner.serve_workload
    monkeypatch.setattr(bench_runner, "make_engine",
                        lambda config, simulate=False: built.append(config.mode) or real_make(config, simulate))

    def serve_workload(engine, label, *args, **kwargs):
        planner = engine.stepper.planner.config
        served.append((label, planner.pdmux_spare_decode_target, planner.pdmux_prefill_jump))
        return real_serve(engine, label, *args, **kwargs)

    monkeypatch.setattr(bench_runner, "serve_workload", serve_workload)
    out = tmp_path / "res"
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "3", "--rate", "50", "--mode",
                                 f"pdmux,pdmux@{spare}", "--max-prompt-len", "24", "--max-output-len", "3",
                                 "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert built == ["pdmux"] and served == [("pdmux", 1.0, "off"), (f"pdmux@{spare}", 0.8, "shorter")]
    settings = [r["extra"]["planner"]["settings"] for r in json.loads((out / "bench.json").read_text())["runs"]]
    assert [(s["pdmux_spare_decode_target"], s["pdmux_prefill_jump"]) for s in settings] == [(1.0, "off"),
                                                                                             (0.8, "shorter")]
    bad = runner.invoke(app, ["bench", "--mode", f"pdmux@{other_model}", *TINY])
    assert bad.exit_code == 1 and "a mode label takes only the planner" in " ".join(bad.output.split())


def test_pdmux_flags_apply_to_a_pdmux_at_file_mode(tmp_path):
    plan = tmp_path / "jump.json"
    plan.write_text(json.dumps({"engine": {"pdmux_prefill_jump": "shorter", "pdmux_jump_batch": False}}))
    trace = tmp_path / "trace.jsonl"
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "3", "--rate", "50", "--mode",
                                 f"chunked,pdmux@{plan}", "--max-prompt-len", "24", "--max-output-len", "3",
                                 "--trace", str(trace), "--out", str(tmp_path / "res"), *TINY])
    assert result.exit_code == 0, result.output
    assert {json.loads(line)["run"] for line in trace.read_text().splitlines()} >= {f"pdmux@{plan}"}


def test_kernel_compiles_and_allocator_growth_and_retries_inside_a_timed_run_are_counted_and_shown(monkeypatch):
    from pdtune.bench import runner as bench_runner
    from pdtune.bench.runner import BenchConfig, serve_workload
    from pdtune.engine import make_engine
    from pdtune.report.bench_report import bench_table

    counts = iter([5, 7])  # two variants compiled while the run served
    monkeypatch.setattr(bench_runner, "compiled_variants", lambda: next(counts))
    allocs = iter([(40, 1), (43, 3)])  # the pool grew by three cudaMallocs, two after freeing all it cached
    monkeypatch.setattr(bench_runner, "allocator_counts", lambda: next(allocs))
    engine = make_engine(EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=64))
    cfg = BenchConfig(engine.config, ("chunked",), "random", 3, 50.0, max_prompt_len=16, max_output_len=2)
    workload = bench_runner.build_workload(cfg, engine.vocab_size, engine.tokenizer)
    run = serve_workload(engine, "chunked", bench_runner.timed(workload, cfg, 50.0), cfg, 50.0, None)
    summary = summarize_run(run, None)
    assert run.extra["kernel_compiles"] == 2 and summary["kernel_compiles"] == 2
    assert run.extra["cuda_mallocs"] == 3 and summary["cuda_mallocs"] == 3
    assert run.extra["cuda_alloc_retries"] == 2 and summary["cuda_alloc_retries"] == 2
    report = {"workload": {"name": "random", "requests": 3}, "summaries": [summary]}
    rows = {row[0]: row[1:] for row in _table_rows(bench_table(report))}
    assert rows["kernel compiles in run"] == ("2",) and rows["CUDA mallocs in run"] == ("3",)
    assert rows["CUDA alloc retries in run"] == ("2",)


def _table_rows(table) -> list[tuple]:
    columns = [list(c.cells) for c in table.columns]
    return list(zip(*columns))


def test_a_sweep_with_no_passing_rate_shows_a_bound_not_a_zero():
    from pdtune.bench.summary import goodput_text
    from pdtune.report.bench_report import goodput_table

    none_passed = {"goodput": 0.0, "target": 0.9, "points": [[2.625, 0.34, True], [1.3125, 0.58, True]],
                   "failing_rate": 1.3125}
    assert goodput_text(none_passed) == "< 1.31"
    assert goodput_text({"goodput": 9.1875, "target": 0.9, "points": [], "failing_rate": 10.5}) == "9.19"
    assert goodput_text({"goodput": 0.0, "target": 0.9, "points": []}) == "0.00"
    report = {"workload": {"requests": 100}, "config": {"slo": "ttft=2000ms,tpot=30ms"},
              "goodput": {"chunked": none_passed}}
    rows = {row[0]: row[1:] for row in _table_rows(goodput_table(report))}
    assert rows["chunked"][:3] == ("< 1.31", "-", "1.31")


def test_a_goodput_resting_on_an_unserved_bracket_end_shows_as_a_bound():
    from pdtune.bench.summary import failing_text, goodput_text

    # --goodput-bracket 32,64 and both probes passed: 64 was never served, so 56 is a lower bound
    all_passed = {"goodput": 56.0, "target": 0.9, "points": [[48.0, 1.0, False, False], [56.0, 0.998, False, False]],
                  "failing_rate": 64.0, "bracket": [32.0, 64.0]}
    assert goodput_text(all_passed) == ">= 56.00"
    assert failing_text(all_passed) == "64.00 (bracket)"
    # the doubling never found a failing rate
    assert goodput_text({"goodput": 8.0, "target": 0.9, "points": [[4.0, 1.0], [8.0, 0.95]]}) == ">= 8.00"
    # both ends served
    both = {"goodput": 15.75, "target": 0.9, "points": [[15.75, 0.9, False, False], [18.375, 0.77, False, False]],
            "failing_rate": 18.375, "bracket": [10.5, 21.0]}
    assert (goodput_text(both), failing_text(both)) == ("15.75", "18.38")
    # every probe failed: the bracket's lower end was not served either
    none = {"goodput": 0.125, "target": 0.9, "points": [[0.3125, 0.425, True, False]], "failing_rate": 0.3125,
            "bracket": [0.125, 0.5]}
    assert (goodput_text(none), failing_text(none)) == ("< 0.31", "0.31")


def test_mode_labels_pick_a_pdmux_policy_eager_prefill_or_a_chunk_size_and_bad_ones_stop_before_any_model_loads(tmp_path):
    from pdtune.bench.runner import _engine_config
    from pdtune.errors import PdtuneError

    base = EngineConfig(model="tiny", load_format="dummy")
    small = _engine_config(base, "chunked:512")
    assert (small.mode, small.max_num_batched_tokens) == ("chunked", 512)
    assert _engine_config(base, "pdmux:sglang").pdmux_policy == "sglang"
    eager = _engine_config(base, "pdmux:eager-prefill")
    assert (eager.mode, eager.pdmux_policy, eager.pdmux_prefill_graphs) == ("pdmux", "adaptive", False)
    assert _engine_config(base, "pdmux").pdmux_prefill_graphs
    assert _engine_config(base, "chunked").max_num_batched_tokens == base.max_num_batched_tokens
    for bad in ("chunked:big", "sequential:4", "chunked:0"):
        with pytest.raises(PdtuneError):
            _engine_config(base, bad)
    out = tmp_path / "res"
    result = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "4", "--rate", "50",
                                 "--mode", "chunked:16,chunked", "--max-prompt-len", "40", "--max-output-len", "4",
                                 "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert [s["mode"] for s in json.loads((out / "bench.json").read_text())["summaries"]] == ["chunked:16", "chunked"]
    bad = runner.invoke(app, ["bench", "--workload", "random", "--num-requests", "4", "--rate", "50",
                              "--mode", "chunked,chunked:big", "--out", str(tmp_path / "bad"), *TINY])
    assert bad.exit_code != 0 and "chunked:big" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "bad").exists()  # nothing served before the label was refused


def test_the_table_says_which_bound_each_miss_was():
    from pdtune.bench.summary import slo_misses
    from pdtune.report.bench_report import bench_table

    slo = parse_slo("ttft=1s,tpot=100ms,itl=150ms")
    late = record("a", 100.0, [101.5, 101.6])  # TTFT 1.5 s
    slow = record("b", 100.0, [100.2, 100.5, 100.8])  # TPOT 0.3 s and every gap 0.3 s
    stall = record("c", 100.0, [100.2] + [100.2 + 0.05 * i for i in range(1, 5)] + [100.6])  # mean fine, one 0.2 s gap
    unserved = record("d", 100.0, [100.1], error="not served")
    assert slo.missed(late.ttft_s, late.tpot_s, late.itl_s) == ["ttft"]
    assert slo.missed(slow.ttft_s, slow.tpot_s, slow.itl_s) == ["tpot", "itl"]
    assert slo.missed(stall.ttft_s, stall.tpot_s, stall.itl_s) == ["itl"] and not slo.met(stall.ttft_s, stall.tpot_s, stall.itl_s)
    counts = slo_misses([late, slow, stall, unserved], slo)
    assert counts == {"ttft": 1, "tpot": 1, "itl": 2, "unserved": 1}
    run = RunResult("chunked", 1.0, None, [late, slow, stall, unserved], 4.0, 10, 2.0, 0.02, 0.0)
    report = {"workload": {"name": "random", "requests": 4}, "summaries": [summarize_run(run, slo)]}
    rows = {row[0]: row[1:] for row in _table_rows(bench_table(report))}
    assert rows["missed TTFT / TPOT / ITL / failed or unserved"] == ("1 / 1 / 2 / 1",)


def test_a_result_saved_before_the_miss_counts_gets_them_from_its_records():
    from pdtune.bench.summary import with_slo_misses

    late = dataclasses.asdict(record("a", 100.0, [103.0, 103.01]))  # TTFT 3 s against 2 s, TPOT 10 ms
    on_time = dataclasses.asdict(record("b", 100.0, [100.5, 100.51]))
    saved = {"config": {"slo": "ttft=2000ms,tpot=30ms"}, "summaries": [{"mode": "chunked", "slo_attainment": 0.5}],
             "runs": [{"mode": "chunked", "records": [late, on_time]}]}
    assert with_slo_misses(saved)["summaries"][0]["slo_misses"] == {"ttft": 1, "tpot": 0, "unserved": 0}
    assert "slo_misses" not in saved["summaries"][0]
    unserved_slo = dict(saved, config={"slo": None})
    assert with_slo_misses(unserved_slo) is unserved_slo


def test_the_goodput_table_marks_a_probe_that_fell_behind():
    from pdtune.report.bench_report import goodput_table

    sweep = {"goodput": 10.5, "target": 0.9, "failing_rate": 21.0,
             "points": [[10.5, 1.0, False, False], [21.0, 0.97, False, True]]}
    table = goodput_table({"workload": {"requests": 100}, "config": {"slo": "ttft=2000ms,tpot=30ms"},
                           "goodput": {"pdmux": sweep}})
    rows = {row[0]: row[1:] for row in _table_rows(table)}
    # sustains >= 10.5 / (1 + 10.5 x 2 s / 100 requests)
    assert rows["pdmux"] == ("10.50", "8.68", "21.00", "10.50: 100.0%, 21.00: 97.0%+") and "fell behind" in table.caption


def test_the_attainment_plot_marks_a_probe_that_fell_behind(tmp_path):
    import matplotlib.pyplot as plt

    from pdtune.report import plots

    drawn = []
    real_plot = plt.Axes.plot

    def spy(ax, *args, **kwargs):
        drawn.append(args)
        return real_plot(ax, *args, **kwargs)

    rec = dataclasses.asdict(record("a", 100.0, [100.5, 100.6]))
    sweep = {"goodput": 10.5, "target": 0.9, "failing_rate": 21.0,
             "points": [[10.5, 1.0, False, False], [21.0, 0.97, False, True]]}
    report = {"config": {"slo": "ttft=2000ms"}, "goodput": {"pdmux": sweep},
              "runs": [{"mode": "pdmux", "records": [rec]}]}
    plt.Axes.plot = spy
    try:
        paths = plots.plot_bench(report, str(tmp_path))
    finally:
        plt.Axes.plot = real_plot
    assert str(tmp_path / "attainment-vs-rate.png") in paths
    assert ([21.0], [0.97], "x") in drawn  # the failing probe, crossed


def test_the_latency_plots_compare_the_modes_at_the_rate_most_of_them_served():
    from pdtune.report.plots import runs_to_plot

    runs = [{"mode": m, "rate": r, "n": i} for i, (m, r) in enumerate([
        ("chunked", 8.0), ("chunked", 8.75), ("chunked", 9.125), ("chunked", 8.75), ("pdmux", 8.75), ("pdmux", 13.5),
        ("sglang", 11.0), ("sglang", 9.9)])]
    chosen = runs_to_plot({"runs": runs})
    assert {label: run["n"] for label, run in chosen.items()} == {
        "chunked @ 8.75 req/s": 3, "pdmux @ 8.75 req/s": 4, "sglang @ 9.9 req/s": 7}  # sglang never ran at 8.75
    assert list(runs_to_plot({"runs": [{"mode": "chunked", "rate": None}]})) == ["chunked"]  # a trace replay


def test_a_sweep_of_many_runs_is_cut_into_tables_that_fit_the_terminal():
    from rich.console import Console

    from pdtune.report.bench_report import bench_tables

    def summary(rate):
        run = RunResult("chunked", rate, None, [record("a", 100.0, [100.5, 100.6])], 1.0, 2, 0.5, 0.01, 0.0)
        return summarize_run(run, SLO(2.0, 1.0))

    report = {"workload": {"name": "mixed", "requests": 1}, "summaries": [summary(2.0 ** i) for i in range(9)]}
    tables = bench_tables(report, width=100)
    assert [len(t.columns) - 1 for t in tables] == [4, 4, 1] and tables[2].title.endswith("runs 9-9 of 9")
    console = Console(width=100, record=True)
    console.print(*tables)
    assert "256.00 req/s" in console.export_text()  # every run's column wide enough to read
    assert len(bench_tables(report, width=400)) == 1


def _tiny_arch():
    from pdtune.model.arch import ModelArch
    from pdtune.model.loader import PRESET_DIR, read_json

    return ModelArch.from_hf_config(read_json(f"{PRESET_DIR}/tiny.json"))


def test_the_prefill_ceiling_is_the_requests_over_their_prefill_time_at_the_matmul_rate():
    from pdtune.bench.summary import records_prefill_flops
    from pdtune.perf.model_costs import prefill_flops

    arch = _tiny_arch()  # hidden 64, MLP 128, 2 layers, 4 heads (2 KV) of 16, vocabulary 512, untied
    # 2 FLOPs per token per parameter of the layers and final norm: q,k,v,o 64x(64+32+32)+64x64, MLP 3x64x128,
    # 2 norms of 64, per layer; one LM-head row (512x64) per sequence; attention 2x2 x 2 layers x 4 heads x 16
    # per (new^2 / 2 + new x cached)
    per_token, lm_head, attention = 2 * (2 * (64 * 128 + 64 * 64 + 3 * 64 * 128 + 2 * 64) + 64), 2 * 512 * 64, 2 * 2 * 2 * 4 * 16
    fresh = RequestRecord("a", 0.0, 10, 4, 0, 0.1, 0.01, 0.2, [0.01] * 3)
    reused = RequestRecord("b", 0.5, 20, 4, 16, 0.1, 0.01, 0.2, [0.01] * 3)  # 4 new tokens after 16 cached
    by_hand = (10 * per_token + lm_head + attention * 10 * 10 / 2) + (4 * per_token + lm_head + attention * (4 * 4 / 2 + 4 * 16))
    assert records_prefill_flops(arch, [fresh, reused]) == pytest.approx(by_hand)
    run = RunResult("chunked", 1.0, None, [fresh, reused], 1.0, 4, 0.5, 0.01, 0.0,
                    extra={"prefill_flops": by_hand, "matmul_flops_per_s": 1e6})
    assert summarize_run(run, None)["prefill_ceiling_rate"] == pytest.approx(2 / (by_hand / 1e6))
    unserved = RequestRecord("c", 0.0, 10, 0, 0, None, None, None, [], error="not served")
    assert records_prefill_flops(arch, [unserved]) == pytest.approx(prefill_flops(arch, 10))  # the workload's work


def test_a_run_records_its_prefill_flops_and_has_a_ceiling_only_with_a_measured_matmul_rate():
    from pdtune.bench import runner as bench_runner
    from pdtune.bench.summary import records_prefill_flops
    from pdtune.perf.timing import Ceilings

    engine = Engine(EngineConfig(model="tiny", load_format="dummy", num_kv_blocks=64))
    cfg = bench_runner.BenchConfig(engine.config, ("chunked",), "random", 3, 50.0, max_prompt_len=16, max_output_len=2)
    workload = bench_runner.timed(bench_runner.build_workload(cfg, engine.vocab_size, engine.tokenizer), cfg, 50.0)
    on_cpu = bench_runner.serve_workload(engine, "chunked", workload, cfg, 50.0, None)
    assert on_cpu.extra["prefill_flops"] == records_prefill_flops(engine.arch, on_cpu.records) > 0
    assert "matmul_flops_per_s" not in on_cpu.extra and summarize_run(on_cpu, None)["prefill_ceiling_rate"] is None
    engine.ceilings = Ceilings(copy_bytes_per_s=1e12, matmul_flops_per_s=2e9)  # as a GPU measures at start-up
    measured = bench_runner.serve_workload(engine, "chunked", workload, cfg, 50.0, None)
    assert measured.extra["matmul_flops_per_s"] == 2e9
    assert summarize_run(measured, None)["prefill_ceiling_rate"] == pytest.approx(
        3 / (measured.extra["prefill_flops"] / 2e9))


def test_a_passing_probe_shows_the_rate_it_proves_sustained():
    """A probe that passed at r with N requests prefilled them all within about N / r + TTFT
    seconds, so the engine sustains at least r / (1 + r x TTFT / N); and an engine that sustains
    exactly that passes at r, whose backlog at the end is then one TTFT."""
    from pdtune.bench.summary import sustained_at_least, sustained_text

    c = sustained_at_least(18.375, 100, 2.0)
    assert c == pytest.approx(18.375 / 1.3675)
    n, r = 100, 18.375
    assert n * (r - c) / (r * c) == pytest.approx(2.0)  # the backlog of an engine sustaining c, served at r
    assert sustained_text({"goodput": 0.0, "failing_rate": 1.3, "points": [[1.3, 0.5, False]]}, 100, 2.0) == "-"
    assert sustained_text({"goodput": 2.25, "failing_rate": 2.5, "points": [[2.25, 1.0, False]]}, 40, 10.0) == "1.44"


def test_the_tables_show_the_prefill_ceiling_and_results_saved_before_it_still_render():
    from pdtune.report.bench_report import bench_table, goodput_table

    def summary(mode: str, rate: float, ceiling: float | None) -> dict:
        run = RunResult(mode, rate, None, [record("a", 100.0, [100.5, 100.6])], 1.0, 2, 0.5, 0.01, 0.0,
                        extra={} if ceiling is None else {"prefill_flops": 1e6, "matmul_flops_per_s": ceiling * 1e6})
        return summarize_run(run, SLO(2.0, 1.0))

    goodput = {"chunked": {"goodput": 15.75, "target": 0.9, "failing_rate": 18.375,
                           "points": [[15.75, 0.9, False], [18.375, 0.77, True]]},
               "pdmux": {"goodput": 0.0, "target": 0.9, "failing_rate": 10.5, "points": [[10.5, 0.5, False]]},
               "sequential": {"goodput": 2.0, "target": 0.9, "failing_rate": 4.0,
                              "points": [[2.0, 1.0, False], [4.0, 0.5, True]]},
               "short": {"goodput": 2.25, "target": 0.9, "failing_rate": 2.5, "points": [[2.25, 1.0, False]]}}
    summaries = [summary("chunked", 15.75, 22.0), summary("chunked", 18.375, 23.0), summary("chunked", 21.0, 24.0),
                 summary("pdmux", 10.5, 21.0), summary("sequential", 2.0, None), summary("short", 2.25, 2.0)]
    report = {"workload": {"name": "mixed", "requests": 1}, "config": {"slo": "ttft=2000ms,tpot=1000ms"},
              "summaries": summaries, "goodput": goodput}
    assert _table_rows(bench_table(report))[2] == ("prefill ceiling req/s", "22.00", "23.00", "24.00", "21.00", "-",
                                                   "2.00")
    table = goodput_table(report)
    assert [c.header for c in table.columns][:3] == ["mode", "goodput req/s", "of ceiling"]
    rows = {row[0]: row[1:3] for row in _table_rows(table)}
    assert rows == {"chunked": ("15.75", "68%"), "pdmux": ("< 10.50", "< 50%"), "sequential": ("2.00", "-"),
                    "short": (">= 2.25", ">= 112%!")}
    assert "! above the prefill ceiling" in table.caption
    assert "above the prefill ceiling" not in (goodput_table(dict(report, goodput={
        m: g for m, g in goodput.items() if m != "short"})).caption or "")
    old = dict(report, summaries=[{k: v for k, v in s.items() if k != "prefill_ceiling_rate"} for s in summaries])
    assert "prefill ceiling req/s" not in [row[0] for row in _table_rows(bench_table(old))]
    assert "of ceiling" not in [c.header for c in goodput_table(old).columns]


def test_the_live_progress_recomputes_at_most_at_its_refresh_rate_and_always_at_the_end(monkeypatch):
    """Recomputing the running p90s on every step that finished a request was about half the
    harness's time per step; the line redraws 4 times a second anyway."""
    import io

    from rich.console import Console

    from pdtune.report import bench_report

    now = [100.0]
    monkeypatch.setattr(bench_report.time, "perf_counter", lambda: now[0])
    progress = bench_report.LiveBenchProgress(Console(file=io.StringIO()), "chunked")
    shown = []
    monkeypatch.setattr(progress.live, "update", lambda text: shown.append(text))
    records = [record("a", 100.0, [100.5, 100.6])]
    for t in (100.0, 100.1, 100.2, 100.3, 100.4):
        now[0] = t
        progress.update(1, 3, records)
    assert len(shown) == 2  # the first call, then the one 0.3 s later
    now[0] = 100.45
    progress.update(3, 3, records * 3)
    assert len(shown) == 3 and shown[-1].startswith("[bold]chunked[/]: 3/3 requests")
    assert not progress.live.is_started


def test_a_saved_run_keeps_request_times_to_the_microsecond():
    rec = RequestRecord("a", 0.12345678901, 10, 3, 0, 0.0312345678, 0.0201234567, 0.0714444444, [0.0201234567] * 2)
    saved = RunResult("chunked", 1.0, None, [rec], 1.0, 3, 0.5, 0.01, 0.0).to_dict()["records"][0]
    assert (saved["arrival_s"], saved["ttft_s"], saved["tpot_s"], saved["e2e_s"]) == (0.123457, 0.031235, 0.020123,
                                                                                      0.071444)
    assert saved["itl_s"] == [0.020123, 0.020123] and saved["prompt_tokens"] == 10 and rec.ttft_s == 0.0312345678


def test_the_goodput_table_gives_each_mode_against_chunked_as_far_as_the_served_rates_establish_it():
    from pdtune.bench.summary import goodput_ratio_text
    from pdtune.report.bench_report import goodput_table

    def swept(passed: float | None, failed: float | None) -> dict:
        points = ([[passed, 0.95, False, False]] if passed else []) + ([[failed, 0.5, False, False]] if failed else [])
        return {"goodput": passed or 0.0, "target": 0.9, "failing_rate": failed, "points": points}

    chunked, pdmux = swept(8.75, 9.125), swept(13.5, 14.4)
    assert goodput_ratio_text(pdmux, chunked) == "1.54x"
    assert goodput_ratio_text(swept(9.6, None), swept(6.0, 7.0)) == ">= 1.60x"  # pdmux's failing rate not served
    assert goodput_ratio_text(swept(None, 14.75), swept(10.56, None)) == "< 1.40x"
    assert goodput_ratio_text(swept(13.5, 14.4), swept(10.56, None)) == "<= 1.28x"
    assert goodput_ratio_text(swept(9.6, None), swept(10.56, None)) == "-"  # both only bounded below
    assert goodput_ratio_text(swept(None, 2.0), swept(None, 1.0)) == "-"
    report = {"workload": {"requests": 300}, "config": {"slo": "ttft=2000ms,tpot=30ms"},
              "goodput": {"chunked": chunked, "pdmux": pdmux, "pdmux:sglang": swept(13.5, None)}}
    table = goodput_table(report)
    assert "vs chunked" in [c.header for c in table.columns]
    ratios = {row[0]: row[[c.header for c in table.columns].index("vs chunked")] for row in _table_rows(table)}
    assert ratios == {"chunked": "-", "pdmux": "1.54x", "pdmux:sglang": ">= 1.54x"}
    assert "vs chunked" not in [c.header for c in goodput_table(dict(report, goodput={"pdmux": pdmux})).columns]
