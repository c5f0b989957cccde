# Session 20, call 4 (H100, warm). Goodput on the mixed workload at TPOT 20 ms (two bisection
# steps) and 50 ms (one), chunked and pdmux, each sweep on one engine; the brackets are guesses
# from session 19's runs rescored at those SLOs (`pdtune report --slo`).
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
step chunked-tpot20 150 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=20ms --goodput --goodput-bracket 4,8 --goodput-iterations 2 --mode chunked --out /tmp/r/chunked-tpot20"; pack
step pdmux-tpot20 150 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=20ms --goodput --goodput-bracket 6,10.8 --goodput-iterations 2 --mode pdmux $P --out /tmp/r/pdmux-tpot20"; pack
step chunked-tpot50 100 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=50ms --goodput --goodput-bracket 9.125,12 --goodput-iterations 1 --mode chunked --out /tmp/r/chunked-tpot50"; pack
step pdmux-tpot50 100 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=50ms --goodput --goodput-bracket 13.5,16 --goodput-iterations 1 --mode pdmux $P --out /tmp/r/pdmux-tpot50"; pack
