# Session 22, prepared as a fallback for when no H100 comes but an H200 does: the mixed workload at
# TTFT 2 s / TPOT 30 ms, 64-token pages, the H200 profile of session 18. Every mode and policy in
# one command at chunked's passing rate on the H200, 10.169 req/s (sessions 15-18: 93.3% and
# 93.3%, once 87.7% on another machine): chunked, pdmux with its defaults, SGLang's rule, decode
# target 0.8 with the shorter-first jump, and the spare decode target (0.8 while queued prefills
# keep half their TTFT) with the jump; the pdmux runs share one engine, its trace tagged per run.
rm -rf /tmp/r
source results/h200/device/setup.sh
P200="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
step all-10.169 560 "pdtune bench $M $MIX300 $SLO30 --rate 10.169 --mode $ALL_MODES $P200 --trace /tmp/r/all-10.169/trace.jsonl --out /tmp/r/all-10.169"; pack
