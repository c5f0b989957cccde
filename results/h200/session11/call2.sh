source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step goodput-tpot30 560 "pdtune bench $M $MIX --goodput --goodput-iterations 2 --slo ttft=2s,tpot=30ms --rate 5.25 --mode pdmux,chunked,pdmux:eager-prefill $P --out /tmp/r/goodput-tpot30"
pack
