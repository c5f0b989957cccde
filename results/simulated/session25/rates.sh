# Session 25: the defaults and lost-gate.sh's two candidates at 12.5-14.5 req/s on the virtual H100
# of run.sh (chunked's goodput is 8.75; the candidates' margin at pdmux's), to rates/ (about 8
# minutes on one CPU core).
set -e
R=results/simulated/session25
# shellcheck disable=SC2086  # the flag list splits
pdtune bench --model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384 \
  --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 12.5,13.5,14,14.5 --simulate \
  --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json --out $R/rates \
  --mode pdmux,pdmux@$R/spare0.7-share0.1-spare.json,pdmux@$R/spare0.8-share0.1-spare.json > $R/rates.log 2>&1
rm -f $R/rates/requests.csv
gzip -f $R/rates/bench.json
