# Session 21, call 1, on an H200 (no H100 could be started for 35 minutes): the mixed workload at
# TTFT 2 s / TPOT 30 ms, 64-token pages, the H200 profile of session 18. (1) Issue 6's "adaptive
# above sglang" with SGLang's own split rule (fixed in session 20): both goodputs in one command on
# one engine, bisected between chunked's passing 10.17 and 15.75 (session 18: adaptive passed
# 13.125 and failed 14.4); (2) the first target's modes at chunked's passing rate 10.17 in one
# command: chunked, pdmux defaults, decode target 0.8 with the shorter-first jump, the spare target.
# Not served: the one start this session came as an H100 (the H200 kind may be lent one), and both
# steps refused the H200 profile on it, as they should (h100/session21/h200-profile-refused.log).
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
P200="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
step both-goodput 300 "pdtune bench $M $MIX300 $SLO30 --goodput --goodput-bracket 10.17,15.75 --goodput-iterations 2 --mode pdmux,pdmux:sglang $P200 --out /tmp/r/both-goodput"; pack
MODES="chunked,pdmux,pdmux@results/h100/session21/t0.8-shorter.json,pdmux@results/h100/session20/spare-0.8-shorter.json"
step all-10.17 280 "pdtune bench $M $MIX300 $SLO30 --rate 10.17 --mode $MODES $P200 --out /tmp/r/all-10.17"; pack
