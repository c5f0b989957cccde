source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step goodput-tpot20-step 150 "pdtune bench $M $MIX --goodput --goodput-iterations 2 --slo ttft=2s,tpot=20ms --rate 5.25 --mode pdmux --pdmux-decode-budget step $P --out /tmp/r/goodput-tpot20-step"
step goodput-tpot50 150 "pdtune bench $M $MIX --goodput --goodput-iterations 2 --slo ttft=2s,tpot=50ms --rate 5.25 --mode pdmux $P --out /tmp/r/goodput-tpot50"
step goodput-tpot50-step 150 "pdtune bench $M $MIX --goodput --goodput-iterations 2 --slo ttft=2s,tpot=50ms --rate 5.25 --mode pdmux --pdmux-decode-budget step $P --out /tmp/r/goodput-tpot50-step"
pack
