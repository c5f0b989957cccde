source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step goodput-tpot20 250 "pdtune bench $M $MIX --goodput --goodput-iterations 2 --slo ttft=2s,tpot=20ms --rate 5.25 --mode chunked,pdmux $P --out /tmp/r/goodput-tpot20"
step repeat-chunked 110 "pdtune bench $M $MIX --slo ttft=2s,tpot=30ms --rate 7.875 --repeat 3 --mode chunked --out /tmp/r/repeat-chunked"
step goodput-tpot30-step 150 "pdtune bench $M $MIX --goodput --goodput-iterations 2 --slo ttft=2s,tpot=30ms --rate 5.25 --mode pdmux --pdmux-decode-budget step $P --out /tmp/r/goodput-tpot30-step"
pack
