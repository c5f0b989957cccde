# Session 19, call 1. On an H100: the GPU suite (64-token pages, overlapped pdmux), an H100 profile on
# 64-token pages whose prefill lengths reach 8k (session 18's stopped at 2k, and its square term
# overshoots 8k blocks 1.7x), then chunked's goodput on the mixed workload. On an H200 (chunked's
# goodput and a 64-token profile known from session 18): the suite, then overlapped pdmux against
# the step-by-step loop on the mixed workload.
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
step gpu-tests 170 "python -m pytest -q -x tests/gpu"
pack
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  P64="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
  for run in "14.4 overlap" "14.4 no-overlap" "13.125 overlap"; do
    set -- $run
    step mixed300-pdmux-$1-$2 110 "pdtune bench $M $MIX300 --rate $1 --mode pdmux $P64 --$2-scheduling --trace /tmp/r/mixed300-pdmux-$1-$2/trace.jsonl --out /tmp/r/mixed300-pdmux-$1-$2"
    pack
  done
  exit 0
fi
step profile-p64 120 "pdtune profile $M --splits 112/20,96/36,72/60 --batches 1,16,64,128 --contexts 512,2048 --prefill-tokens 512,2048,8192 --out /tmp/r/profile-p64/profile-llama-3.1-8b.json"
pack
step mixed300-chunked 200 "pdtune bench $M $MIX300 --goodput --goodput-bracket 5,11 --goodput-iterations 2 --mode chunked --out /tmp/r/mixed300-chunked"
pack
# pdmux at 1.35x what chunked sustained, with this call's profile.
R=$(python3 -c "import gzip,json; print(round(1.35*json.load(gzip.open('/tmp/r/mixed300-chunked/bench.json.gz'))['goodput']['chunked']['goodput'], 3))")
step mixed300-pdmux-$R 110 "pdtune bench $M $MIX300 --rate $R --mode pdmux --perf-model /tmp/r/profile-p64/profile-llama-3.1-8b.json --trace /tmp/r/mixed300-pdmux-$R/trace.jsonl --out /tmp/r/mixed300-pdmux-$R"
pack
