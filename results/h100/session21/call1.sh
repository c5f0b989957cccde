# Session 21, call 1, on an H100: the mixed workload at TTFT 2 s / TPOT 30 ms. Issue 6's "adaptive
# above sglang" with SGLang's own split rule (fixed in session 20, not yet run). (1) adaptive and
# sglang at 13.5 req/s, adaptive's goodput (it failed 14.4), in one command on one engine; (2) if
# sglang fails 13.5: its goodput, bisected between chunked's 8.75 and 13.5; if it passes: both
# policies at 14.4 in one command.
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step both-13.5 270 "pdtune bench $M $MIX300 $SLO30 --rate 13.5 --mode pdmux,pdmux:sglang $P100 --out /tmp/r/both-13.5"
SGLANG_PASSED=$(python3 - <<'PY'
import json
from pdtune.bench.summary import backlog_exceeds_ttft
from pdtune.slo import parse_slo
s = [s for s in json.load(open("/tmp/r/both-13.5/bench.json"))["summaries"] if s["mode"] == "pdmux:sglang"][0]
ok = s["slo_attainment"] >= 0.9 and not s["stopped_early"] and not backlog_exceeds_ttft(s["backlog_s"], parse_slo("ttft=2s,tpot=30ms"))
print("yes" if ok else "no")
PY
)
echo "sglang passed 13.5: $SGLANG_PASSED" | tee -a /tmp/r/steps.log
pack
if [ "$SGLANG_PASSED" = no ]; then
  step sglang-goodput 280 "pdtune bench $M $MIX300 $SLO30 --goodput --goodput-bracket 8.75,13.5 --goodput-iterations 2 --mode pdmux:sglang $P100 --trace /tmp/r/sglang-goodput/trace.jsonl --out /tmp/r/sglang-goodput"
else
  step both-14.4 280 "pdtune bench $M $MIX300 $SLO30 --rate 14.4 --mode pdmux,pdmux:sglang $P100 --out /tmp/r/both-14.4"
fi
pack
