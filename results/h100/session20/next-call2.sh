# Prepared in session 20 for the next device session, not run: on an H100, the mixed workload as in
# calls 1-4. The spare decode target (new in session 20, CPU-tested): decode planned at 0.8 of the
# TPOT only while every queued prefill keeps half its TTFT. (1) Issue 6's first target with chunked
# and pdmux in one command at 8.75 req/s (a fixed target of 0.8 with the shorter-first jump met it
# in session 20, from two calls); (2) the same pdmux at 13.5 req/s, pdmux's goodput rate (adaptive
# passed it at 95.3%, 1.91 s behind): does the spare target keep it?
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
SPARE="--pdmux-spare-decode-target 0.8 --pdmux-prefill-jump shorter"
step both-8.75-spare 240 "pdtune bench $M $MIX300 --rate 8.75 --mode chunked,pdmux $P $SPARE --trace /tmp/r/both-8.75-spare/trace.jsonl --out /tmp/r/both-8.75-spare"; pack
step pdmux-13.5-spare 150 "pdtune bench $M $MIX300 --rate 13.5 --mode pdmux $P $SPARE --out /tmp/r/pdmux-13.5-spare"; pack
step gpu-tests-pdmux 150 "python -m pytest -q -x tests/gpu/test_gpu_pdmux.py"; pack
