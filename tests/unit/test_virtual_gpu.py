"""bench --simulate: the virtual GPU's step times, its clock in the engine, and the bench runs on it
(CPU, the tiny model's architecture, a hand-written profile with round figures)."""

import json

import pytest
from typer.testing import CliRunner

from pdtune.bench.runner import BenchConfig, run_bench
from pdtune.cli.app import app
from pdtune.config import DEFAULT_SPLITS, EngineConfig
from pdtune.engine import Engine
from pdtune.executor.partitions import simulated_partitions
from pdtune.executor.virtual_gpu import (CONTEXT_BYTES, HOST_MS_PER_STEP, PREFILL_BESIDE_DECODE,
                                         PREFILL_BESIDE_WHOLE_GPU_DECODE, PREFILL_LAYER_LAUNCH_MS, VirtualGPU,
                                         VirtualInputs, VirtualPdmuxExecutor, VirtualRunner)
from pdtune.model.loader import load_tokenizer
from pdtune.perf.model_costs import num_params
from pdtune.perf.perf_model import KIND, VERSION, read_perf_model
from pdtune.request.sampling import SamplingParams
from pdtune.request.sequence import Sequence
from pdtune.scheduler.scheduler import ScheduledChunk, StepPlan
from pdtune.search import SearchConfig, StudyMismatchError, run_search
from pdtune.slo import SLO

DECODE_MS, LAYER_MS, CONTENTION = 10.0, 2.0, 1.5
TINY = EngineConfig(model="tiny", load_format="dummy")
PARAMS = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)


def write_profile(path, gpu: str | None = "NVIDIA H100 80GB HBM3") -> str:
    """A profile of the tiny model whose fits are constants: a decode step DECODE_MS, a prefill
    layer LAYER_MS, decode beside prefill CONTENTION times slower."""
    parts = []
    for name, decode_sms, prefill_sms in (("108/24", 24, 108), ("68/64", 64, 68), ("132/0", 0, 132), ("0/132", 132, 0)):
        parts.append({
            "name": name, "decode_sms": decode_sms, "prefill_sms": prefill_sms,
            "decode_fit": {"coef_ms": {"const": DECODE_MS, "context_tokens": 0.0, "batch": 0.0}, "rms_residual_ms": 0.0}
            if decode_sms else None,
            "layer_fit": {"coef_ms": {"const": LAYER_MS, "tokens": 0.0, "square": 0.0, "cross": 0.0},
                          "rms_residual_ms": 0.0} if prefill_sms else None,
            "contention_factor": CONTENTION if decode_sms and prefill_sms else 1.0})
    profile = {"kind": KIND, "version": VERSION, "model": "tiny", "dtype": "torch.bfloat16", "tensor_parallel_size": 1,
               "block_size": 16, "total_sms": 132, "environment": {"gpu": gpu, "gpu_memory_gib": 79.2},
               "partitions": parts}
    path.write_text(json.dumps(profile))
    return str(path)


@pytest.fixture
def profile(tmp_path) -> str:
    return write_profile(tmp_path / "profile.json")


def test_partitions_are_granted_in_the_drivers_sm_steps():
    parts = simulated_partitions(((112, 20), (110, 22), (72, 60)), 132, sm_step=8)
    assert [p.name for p in parts] == ["108/24", "68/64", "132/0", "0/132"]  # 20 and 22 both give 24: one partition
    assert [p.name for p in simulated_partitions(((112, 20),))][0] == "112/20"  # the CPU executor's: as asked


def test_chunked_steps_take_the_profiles_times_on_the_virtual_clock(profile):
    # a KV pool of its own: sized from the virtual H100's memory, the tiny model's would hold millions of blocks
    engine = Engine(EngineConfig(model="tiny", load_format="dummy", mode="chunked", perf_model=profile,
                                 num_kv_blocks=64), simulate=True)
    assert engine.config.overlap_scheduling is False and engine.config.block_size == 16  # the profile's pages
    seq = engine.add_request(list(range(1, 9)), PARAMS, arrival_time=0.0)
    while engine.has_unfinished():
        engine.step()
    prefill = HOST_MS_PER_STEP + 2 * LAYER_MS  # two layers, on the whole GPU: no decode beside
    decode = HOST_MS_PER_STEP + DECODE_MS
    assert [t * 1e3 for t in seq.token_times] == pytest.approx([prefill + i * decode for i in range(4)])
    assert engine.clock.now() == pytest.approx(seq.token_times[-1])


def _executor(profile):
    _, arch, _ = load_tokenizer(TINY)
    gpu = VirtualGPU(read_perf_model(profile), arch, 2)
    parts = gpu.partitions(DEFAULT_SPLITS)
    return gpu, parts, VirtualPdmuxExecutor(gpu, VirtualRunner(gpu, parts), parts, num_layers=4)


def _chunk(tokens: int) -> ScheduledChunk:
    return ScheduledChunk(Sequence(list(range(1, tokens + 1)), PARAMS), tokens)


def test_the_kv_pool_is_sized_from_the_profiled_gpus_memory(profile):
    gpu, _, _ = _executor(profile)
    free, total = gpu.free_memory()  # as torch.cuda.mem_get_info would give it once the weights are loaded
    assert total == int(79.2 * (1 << 30)) and total - free == num_params(gpu.arch) * 2 + CONTEXT_BYTES


def test_pdmux_blocks_queue_on_the_prefill_timeline_and_slow_the_decode_they_run_beside(profile):
    gpu, parts, ex = _executor(profile)
    mixed = parts[0]
    decode = (mixed, VirtualInputs([_chunk(1)], []))
    job = ex.start_prefill(StepPlan([_chunk(100)]))
    launch = ex.launch_step(decode, job, mixed, 2)
    block_ms = 2 * (LAYER_MS * PREFILL_BESIDE_DECODE + PREFILL_LAYER_LAUNCH_MS)  # beside decode, as measured in pdmux
    assert job.remaining_layers == 2 and not job.done.query()
    _, decode_ms = ex.finish_decode(launch)
    # beside the block the step runs CONTENTION times slower; once it ends, at its pace alone
    assert decode_ms == pytest.approx(block_ms + (1 - block_ms / (DECODE_MS * CONTENTION)) * DECODE_MS)
    assert job.done.query() and job.last_block.ms() == pytest.approx(block_ms)
    start = gpu.clock.now()
    ex.launch_step(None, job, mixed, 1)
    ex.launch_step(None, job, mixed, 1)  # queued behind the first: the planner sees a full queue
    assert job.queue_full and job.remaining_layers == 0 and not job.finished
    job.done.synchronize()
    # the second block starts when the first ends: the second launch's host time hides behind it
    assert job.finished and (gpu.clock.now() - start) * 1e3 == pytest.approx(HOST_MS_PER_STEP + block_ms)
    alone = ex.launch_step((parts[-1], VirtualInputs([_chunk(1)], [])), None, None, 0)
    assert ex.finish_decode(alone)[1] == pytest.approx(DECODE_MS)  # decode alone: no contention
    # a block on the mixed partition still running: the next decode, given the whole GPU, runs
    # beside it slowed by the mixed partition's contention factor until it ends
    job = ex.start_prefill(StepPlan([_chunk(100)]))
    ex.launch_step(None, job, mixed, 4)
    left_ms = (job.done.t - gpu.clock.now()) * 1e3 - HOST_MS_PER_STEP  # once the next step's host time is spent
    assert 0 < left_ms < DECODE_MS * CONTENTION
    block_end = job.done.t
    full = ex.finish_decode(ex.launch_step((parts[-1], VirtualInputs([_chunk(1)], [])), None, None, 0))[1]
    assert full == pytest.approx(left_ms + (1 - left_ms / (DECODE_MS * CONTENTION)) * DECODE_MS)
    # ... and the block, beside decode on the whole GPU for the rest of its time, ends that much later
    assert (job.done.t - block_end) * 1e3 == pytest.approx((PREFILL_BESIDE_WHOLE_GPU_DECODE - 1) * left_ms)
    job = ex.start_prefill(StepPlan([_chunk(100)]))
    ex.launch_step(None, job, parts[-2], 4)  # prefill alone on the whole GPU: the profile's fit as is
    assert job.last_block.ms() is None  # polled before it ends
    job.done.synchronize()
    assert job.last_block.ms() == pytest.approx(4 * LAYER_MS)


def _bench(profile, modes=("chunked", "pdmux"), trace_path=None):
    engine = EngineConfig(model="tiny", load_format="dummy", perf_model=profile, max_model_len=512, num_kv_blocks=512,
                          trace_path=trace_path)
    cfg = BenchConfig(engine, modes, "random", num_requests=12, rate=40.0, max_prompt_len=200, max_output_len=16,
                      slo=SLO(ttft_s=0.5, tpot_s=0.05), warmup_requests=2, simulate=True)
    return run_bench(cfg)


def test_a_simulated_bench_repeats_exactly_and_says_it_was_simulated(profile):
    first, again = _bench(profile), _bench(profile)
    for a, b in zip(first["runs"], again["runs"]):
        assert a["records"] == b["records"]  # the virtual clock: no host noise
        assert a["extra"]["simulated"] == {"gpu": "NVIDIA H100 80GB HBM3", "perf_model": profile}
    chunked, pdmux = first["runs"]
    assert [r["output_tokens"] for r in chunked["records"]] == [r["output_tokens"] for r in pdmux["records"]]
    assert all(r["error"] is None and r["ttft_s"] > 0 for r in chunked["records"] + pdmux["records"])
    # pdmux decodes beside prefill: its steps take at least a decode step, chunked's mixed ones layers only
    assert min(r["tpot_s"] for r in pdmux["records"] if r["tpot_s"]) >= (DECODE_MS + HOST_MS_PER_STEP) / 1e3 * 0.999


def test_a_simulated_trace_is_stamped_with_the_virtual_clock(profile, tmp_path):
    trace = tmp_path / "trace.jsonl"
    run = _bench(profile, ("pdmux",), str(trace))["runs"][0]
    stamps = [json.loads(line)["t"] for line in trace.read_text().splitlines()]
    assert stamps == sorted(stamps) and 0 < stamps[-1] - stamps[0]
    # warm-up and the timed run on one virtual clock: the host's epoch time would be 1.7e9 s
    assert stamps[-1] < 60 and stamps[-1] - stamps[0] >= run["wall_s"] * 0.9


@pytest.mark.parametrize("command", [["bench", "--mode", "pdmux", "--out", "out"],
                                     ["search", "--slo", "ttft=1s,tpot=100ms", "--out", "out.json"]])
def test_simulate_refuses_without_a_gpu_profile(tmp_path, command):
    runner = CliRunner()
    base = [*command[:-1], str(tmp_path / command[-1]), "--model", "tiny", "--load-format", "dummy", "--workload",
            "random", "--num-requests", "2", "--rate", "10", "--simulate"]
    result = runner.invoke(app, base)
    assert result.exit_code != 0 and "--simulate needs --perf-model" in result.output
    cpu_profile = write_profile(tmp_path / "cpu.json", gpu=None)
    result = runner.invoke(app, [*base, "--perf-model", cpu_profile])
    assert result.exit_code != 0 and "needs a profile measured on a GPU" in result.output
    assert "Traceback" not in result.output


def _search(profile, **kw):
    engine = EngineConfig(model="tiny", load_format="dummy", mode="pdmux", perf_model=profile, num_kv_blocks=512)
    return run_search(SearchConfig(engine, SLO(ttft_s=0.5, tpot_s=0.05), rate=40.0, workload="random", num_requests=8,
                                   trials=2, max_prompt_len=200, max_output_len=8, prefill_token_choices=(64, 256),
                                   warmup_requests=2, simulate=True, **kw))


def test_a_simulated_search_repeats_exactly_and_its_study_takes_no_measured_trials(profile, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first, again = _search(profile, storage=url, study_name="sim"), _search(profile)
    rows = [{k: v for k, v in t.items() if k != "number"} for t in first["search"]["trials"]]
    assert rows == [{k: v for k, v in t.items() if k != "number"} for t in again["search"]["trials"]]
    assert all(t["machine"].endswith("(simulated NVIDIA H100 80GB HBM3)") and t["attainment"] is not None
               for t in first["search"]["trials"])
    assert first["search"]["simulated"] == {"perf_model": profile} and first["engine"]["perf_model"] == profile
    measured = SearchConfig(EngineConfig(model="tiny", load_format="dummy", mode="pdmux"), SLO(ttft_s=0.5, tpot_s=0.05),
                            rate=40.0, workload="random", num_requests=8, trials=1, max_prompt_len=200,
                            max_output_len=8, prefill_token_choices=(64, 256), storage=url, study_name="sim")
    with pytest.raises(StudyMismatchError, match="device=simulated NVIDIA H100 80GB HBM3; this search has device=cpu"):
        run_search(measured)


def test_a_simulated_cli_search_writes_its_plan_and_says_it_was_simulated(profile, tmp_path):
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(app, ["search", "--simulate", "--perf-model", profile, "--model", "tiny",
                                      "--load-format", "dummy", "--num-kv-blocks", "512", "--workload", "random",
                                      "--num-requests", "6", "--rate", "40", "--trials", "2", "--max-prompt-len", "64",
                                      "--max-output-len", "4", "--prefill-tokens", "64,256", "--slo",
                                      "ttft=500ms,tpot=50ms", "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "(simulated NVIDIA H100 80GB HBM3)" in printed and "on a virtual GPU, not measured" in printed
    saved = json.loads(out.read_text())
    assert saved["search"]["simulated"] == {"perf_model": profile} and saved["engine"]["pdmux_policy"] == "static"
