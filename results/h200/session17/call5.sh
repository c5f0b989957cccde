rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
for r in 10.66 11.15; do
  step mixed300-chunked-$r 90 "pdtune bench $M $MIX300 --rate $r --mode chunked $P --out /tmp/r/mixed300-chunked-$r"; pack
done
for r in 12.56; do
  step mixed300-pdmux-$r 125 "pdtune bench $M $MIX300 --rate $r --mode pdmux $P --out /tmp/r/mixed300-pdmux-$r"; pack
done
pack
