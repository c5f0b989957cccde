rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
SH="--max-num-seqs 256 --max-model-len 20000 --slo ttft=2s,tpot=30ms --workload sharegpt --num-requests 600"
step gpu-tests 150 "python3 -m pytest -q -p no:cacheprovider tests/gpu -x"
step bench-kernels 150 "pdtune bench-kernels $M --batches 1,64 --contexts 1024 --prefill-tokens 8192 --out /tmp/r/bench-kernels"
step gemm-shapes 80 "python3 results/h200/prefill-profile/gemm_shapes.py /tmp/r/gemm-shapes"
step prefill-clocks 90 "python3 results/h200/prefill-profile/prefill_clocks.py /tmp/r/prefill-clocks"
step sharegpt-chunked-92 90 "pdtune bench $M $SH --rate 92 --mode chunked $P --out /tmp/r/sharegpt-chunked-92"
step sharegpt-pdmux-92-trace 100 "pdtune bench $M $SH --rate 92 --mode pdmux $P --trace /tmp/r/sharegpt-pdmux-92-trace/trace.jsonl --out /tmp/r/sharegpt-pdmux-92-trace"
pack
