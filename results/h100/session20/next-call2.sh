# Prepared in session 20 for the next device session (call 2 of 2), not run: on an H100, the mixed
# workload as in calls 1-4. The spare decode target (new in session 20, CPU-tested): decode planned
# at 0.8 of the TPOT only while every queued prefill keeps half its TTFT. (1) Issue 6's first target
# in one command at 8.75 req/s: chunked, pdmux with the defaults, and pdmux with the spare target
# and the shorter-first jump (a fixed target of 0.8 with the jump met it in session 20, from two
# calls); the two pdmux runs share one engine. (2) The spare target at 13.5 req/s, pdmux's goodput
# rate (adaptive passed it at 95.3%, 1.91 s behind): does it keep it? (3) The pdmux GPU tests
# (their same-tokens test now covers the spare target and the jump).
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
SPARE=results/h100/session20/spare-0.8-shorter.json  # --pdmux-spare-decode-target 0.8 --pdmux-prefill-jump shorter
step all-8.75 300 "pdtune bench $M $MIX300 --rate 8.75 --mode chunked,pdmux,pdmux@$SPARE $P --trace /tmp/r/all-8.75/trace.jsonl --out /tmp/r/all-8.75"; pack
step pdmux-13.5-spare 140 "pdtune bench $M $MIX300 --rate 13.5 --mode pdmux@$SPARE $P --out /tmp/r/pdmux-13.5-spare"; pack
step gpu-tests-pdmux 120 "python -m pytest -q -x tests/gpu/test_gpu_pdmux.py"; pack
