rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
step mixed300-pdmux-11.2 100 "pdtune bench $M $MIX300 --rate 11.2 --mode pdmux $P --out $OUT/mixed300-pdmux-11.2"
cp /tmp/r/*.log $OUT/
step mixed300-chunked-9.19 80 "pdtune bench $M $MIX300 --rate 9.185 --mode chunked $P --out $OUT/mixed300-chunked-9.19"
cp /tmp/r/*.log $OUT/; rm -f $OUT/*/requests.csv; gzip -f $OUT/*/bench.json
