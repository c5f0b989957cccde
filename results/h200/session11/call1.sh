source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step gpu-tests 240 "python3 -m pytest -q -p no:cacheprovider tests/gpu -x"
step pieces-7.875 330 "pdtune bench $M $MIX --slo ttft=2s,tpot=30ms --rate 7.875 --mode pdmux,pdmux:eager-prefill $P --out /tmp/r/pieces-7.875"
pack
