rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000"
L120="--max-model-len 34100 --slo ttft=10s,tpot=30ms --workload loogle --num-requests 120 --max-prompt-len 34000 --goodput"
step gpu-decode-attention 60 "python3 -m pytest -q -p no:cacheprovider tests/gpu/test_gpu_decode_attention.py"
step mixed300-chunked-low 170 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=30ms --goodput --goodput-bracket 5.25,13.12 --goodput-iterations 3 --mode chunked $P --out /tmp/r/mixed300-chunked-low"
step mixed300-pdmux-up 80 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=30ms --goodput --goodput-bracket 13.12,15.75 --goodput-iterations 1 --mode pdmux $P --out /tmp/r/mixed300-pdmux-up"
step loogle120-pdmux 200 "pdtune bench $M $L120 --goodput-iterations 2 --goodput-bracket 1,2.25 --mode pdmux $P --out /tmp/r/loogle120-pdmux"
pack
