rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
SH="--max-num-seqs 256 --max-model-len 20000 --slo ttft=2s,tpot=30ms --workload sharegpt --num-requests 600 --goodput --goodput-iterations 2 --goodput-bracket 56,128"
L="--max-model-len 34100 --slo ttft=10s,tpot=30ms --workload loogle --num-requests 40 --max-prompt-len 34000 --goodput"
step sharegpt-chunked-128 125 "pdtune bench $M $SH --mode chunked $P --out /tmp/r/sharegpt-chunked-128"
step sharegpt-pdmux-128 130 "pdtune bench $M $SH --mode pdmux $P --out /tmp/r/sharegpt-pdmux-128"
step sharegpt-sequential-128 120 "pdtune bench $M $SH --mode sequential $P --out /tmp/r/sharegpt-sequential-128"
step loogle-pdmux-cut-up 160 "pdtune bench $M $L --goodput-iterations 2 --goodput-bracket 1.5,2.5 --mode pdmux $P --out /tmp/r/loogle-pdmux-cut-up"
pack
