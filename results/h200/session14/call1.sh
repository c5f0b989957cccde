rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
L="--max-model-len 34100 --slo ttft=10s,tpot=30ms --workload loogle --num-requests 40 --max-prompt-len 34000 --goodput"
step gpu-tests 150 "python3 -m pytest -q -p no:cacheprovider tests/gpu -x"
step gemm-shapes 150 "python3 results/h200/prefill-profile/gemm_shapes.py /tmp/r/gemm-shapes"
step loogle-pdmux-cut 230 "pdtune bench $M $L --goodput-iterations 2 --goodput-bracket 0.5,2 --mode pdmux $P --out /tmp/r/loogle-pdmux-cut"
pack
