# Session 25: session 23's H100 runs (results/h100/session23/spare-jump, jump-target: commit
# 936fc5a, before prefill-behind, batched jumps and `pdmux_spare_none_lost`, so all three off
# here) served on the virtual H100 of run.sh, to validation-s23/ (about 2 minutes on one CPU core):
# the `spare` jump at decode target 0.8 and at spare target 0.8, and the `shorter` jump at decode
# targets 1 and 0.9, at 13.5 and 8.75 req/s in one command.
set -e
R=results/simulated/session25
# shellcheck disable=SC2086  # the flag list splits
pdtune bench --model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384 \
  --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 13.5,8.75 --simulate \
  --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json --out $R/validation-s23 \
  --no-pdmux-prefill-behind --no-pdmux-jump-batch --no-pdmux-spare-none-lost \
  --mode pdmux@results/h100/session22/t0.8-spare.json,pdmux@results/h100/session22/spare-0.8-spare.json,pdmux@results/h100/session23/shorter.json,pdmux@results/h100/session23/t0.9-shorter.json \
  > $R/validation-s23.log 2>&1
rm -f $R/validation-s23/requests.csv
gzip -f $R/validation-s23/bench.json
