rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000"
step decode-merge 60 "python3 results/h200/decode-merge/decode_merge.py results/h200/decode-merge/before_940367a.py /tmp/r/decode-merge"
step mixed300-tpot30 330 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=30ms --goodput --goodput-bracket 10.5,21 --goodput-iterations 2 --mode chunked,pdmux $P --out /tmp/r/mixed300-tpot30"
step tpot50-chunked-pdmux 190 "pdtune bench $M $MIX --slo ttft=2s,tpot=50ms --goodput --goodput-bracket 15.75,31.5 --goodput-iterations 2 --mode chunked,pdmux --pdmux-prefill-alone --config results/h200/session12/small-splits.json $P --out /tmp/r/tpot50-chunked-pdmux"
pack
