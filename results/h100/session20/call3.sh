# Session 20, call 3 (H100, warm). The pdmux GPU tests at 50d7721 (the stepper refactor, not yet
# run on a GPU); the sglang policy's goodput on the mixed workload, bisected between adaptive's
# 10.8 and 14.4 from session 19 on one engine (issue 6: adaptive above sglang).
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
step gpu-tests-pdmux 120 "python -m pytest -q -x tests/gpu/test_gpu_pdmux.py"; pack
step sglang-goodput 230 "pdtune bench $M $MIX300 --goodput --goodput-bracket 10.8,14.4 --goodput-iterations 2 --mode pdmux:sglang $P --out /tmp/r/sglang-goodput"; pack
