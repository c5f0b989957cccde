"""`pdtune profile` on the CPU (simulated executor): the saved model, the fit, and the planner
priors it sets."""

import csv
import json
import math

import pytest
from typer.testing import CliRunner

from pdtune import LLM, SamplingParams
from pdtune.cli.app import app
from pdtune.config import DEFAULT_SPLITS, EngineConfig
from pdtune.errors import PdtuneError
from pdtune.executor.partitions import simulated_partitions
from pdtune.executor.partitions import Partition
from pdtune.perf.model_costs import PrefillShape, kv_bytes_per_token, num_params
from pdtune.perf.perf_model import DECODE_TERMS, LAYER_TERMS, LinearFit, fit_linear, read_perf_model
from pdtune.perf.profile import decode_sample, fit_partition, prefill_sample
from pdtune.planner.predictor import StepTimePredictor, bandwidth_share

GREEDY = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
PROMPTS = [list(range(1, n + 1)) for n in (1, 7, 16, 17, 40)] + [[5, 9, 200] * 11]
TINY = ["--model", "tiny", "--load-format", "dummy"]
SAMPLES = ["--batches", "1,4", "--contexts", "64,128", "--prefill-tokens", "16,32,64", "--reused-tokens", "0,32",
           "--iters", "3"]
PARTITIONS = {p.name for p in simulated_partitions(DEFAULT_SPLITS)}


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("profile") / "profile-tiny.json"
    result = CliRunner().invoke(app, ["profile", *TINY, *SAMPLES, "--out", str(path)])
    assert result.exit_code == 0, result.output
    return str(path)


def test_the_cli_writes_every_partition_with_finite_coefficients_and_its_samples(profiled):
    report = json.load(open(profiled))
    assert report["kind"] == "pdtune-perf-model" and report["model"] == "tiny" and report["dtype"] == "torch.float32"
    assert report["version"] == 2 and report["settings"]["reused_tokens"] == [0, 32]
    assert (report["tensor_parallel_size"], report["data_parallel_size"], report["total_sms"]) == (1, 1, 132)
    assert report["environment"]["torch"]
    parts = {p["name"]: p for p in report["partitions"]}
    assert set(parts) == PARTITIONS
    for part in parts.values():
        decode, prefill = part["samples"]["decode"], part["samples"]["prefill"]
        assert len(decode) == (4 if part["decode_sms"] else 0) and len(prefill) == (6 if part["prefill_sms"] else 0)
        assert (part["decode_fit"] is None) == (not part["decode_sms"])
        assert (part["layer_fit"] is None) == (not part["prefill_sms"])
        for fit, terms in ((part["decode_fit"], DECODE_TERMS), (part["layer_fit"], LAYER_TERMS)):
            assert fit is None or (set(fit["coef_ms"]) == set(terms)
                                   and all(math.isfinite(v) for v in [*fit["coef_ms"].values(), fit["rms_residual_ms"]]))
        assert all(r["alone_ms"] > 0 for r in decode) and all(r["layer_ms"] > 0 for r in prefill)
        # the CPU runs nothing concurrently: no contention samples, factor 1, and the JSON says why
        assert all(r["beside_prefill_ms"] is None for r in decode) and part["contention_factor"] == 1.0
    assert report["contention_measured"] is False and "CPU" in report["contention_note"]
    assert {(r["batch"], r["context"], r["context_tokens"]) for r in parts["96/36"]["samples"]["decode"]} == {
        (1, 64, 64), (1, 128, 128), (4, 64, 256), (4, 128, 512)}
    assert {(r["tokens"], r["reused"], r["cross"]) for r in parts["96/36"]["samples"]["prefill"]} == {
        (t, r, t * r) for t in (16, 32, 64) for r in (0, 32)}
    rows = list(csv.DictReader(open(profiled[: -len(".json")] + ".csv")))
    assert len(rows) == 6 * (4 + 6) + 4 + 6
    assert {r["partition"] for r in rows} == PARTITIONS and rows[0]["batch"] == "1"


@pytest.mark.parametrize("args, message", [
    (["--batches", "1,x"], "--batches takes comma-separated integers"),
    (["--prefill-tokens", "32,64"], "needs three or more --prefill-tokens"),
    (["--reused-tokens", "0"], "--reused-tokens with 0 and a positive count"),
    (["--reused-tokens", "0,-4"], "--reused-tokens takes integers of 0 or more"),
    (["--batches", "4"], "two or more --batches and two or more --contexts"),
    (["--splits", "104-28"], "--splits takes prefill/decode SM pairs"),
    (["--model", "no-such-model"], "no-such-model"),
])
def test_user_errors_are_one_line_without_a_traceback(tmp_path, args, message):
    result = CliRunner().invoke(app, ["profile", *TINY, *SAMPLES, *args, "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 1 and "error:" in result.output and message in " ".join(result.output.split())  # rich wraps long lines
    assert "Traceback" not in result.output and not (tmp_path / "p.json").exists()


def test_the_fit_recovers_known_coefficients():
    truth = {"const": 0.4, "context_tokens": 2.5e-5, "batch": 0.01}
    decode = [decode_sample(b, c) for b in (1, 16, 64) for c in (512, 2048, 8192)]
    fit = fit_linear(decode, [sum(v * (1 if t == "const" else s[t]) for t, v in truth.items()) for s in decode],
                     DECODE_TERMS)
    assert fit.coef == pytest.approx(truth, rel=1e-6) and fit.rms_residual == pytest.approx(0.0, abs=1e-9)
    layer_truth = {"const": 0.6, "tokens": 1e-4, "square": 2e-9, "cross": 3e-9}
    prefill = [prefill_sample(t, r) for t in (512, 2048, 8192) for r in (0, 4096)]
    y = [sum(v * (1 if t == "const" else s[t]) for t, v in layer_truth.items()) for s in prefill]
    noise = (0.002, -0.001, -0.002, 0.001, 0.001, -0.002)  # relative, uncorrelated with the terms
    noisy = fit_linear(prefill, [v * (1 + e) for v, e in zip(y, noise)], LAYER_TERMS)
    assert noisy.coef == pytest.approx(layer_truth, rel=0.1) and 0 < noisy.rms_residual < 0.005
    with pytest.raises(ValueError, match="cannot separate"):
        fit_linear([prefill_sample(t, 0) for t in (512, 2048, 8192)], [1, 2, 3], LAYER_TERMS)  # no reuse: no cross term

    rows = [dict(s, alone_ms=1.0, beside_prefill_ms=r) for s, r in zip(decode[::4], (1.2, 1.3, 1.25))]
    part = fit_partition([dict(s, alone_ms=y, beside_prefill_ms=y * 1.25) for s, y in
                          zip(decode, [0.4 + 2.5e-5 * s["context_tokens"] + 0.01 * s["batch"] for s in decode])],
                         [dict(s, layer_ms=v) for s, v in zip(prefill, y)])
    assert part.decode.coef == pytest.approx(truth, rel=1e-6) and part.layer.coef == pytest.approx(layer_truth, rel=1e-6)
    assert part.contention == pytest.approx(1.25)
    assert fit_partition(rows, []).contention == pytest.approx(1.25) and fit_partition(rows, []).layer is None
    alone = fit_partition([dict(r, beside_prefill_ms=None) for r in rows], [])  # CPU: never measured
    assert alone.contention == 1.0


def _with_known_fit(profiled: str, tmp_path, names=("96/36",), keep=None) -> str:
    """The profiled model with the named partitions' coefficients replaced by known ones
    (scaled by their decode SMs, so interpolation shows), and only `keep` partitions, if given."""
    report = json.load(open(profiled))
    for part in report["partitions"]:
        if part["name"] in names:
            k = part["decode_sms"] / 36
            part.update(decode_fit={"coef_ms": {"const": 0.5 * k, "context_tokens": 1e-3 * k, "batch": 0.1 * k},
                                    "rms_residual_ms": 0.0}, contention_factor=1.5,
                        layer_fit={"coef_ms": {"const": 0.2 * k, "tokens": 1e-3 * k, "square": 1e-6 * k,
                                               "cross": 2e-6 * k}, "rms_residual_ms": 0.0})
    if keep is not None:
        report["partitions"] = [p for p in report["partitions"] if p["name"] in keep]
    path = tmp_path / "known.json"
    path.write_text(json.dumps(report))
    return str(path)


def test_a_loaded_model_sets_the_planner_priors_to_its_fit(profiled, tmp_path):
    engine = LLM("tiny", load_format="dummy", mode="pdmux", perf_model=_with_known_fit(profiled, tmp_path)).engine
    pred = engine.stepper.planner.predictor
    arch, parts = engine.loaded.arch, {p.name: p for p in engine.stepper.executor.partitions}
    assert pred.decode_prior_ms(parts["96/36"], 4, 1000) == pytest.approx((0.5 + 1e-3 * 1000 + 0.1 * 4) * 1.5)
    shape = PrefillShape.single(64, 100) + PrefillShape.single(8)
    assert pred.layer_prior_ms(parts["96/36"], shape) == pytest.approx(
        0.2 + 1e-3 * 72 + 1e-6 * (64 * 64 + 8 * 8) + 2e-6 * 64 * 100)
    assert pred.fit(parts["96/36"])[1] == "profiled"
    # the online correction stays on top of the fitted prior
    pred.observe_decode(parts["96/36"], 4, 1000, measured_ms=2 * pred.decode_prior_ms(parts["96/36"], 4, 1000))
    assert pred.decode_ms(parts["96/36"], 4, 1000) == pytest.approx(2 * (0.5 + 1e-3 * 1000 + 0.1 * 4) * 1.5)
    # without a model: the roofline priors
    roofline = StepTimePredictor(arch, 4, 132)
    bytes_read = num_params(arch) * 4 + 1000 * kv_bytes_per_token(arch, 4)
    assert roofline.decode_prior_ms(parts["96/36"], 4, 1000) == pytest.approx(
        bytes_read / (roofline.bw * bandwidth_share(36)) * 1e3)
    assert roofline.fit(parts["96/36"])[1] == "none"
    profiled_fit = read_perf_model(profiled).partitions["112/20"].fit
    assert pred.layer_prior_ms(parts["112/20"], PrefillShape.single(32)) == profiled_fit.layer_ms(PrefillShape.single(32))
    assert LinearFit({"const": -5.0, "tokens": 1.0}, 0.0)(tokens=1.0) > 0  # a fit below zero still predicts > 0


def test_splits_between_two_profiled_ones_get_interpolated_fits(profiled, tmp_path):
    path = _with_known_fit(profiled, tmp_path, names=("104/28", "72/60"), keep=("104/28", "72/60", "132/0", "0/132"))
    engine = LLM("tiny", load_format="dummy", mode="pdmux", perf_model=path).engine
    pred, parts = engine.stepper.planner.predictor, {p.name: p for p in engine.stepper.executor.partitions}
    # decode SMs 36 lies a quarter of the way from 28 to 60: coefficients scale with decode SMs / 36
    assert pred.fit(parts["96/36"])[1] == "interpolated"
    assert pred.decode_prior_ms(parts["96/36"], 4, 1000) == pytest.approx((0.5 + 1.0 + 0.4) * 1.5)
    assert pred.layer_prior_ms(parts["96/36"], PrefillShape.single(10)) == pytest.approx(0.2 + 1e-2 + 1e-4)
    assert pred.fit(parts["112/20"])[1] == "none"  # below the profiled range: the roofline prior
    assert pred.fit(parts["132/0"])[1] == "profiled"
    none = Partition((0, 0), 100, 10, None, None)
    with pytest.raises(PdtuneError, match="covers none of this engine's partitions"):
        read_perf_model(path, partitions=[none])


def test_profile_measures_only_the_splits_asked(tmp_path):
    out = tmp_path / "two.json"
    result = CliRunner().invoke(app, ["profile", *TINY, *SAMPLES, "--splits", "104/28,72/60", "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = {p["name"] for p in json.load(open(out))["partitions"]}
    assert names == {"104/28", "72/60", "132/0", "0/132"}
    engine = LLM("tiny", load_format="dummy", mode="pdmux", perf_model=str(out)).engine
    pred = engine.stepper.planner.predictor
    assert {p.name: pred.fit(p)[1] for p in engine.stepper.executor.partitions} == {
        "112/20": "none", "104/28": "profiled", "96/36": "interpolated", "88/44": "interpolated",
        "80/52": "interpolated", "72/60": "profiled", "132/0": "profiled", "0/132": "profiled"}


def test_pdmux_with_a_perf_model_gives_the_same_greedy_tokens_as_sequential(profiled):
    reference = [o.token_ids for o in LLM("tiny", load_format="dummy", mode="sequential").generate(PROMPTS, GREEDY)]
    llm = LLM("tiny", load_format="dummy", mode="pdmux", perf_model=profiled, pdmux_prefill_tokens=20)
    assert llm.engine.stepper.planner.predictor.perf_model is not None
    assert [o.token_ids for o in llm.generate(PROMPTS, GREEDY)] == reference


def _broken(tmp_path, profiled, edit) -> str:
    report = json.load(open(profiled))
    edit(report)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(report))
    return str(path)


@pytest.mark.parametrize("make, message", [
    (lambda tmp, prof: str(tmp / "missing.json"), "perf model file not found"),
    (lambda tmp, prof: (tmp / "bad.json").write_text("{nope") and str(tmp / "bad.json"), "not valid JSON"),
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r.update(kind="pdtune-bench")), "not a pdtune perf model"),
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r.pop("partitions")), "malformed"),
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r["partitions"][0]["decode_fit"]["coef_ms"].update(
        batch=float("nan"))), "malformed"),
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r["partitions"][0]["decode_fit"]["coef_ms"].pop("batch")),
     "malformed"),
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r.update(version=1)), "format version 1"),
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r.update(model="llama-3.1-8b")), "measured for 'llama-3.1-8b'"),
])
def test_an_unusable_perf_model_is_a_clear_error_naming_the_file(tmp_path, profiled, make, message):
    path = make(tmp_path, profiled)
    with pytest.raises(PdtuneError, match=message) as err:
        EngineConfig(model="tiny", load_format="dummy", mode="pdmux", perf_model=path)
    assert path in str(err.value)


def test_a_perf_model_of_another_dtype_gpu_or_other_partitions_is_refused(profiled, tmp_path):
    other_gpu = _broken(tmp_path, profiled, lambda r: r["environment"].update(gpu="NVIDIA H200"))
    with pytest.raises(PdtuneError, match="measured on NVIDIA H200, this engine runs on a CPU"):
        LLM("tiny", load_format="dummy", mode="pdmux", perf_model=other_gpu)
    with pytest.raises(PdtuneError, match="measured in torch.float32, but the engine runs torch.bfloat16"):
        LLM("tiny", load_format="dummy", dtype="bfloat16", mode="pdmux", perf_model=profiled)
    with pytest.raises(PdtuneError, match="none of this engine's partitions"):
        read_perf_model(profiled, partitions=[Partition((0, 0), 122, 10, None, None)])  # below every profiled split


def test_profiling_data_parallel_replicas_is_refused():
    from pdtune.perf.profile import ProfileConfig

    with pytest.raises(PdtuneError, match="profile measures one replica"):
        ProfileConfig(EngineConfig(model="tiny", load_format="dummy", mode="pdmux", data_parallel_size=2))


def test_two_ranks_profile_through_the_step_broadcast_and_their_model_serves_only_that_size(tiny_hf_model, tmp_path):
    """Every timed launch goes to both ranks (a missed one would hang the other rank's
    collectives); the model is refused by an engine of another tensor-parallel size."""
    folder = tiny_hf_model("qwen2").folder
    out = tmp_path / "tp2.json"
    result = CliRunner().invoke(app, ["profile", "--model", folder, *SAMPLES, "--splits", "96/36", "-tp", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.load(open(out))
    assert report["tensor_parallel_size"] == 2 and {p["name"] for p in report["partitions"]} == {
        "96/36", "132/0", "0/132"}
    with LLM(folder, mode="pdmux", pdmux_splits=((96, 36),), tensor_parallel_size=2, perf_model=str(out)) as llm:
        got = llm.generate(PROMPTS, GREEDY)
    ref = LLM(folder, mode="sequential").generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in got] == [o.token_ids for o in ref]
    with pytest.raises(PdtuneError, match="measured at tensor parallel size 2, the engine runs 1"):
        LLM(folder, mode="pdmux", pdmux_splits=((96, 36),), perf_model=str(out))


def test_bench_pdmux_times_every_partition_through_the_engines_launches(tmp_path):
    result = CliRunner().invoke(app, ["bench-pdmux", *TINY, "--max-model-len", "256", "--batch", "2", "--context",
                                      "32", "--prefill-tokens", "48", "--gang", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {r["split"]: r for r in json.load(open(tmp_path / "bench-pdmux.json"))["rows"]}
    assert set(rows) == PARTITIONS
    assert rows["96/36"]["decode_alone_ms"] > 0 and rows["96/36"]["prefill_layer_alone_ms"] > 0
    assert "decode_alone_ms" not in rows["132/0"] and "prefill_layer_alone_ms" not in rows["0/132"]
    assert all("slowdown" not in r for r in rows.values())  # the CPU runs nothing concurrently


def test_report_re_renders_a_saved_profile(profiled):
    result = CliRunner().invoke(app, ["report", profiled], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "TP 1" in out and "96/36" in out and "contention" in out and "prefill ms per layer" in out


def test_data_parallel_replicas_and_their_dispatcher_take_the_profile(profiled):
    with LLM("tiny", load_format="dummy", mode="pdmux", data_parallel_size=2, perf_model=profiled) as llm:
        cost = llm.engine.dispatcher.cost
        assert cost.decode_fit is not None and cost.prefill_fit is not None
        got = llm.generate(PROMPTS, GREEDY)
    reference = LLM("tiny", load_format="dummy", mode="sequential").generate(PROMPTS, GREEDY)
    assert [o.token_ids for o in got] == [o.token_ids for o in reference]


def test_a_profile_serves_only_engines_on_its_page_size(profiled, tmp_path):
    """Decode attention reads 16- and 64-token pages differently, so a profile names its pages and
    an engine on other pages refuses it; a file made before pages were recorded is still read."""
    report = json.load(open(profiled))
    assert report["block_size"] == 16  # the CPU's default pages
    with pytest.raises(PdtuneError, match="16-token KV pages, the engine runs 64: profile with --block-size 64"):
        LLM("tiny", load_format="dummy", mode="pdmux", perf_model=profiled, block_size=64)
    assert read_perf_model(profiled, block_size=16).block_size == 16
    del report["block_size"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(report))
    assert read_perf_model(str(older), block_size=64).block_size is None
