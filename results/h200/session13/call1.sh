source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
SH="--max-num-seqs 256 --max-model-len 20000 --slo ttft=2s,tpot=30ms --workload sharegpt --num-requests 600 --goodput --goodput-iterations 2"
step sharegpt-chunked 185 "pdtune bench $M $SH --goodput-bracket 4,32 --mode chunked $P --out /tmp/r/sharegpt-chunked"
step sharegpt-sequential 185 "pdtune bench $M $SH --goodput-bracket 4,32 --mode sequential $P --out /tmp/r/sharegpt-sequential"
step sharegpt-pdmux 165 "pdtune bench $M $SH --goodput-bracket 16,32 --mode pdmux $P --out /tmp/r/sharegpt-pdmux"
pack
