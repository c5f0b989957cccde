"""Session 26: how the settings of sweep.sh fare when the virtual H100's fitted constants are off:
prefill beside decode 1.18 and 1.27 x its fit instead of 1.23 (the other two factors tried when it
was chosen); host time per step 0.15 ms (the H100 trace's median) and 0.3 ms instead of 0.2; launch
per prefill layer 0.25 and 0.45 ms instead of 0.35. Per variant, chunked at 8.75 req/s and the
defaults and four candidates at 13.125 (1.5 x chunked's goodput) and 8.75, to robust/<variant>/
(summary.csv and bench.json.gz; verdicts.py reads them). Usage: python robust.py VARIANT (one of
VARIANTS; one process each: the constants are set on the module); `python robust.py VARIANT second`
serves the two next-best settings of the sweep instead (SECOND: a fallback for the GPU), to
robust/<variant>/pdmux-second/."""

import gzip
import os
import shutil
import sys

from pdtune.bench.runner import BenchConfig, run_bench
from pdtune.config import EngineConfig
from pdtune.executor import virtual_gpu
from pdtune.slo import parse_slo

HERE = os.path.dirname(os.path.abspath(__file__))
PREV = os.path.join(HERE, "..", "session25")
VARIANTS = {"base": {}, "beside1.18": {"PREFILL_BESIDE_DECODE": 1.18}, "beside1.27": {"PREFILL_BESIDE_DECODE": 1.27},
            "host0.15": {"HOST_MS_PER_STEP": 0.15}, "host0.3": {"HOST_MS_PER_STEP": 0.3},
            "launch0.25": {"PREFILL_LAYER_LAUNCH_MS": 0.25}, "launch0.45": {"PREFILL_LAYER_LAUNCH_MS": 0.45}}
CANDIDATES = ["pdmux"] + [f"pdmux@{os.path.join(d, f)}" for d, f in (
    (HERE, "spare0.6-share0.05-spare.json"), (HERE, "spare0.6-share0.1-spare.json"),
    (HERE, "spare0.7-share0.05-spare.json"), (PREV, "spare0.8-share0.1-spare.json"))]
SECOND = [f"pdmux@{os.path.join(HERE, f)}" for f in ("spare0.7-share0.1-spare.json", "spare0.8-share0.05-spare.json")]
ENGINE = EngineConfig(model="llama-3.1-8b", load_format="dummy", max_num_seqs=128, max_model_len=20000,
                      slo_ttft_ms=2000.0, slo_tpot_ms=30.0,
                      perf_model=os.path.join(HERE, "..", "..", "h100", "session19", "profile-p64",
                                              "profile-llama-3.1-8b.json"))
COMMON = dict(workload="mixed", num_requests=300, max_prompt_len=16384, slo=parse_slo("ttft=2s,tpot=30ms"), simulate=True)

variant = sys.argv[1]
for name, value in VARIANTS[variant].items():
    setattr(virtual_gpu, name, value)
runs = [("chunked", ("chunked",), (8.75,)), ("pdmux", tuple(CANDIDATES), (13.125, 8.75))]
if sys.argv[2:] == ["second"]:
    runs = [("pdmux-second", tuple(SECOND), (13.125, 8.75))]
for folder, modes, rates in runs:
    out = os.path.join(HERE, "robust", variant, folder)
    run_bench(BenchConfig(ENGINE, modes, rate=rates, **COMMON), out_dir=out)
    for name in os.listdir(out):  # the summaries and bench.json, gzipped, are what verdicts.py and a reader need
        path = os.path.join(out, name)
        if name == "bench.json":
            with open(path, "rb") as raw, gzip.open(path + ".gz", "wb") as packed:
                shutil.copyfileobj(raw, packed)
        if name != "summary.csv":
            os.remove(path)
