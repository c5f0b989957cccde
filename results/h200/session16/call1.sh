rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000"
step gpu-pdmux 150 "python3 -m pytest -q -p no:cacheprovider -x tests/gpu/test_gpu_pdmux.py"
step decode-min-chunk 90 "python3 results/h200/decode-chunk/decode_min_chunk.py /tmp/r/decode-min-chunk"
step mixed300-pdmux-head-14.44 120 "PYTHONPATH=.gpu/head:\$PYTHONPATH python3 -c 'import pdtune; print(pdtune.__file__)' && PYTHONPATH=.gpu/head:\$PYTHONPATH pdtune bench $M $MIX300 --slo ttft=2s,tpot=30ms --rate 14.435 --mode pdmux $P --trace /tmp/r/mixed300-pdmux-head-14.44/trace.jsonl --out /tmp/r/mixed300-pdmux-head-14.44"
step mixed300-pdmux-lane 230 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=30ms --goodput --goodput-bracket 13.12,15.75 --goodput-iterations 2 --mode pdmux $P --trace /tmp/r/mixed300-pdmux-lane/trace.jsonl --out /tmp/r/mixed300-pdmux-lane"
pack
