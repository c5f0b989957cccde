source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
SH="--max-num-seqs 256 --max-model-len 20000 --slo ttft=2s,tpot=30ms --workload sharegpt --num-requests 600 --goodput --goodput-iterations 2 --goodput-bracket 32,64"
step sharegpt-chunked-up 90 "pdtune bench $M $SH --mode chunked $P --out /tmp/r/sharegpt-chunked-up"
step sharegpt-pdmux-up 90 "pdtune bench $M $SH --mode pdmux $P --out /tmp/r/sharegpt-pdmux-up"
step repeat-adaptive-sglang 130 "pdtune bench $M $MIX --slo ttft=2s,tpot=30ms --rate 18.375 --repeat 2 --mode pdmux,pdmux:sglang $P --out /tmp/r/repeat-adaptive-sglang"
step sharegpt-sequential-up 90 "pdtune bench $M $SH --mode sequential $P --out /tmp/r/sharegpt-sequential-up"
pack
