rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
SH="--max-num-seqs 256 --max-model-len 20000 --slo ttft=2s,tpot=30ms --workload sharegpt --num-requests 600 --goodput --goodput-iterations 2 --goodput-bracket 110,256"
step sharegpt-chunked-256 100 "pdtune bench $M $SH --mode chunked $P --out /tmp/r/sharegpt-chunked-256"
step tpot20-adaptive-sglang 215 "pdtune bench $M $MIX --slo ttft=2s,tpot=20ms --goodput --goodput-bracket 5.25,15.75 --goodput-iterations 2 --mode pdmux,pdmux:sglang $P --out /tmp/r/tpot20-adaptive-sglang"
step small-splits-tpot30 140 "pdtune bench $M $MIX --slo ttft=2s,tpot=30ms --goodput --goodput-bracket 10.5,21 --goodput-iterations 2 --mode pdmux --config results/h200/session12/small-splits.json $P --out /tmp/r/small-splits-tpot30"
pack
