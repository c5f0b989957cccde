source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
L="--max-model-len 34100 --slo ttft=10s,tpot=30ms --workload loogle --num-requests 40 --max-prompt-len 34000 --goodput"
step loogle-chunked 170 "pdtune bench $M $L --goodput-iterations 1 --goodput-bracket 0.125,0.5 --mode chunked $P --out /tmp/r/loogle-chunked"
step loogle-sequential 170 "pdtune bench $M $L --goodput-iterations 1 --goodput-bracket 0.125,0.5 --mode sequential $P --out /tmp/r/loogle-sequential"
step loogle-pdmux 200 "pdtune bench $M $L --goodput-iterations 2 --goodput-bracket 0.5,2 --mode pdmux $P --out /tmp/r/loogle-pdmux"
pack
