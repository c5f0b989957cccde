# Session 19, call 3 (the same H100, held): chunked at 9.125 req/s (between its passing 8.75 and
# failing 9.5) and pdmux at 14.4 (the bracket's failing end, taken on trust by call 2's sweep).
source results/h200/device/setup.sh; export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model /tmp/r/profile-p64/profile-llama-3.1-8b.json"
step mixed300-chunked-9.125 85 "pdtune bench $M $MIX300 --rate 9.125 --mode chunked --out /tmp/r/mixed300-chunked-9.125"; pack
step mixed300-pdmux-14.4 100 "pdtune bench $M $MIX300 --rate 14.4 --mode pdmux $P --out /tmp/r/mixed300-pdmux-14.4"; pack
