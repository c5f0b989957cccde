source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step goodput-mooncake 270 "pdtune bench $M --max-num-seqs 256 --mode chunked,pdmux $P --max-model-len 20000 --slo ttft=2s,tpot=30ms --workload mooncake-conversation --max-prompt-len 16384 --num-requests 100 --goodput --goodput-bracket 2,8 --goodput-iterations 2 --out /tmp/r/goodput-mooncake"
pack
