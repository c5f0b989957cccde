rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
for rate in 10.169 11.1525; do
  step mixed300-chunked-$rate 105 "pdtune bench $M $MIX300 --rate $rate --mode chunked $P --out /tmp/r/mixed300-chunked-$rate"
done
for rate in 13.125 14.435; do
  step mixed300-pdmux-$rate 105 "pdtune bench $M $MIX300 --rate $rate --mode pdmux $P --out /tmp/r/mixed300-pdmux-$rate"
done
step mixed300-pdmux-target0.6-10.169 105 "pdtune bench $M $MIX300 --rate 10.169 --mode pdmux --pdmux-decode-target 0.6 $P --out /tmp/r/mixed300-pdmux-target0.6-10.169"
pack
