rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P64="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
step mixed300-chunked-10.169-p64 90 "pdtune bench $M $MIX300 --rate 10.169 --mode chunked --block-size 64 --out /tmp/r/mixed300-chunked-10.169-p64"; pack
step mixed300-pdmux-14.4-p64 110 "pdtune bench $M $MIX300 --rate 14.4 --mode pdmux $P64 --block-size 64 --out /tmp/r/mixed300-pdmux-14.4-p64"; pack
step mixed300-pdmux-13.125-p16 110 "pdtune bench $M $MIX300 --rate 13.125 --mode pdmux $P --out /tmp/r/mixed300-pdmux-13.125-p16"; pack
step mixed300-pdmux-13.125-p16-P64 110 "pdtune bench $M $MIX300 --rate 13.125 --mode pdmux $P64 --out /tmp/r/mixed300-pdmux-13.125-p16-P64"; pack
