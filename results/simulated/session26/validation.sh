# Session 26: session 25's check of the virtual H100 against the H100 (run.sh's validation/ and
# validation-s23.sh there) served again after decode steps were made to run on the SMs a prefill
# block still running leaves them (pdtune/executor/virtual_gpu.py), to validation/ and
# validation-s23/ (about 1 minute on 2 CPU cores). search.sh serves the static plan.
set -e
S=results/h100/session24 S22=results/h100/session22 S23=results/h100/session23 R=results/simulated/session26
COMMON="--model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384
  --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 13.5,8.75 --simulate
  --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
# shellcheck disable=SC2086  # the flag lists split
pdtune bench $COMMON --out $R/validation --mode chunked,pdmux,pdmux:sglang,pdmux@$S/t0.8-shorter-batch.json,pdmux@$S/t0.8-shorter-one.json,pdmux@$S/t0.9-shorter-batch.json > $R/validation.log 2>&1 &
# Session 23's code had neither prefill-behind, batched jumps nor `pdmux_spare_none_lost`.
# shellcheck disable=SC2086
pdtune bench $COMMON --no-pdmux-prefill-behind --no-pdmux-jump-batch --no-pdmux-spare-none-lost --out $R/validation-s23 \
  --mode pdmux@$S22/t0.8-spare.json,pdmux@$S22/spare-0.8-spare.json,pdmux@$S23/shorter.json,pdmux@$S23/t0.9-shorter.json > $R/validation-s23.log 2>&1
wait
rm -f $R/validation/requests.csv $R/validation-s23/requests.csv
gzip -f $R/validation/bench.json $R/validation-s23/bench.json
