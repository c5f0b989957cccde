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
from pdtune.perf.model_costs import kv_bytes_per_token, num_params, prefill_flops
from pdtune.perf.perf_model import LineFit, fit_line, read_perf_model
from pdtune.perf.profile import fit_partition
from pdtune.planner.pdmux import StepTimePredictor

GREEDY = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
PROMPTS = [list(range(1, n + 1)) for n in (1, 7, 16, 17, 40)] + [[5, 9, 200] * 11]
TINY = ["--model", "tiny", "--load-format", "dummy"]
SAMPLES = ["--batches", "1,4", "--contexts", "64,128", "--prefill-tokens", "32,64", "--iters", "3"]
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
    assert (report["tensor_parallel_size"], report["data_parallel_size"], report["total_sms"]) == (1, 1, 132)
    assert report["environment"]["torch"]
    parts = {p["name"]: p for p in report["partitions"]}
    assert set(parts) == PARTITIONS
    for part in parts.values():
        decode, prefill = part["samples"]["decode"], part["samples"]["prefill"]
        assert len(decode) == (4 if part["decode_sms"] else 0) and len(prefill) == (2 if part["prefill_sms"] else 0)
        assert (part["decode_fit"] is None) == (not part["decode_sms"])
        assert (part["layer_fit"] is None) == (not part["prefill_sms"])
        for fit in (part["decode_fit"], part["layer_fit"]):
            assert fit is None or all(math.isfinite(v) for v in fit.values())
        assert all(r["alone_ms"] > 0 for r in decode) and all(r["layer_ms"] > 0 for r in prefill)
        # the CPU runs nothing concurrently: no contention samples, factor 1, and the JSON says why
        assert all(r["beside_prefill_ms"] is None for r in decode) and part["contention_factor"] == 1.0
    assert report["contention_measured"] is False and "CPU" in report["contention_note"]
    assert {(r["batch"], r["context"]) for r in parts["96/36"]["samples"]["decode"]} == {(1, 64), (1, 128), (4, 64), (4, 128)}
    rows = list(csv.DictReader(open(profiled[: -len(".json")] + ".csv")))
    assert len(rows) == 6 * (4 + 2) + 4 + 2
    assert {r["partition"] for r in rows} == PARTITIONS and rows[0]["batch"] == "1"


@pytest.mark.parametrize("args, message", [
    (["--batches", "1,x"], "--batches takes comma-separated integers"),
    (["--prefill-tokens", "32,32"], "two or more distinct --prefill-tokens"),
    (["--model", "no-such-model"], "no-such-model"),
])
def test_user_errors_are_one_line_without_a_traceback(tmp_path, args, message):
    result = CliRunner().invoke(app, ["profile", *TINY, *SAMPLES, *args, "--out", str(tmp_path / "p.json")])
    assert result.exit_code == 1 and "error:" in result.output and message in " ".join(result.output.split())  # rich wraps long lines
    assert "Traceback" not in result.output and not (tmp_path / "p.json").exists()


def test_the_fit_recovers_known_coefficients():
    x = [1e9, 2e9, 5e9, 9e9, 1.6e10]  # bytes: the scale a real decode step reads
    fit = fit_line(x, [0.4 + 2.5e-9 * v for v in x])
    assert fit.intercept == pytest.approx(0.4, rel=1e-9) and fit.slope == pytest.approx(2.5e-9, rel=1e-9)
    assert fit.rms_residual == pytest.approx(0.0, abs=1e-9)
    noisy = fit_line(x, [0.4 + 2.5e-9 * v + e for v, e in zip(x, (0.1, -0.1, 0.1, -0.1, 0.0))])
    assert noisy.slope == pytest.approx(2.5e-9, rel=0.02) and 0 < noisy.rms_residual < 0.1
    with pytest.raises(ValueError):
        fit_line([3.0, 3.0], [1.0, 2.0])

    decode = [dict(bytes=b, alone_ms=1.0 + 1e-9 * b, beside_prefill_ms=(1.0 + 1e-9 * b) * r)
              for b, r in ((1e9, 1.2), (3e9, 1.3), (7e9, 1.25))]
    prefill = [dict(flops_per_layer=f, layer_ms=0.6 + 4e-12 * f) for f in (1e11, 4e11, 1.6e12)]
    part = fit_partition(decode, prefill)
    assert part.decode.intercept == pytest.approx(1.0) and part.decode.slope == pytest.approx(1e-9)
    assert part.layer.intercept == pytest.approx(0.6) and part.layer.slope == pytest.approx(4e-12)
    assert part.contention == pytest.approx(1.25)  # the median slowdown
    alone = fit_partition([dict(r, beside_prefill_ms=None) for r in decode], [])  # CPU: never measured
    assert alone.contention == 1.0 and alone.layer is None


def _with_known_fit(profiled: str, tmp_path) -> str:
    """The profiled model with partition 96/36's coefficients replaced by known ones."""
    report = json.load(open(profiled))
    part = next(p for p in report["partitions"] if p["name"] == "96/36")
    part.update(decode_fit={"a_ms": 0.5, "b_ms_per_byte": 1e-6, "rms_residual_ms": 0.0}, contention_factor=1.5,
                layer_fit={"c_ms": 0.2, "d_ms_per_flop": 1e-5, "rms_residual_ms": 0.0})
    path = tmp_path / "known.json"
    path.write_text(json.dumps(report))
    return str(path)


def test_a_loaded_model_sets_the_planner_priors_to_its_fit(profiled, tmp_path):
    engine = LLM("tiny", load_format="dummy", mode="pdmux", perf_model=_with_known_fit(profiled, tmp_path)).engine
    pred = engine.stepper.planner.predictor
    arch, parts = engine.loaded.arch, {p.name: p for p in engine.stepper.executor.partitions}
    bytes_read = num_params(arch) * 4 + 1000 * kv_bytes_per_token(arch, 4)
    assert pred.decode_prior_ms(parts["96/36"], 1000) == pytest.approx((0.5 + 1e-6 * bytes_read) * 1.5)
    assert pred.layer_prior_ms(parts["96/36"], 64) == pytest.approx(0.2 + 1e-5 * prefill_flops(arch, 64) / arch.num_layers)
    # the online correction stays on top of the fitted prior
    pred.observe_decode(parts["96/36"], 1000, measured_ms=2 * pred.decode_prior_ms(parts["96/36"], 1000))
    assert pred.decode_ms(parts["96/36"], 1000) == pytest.approx(2 * (0.5 + 1e-6 * bytes_read) * 1.5)
    # without a model: the roofline priors
    roofline = StepTimePredictor(arch, 4, 132)
    assert roofline.decode_prior_ms(parts["96/36"], 1000) != pytest.approx(pred.decode_prior_ms(parts["96/36"], 1000))
    profiled_fit = read_perf_model(profiled).partitions["112/20"]
    assert pred.layer_prior_ms(parts["112/20"], 32) == profiled_fit.layer(prefill_flops(arch, 32) / arch.num_layers)
    assert LineFit(-5.0, 1.0, 0.0)(1.0) > 0  # a fit extrapolated below zero still predicts a positive time


def test_pdmux_with_a_perf_model_gives_the_same_greedy_tokens_as_sequential(profiled):
    reference = [o.token_ids for o in LLM("tiny", load_format="dummy", mode="sequential").generate(PROMPTS, GREEDY)]
    llm = LLM("tiny", load_format="dummy", mode="pdmux", perf_model=profiled, pdmux_prefill_tokens=20)
    assert llm.engine.stepper.planner.predictor.fits
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
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r["partitions"][0]["decode_fit"].update(a_ms=float("nan"))),
     "malformed"),
    (lambda tmp, prof: _broken(tmp, prof, lambda r: r.update(model="llama-3.1-8b")), "measured for 'llama-3.1-8b'"),
])
def test_an_unusable_perf_model_is_a_clear_error_naming_the_file(tmp_path, profiled, make, message):
    path = make(tmp_path, profiled)
    with pytest.raises(PdtuneError, match=message) as err:
        EngineConfig(model="tiny", load_format="dummy", mode="pdmux", perf_model=path)
    assert path in str(err.value)


def test_a_perf_model_of_another_dtype_or_other_partitions_is_refused(profiled):
    with pytest.raises(PdtuneError, match="measured in torch.float32, but the engine runs torch.bfloat16"):
        LLM("tiny", load_format="dummy", dtype="bfloat16", mode="pdmux", perf_model=profiled)
    with pytest.raises(PdtuneError, match="none of this engine's partitions"):
        read_perf_model(profiled, partitions=["100/32"])


@pytest.mark.parametrize("sizes", [{"tensor_parallel_size": 2}, {"data_parallel_size": 2}])
def test_profiling_a_parallel_engine_is_refused(sizes):
    from pdtune.perf.profile import ProfileConfig

    with pytest.raises(PdtuneError, match="profile measures one process on one GPU"):
        ProfileConfig(EngineConfig(model="tiny", load_format="dummy", mode="pdmux", **sizes))
