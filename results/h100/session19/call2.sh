# Session 19, call 2 (the H100 of call 1, held): pdmux's goodput above call 1's passing 10.8 req/s,
# chunked between its passing 8.0 and failing 9.5, and pdmux step by step at 12.6 (the A/B of
# overlapped scheduling against the sweep's overlapped probe at the same rate).
source results/h200/device/setup.sh; export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model /tmp/r/profile-p64/profile-llama-3.1-8b.json"
step mixed300-pdmux-up 230 "pdtune bench $M $MIX300 --goodput --goodput-bracket 10.8,14.4 --goodput-iterations 2 --mode pdmux $P --out /tmp/r/mixed300-pdmux-up"; pack
step mixed300-chunked-8.75 90 "pdtune bench $M $MIX300 --rate 8.75 --mode chunked --out /tmp/r/mixed300-chunked-8.75"; pack
step mixed300-pdmux-12.6-no-overlap 100 "pdtune bench $M $MIX300 --rate 12.6 --mode pdmux $P --no-overlap-scheduling --out /tmp/r/mixed300-pdmux-12.6-no-overlap"; pack
