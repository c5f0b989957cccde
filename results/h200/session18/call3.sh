rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P64="--perf-model /tmp/r/profile-p64g/profile-llama-3.1-8b.json"
step gpu-decode-tests 60 "python -m pytest -q -x tests/gpu/test_gpu_decode_attention.py"
step decode-tma-grouped 60 "python results/h200/session18/decode-tma/decode_tma.py /tmp/r/decode-tma-grouped"
pack
# The goodput probe compares with calls 1-2 (H200) only on that machine kind.
nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 || exit 0
step profile-p64g 80 "pdtune profile $M --splits 112/20,96/36,72/60 --batches 1,16,64,128 --contexts 512,4096 --block-size 64 --out /tmp/r/profile-p64g/profile-llama-3.1-8b.json"
pack
step mixed300-pdmux-14.4-p64g 100 "pdtune bench $M $MIX300 --rate 14.4 --mode pdmux $P64 --block-size 64 --out /tmp/r/mixed300-pdmux-14.4-p64g"
pack
