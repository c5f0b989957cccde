rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
step gpu-decode-tests 100 "python -m pytest -q -x tests/gpu/test_gpu_decode_attention.py --durations=5"
step decode-tma 150 "python results/h200/session18/decode-tma/decode_tma.py /tmp/r/decode-tma"
pack
for b in 64 16; do
  step mixed300-pdmux-13.125-p$b 125 "pdtune bench $M $MIX300 --rate 13.125 --mode pdmux $P --block-size $b --out /tmp/r/mixed300-pdmux-13.125-p$b"; pack
done
