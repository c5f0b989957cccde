source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
F="--dispatch fewest-misses --goodput --goodput-iterations 2"
step goodput-tpot20-vs 280 "pdtune bench $M $MIX $F --rate 5.25 --slo ttft=2s,tpot=20ms --mode chunked,pdmux $P --out /tmp/r/goodput-tpot20-vs"
step goodput-tpot30-vs 250 "pdtune bench $M $MIX $F --goodput-bracket 10.5,21 --slo ttft=2s,tpot=30ms --mode chunked,pdmux $P --out /tmp/r/goodput-tpot30-vs"
pack
