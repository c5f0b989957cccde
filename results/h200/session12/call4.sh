source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step gpu-tests 200 "python3 -m pytest -q -p no:cacheprovider tests/gpu -x"
step goodput-tpot50-vs 300 "pdtune bench $M $MIX --goodput --goodput-iterations 2 --goodput-bracket 10.5,31.5 --slo ttft=2s,tpot=50ms --mode chunked,pdmux --config .gpu/small-splits.json $P --out /tmp/r/goodput-tpot50-vs"
cp /tmp/r/gpu-tests.log /tmp/r/gpu-tests-session12.log
pack
