# Prepared in session 20 for the next device session (call 3 of 3, if time is left), not run: on an
# H100, the mixed workload at TPOT 30 ms and 14.4 req/s, where adaptive failed in session 19 (3.05 s
# behind its arrivals): the sglang policy there (issue 6: adaptive above sglang; sglang passed 13.5
# at 92.0%), and adaptive with the shorter-first jump (its goodput cost), all on one engine.
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
echo '{"engine": {"pdmux_prefill_jump": "shorter"}}' > /tmp/shorter.json
step all-14.4 300 "pdtune bench $M $MIX300 --rate 14.4 --mode pdmux,pdmux:sglang,pdmux@/tmp/shorter.json $P --out /tmp/r/all-14.4"; pack
