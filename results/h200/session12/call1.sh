source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
S30="--slo ttft=2s,tpot=30ms"
step probe-edf 130 "pdtune bench $M $MIX $S30 --rate 10.5 --mode pdmux $P --trace /tmp/r/probe-edf/trace.jsonl --out /tmp/r/probe-edf"
step probe-jump 130 "pdtune bench $M $MIX $S30 --rate 10.5 --mode pdmux --pdmux-prefill-jump $P --trace /tmp/r/probe-jump/trace.jsonl --out /tmp/r/probe-jump"
step probe-fewest 130 "pdtune bench $M $MIX $S30 --rate 10.5 --mode pdmux --dispatch fewest-misses $P --trace /tmp/r/probe-fewest/trace.jsonl --out /tmp/r/probe-fewest"
step repeat-pdmux 150 "pdtune bench $M $MIX $S30 --rate 7.875 --repeat 3 --mode pdmux $P --out /tmp/r/repeat-pdmux"
pack
