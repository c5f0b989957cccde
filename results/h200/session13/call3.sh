source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MC="--max-num-seqs 256 --max-model-len 20000 --slo ttft=2s,tpot=30ms --workload mooncake-conversation --max-prompt-len 16384 --num-requests 100 --goodput --goodput-bracket 2,8 --goodput-iterations 2"
step mooncake-seq-c1024 190 "pdtune bench $M $MC --mode sequential,chunked:1024 $P --out /tmp/r/mooncake-seq-c1024"
step goodput-adaptive-sglang 200 "pdtune bench $M $MIX --slo ttft=2s,tpot=30ms --goodput --goodput-bracket 10.5,21 --goodput-iterations 2 --mode pdmux,pdmux:sglang $P --out /tmp/r/goodput-adaptive-sglang"
step decode-target-0.6 150 "pdtune bench $M $MIX --slo ttft=2s,tpot=30ms --rate 15.75 --mode chunked,pdmux --pdmux-decode-target 0.6 $P --out /tmp/r/decode-target-0.6"
pack
