rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step tpot20-repeat-10.5 170 "pdtune bench $M $MIX --slo ttft=2s,tpot=20ms --rate 10.5 --repeat 2 --mode pdmux,pdmux:sglang $P --out /tmp/r/tpot20-repeat-10.5"
step tpot50-prefill-alone-small 150 "pdtune bench $M $MIX --slo ttft=2s,tpot=50ms --goodput --goodput-bracket 15.75,31.5 --goodput-iterations 2 --mode pdmux --pdmux-prefill-alone --config results/h200/session12/small-splits.json $P --out /tmp/r/tpot50-prefill-alone-small"
pack
