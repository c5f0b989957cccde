source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
G="--goodput --goodput-iterations 2 --rate 5.25 --mode pdmux --dispatch fewest-misses"
step goodput-tpot30-fewest 190 "pdtune bench $M $MIX $G --slo ttft=2s,tpot=30ms $P --out /tmp/r/goodput-tpot30-fewest"
step goodput-tpot20-fewest 170 "pdtune bench $M $MIX $G --slo ttft=2s,tpot=20ms $P --out /tmp/r/goodput-tpot20-fewest"
step goodput-tpot50-fewest-small 190 "pdtune bench $M $MIX $G --slo ttft=2s,tpot=50ms $P --config .gpu/small-splits.json --out /tmp/r/goodput-tpot50-fewest-small"
pack
