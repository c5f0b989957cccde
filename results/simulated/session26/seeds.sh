# Session 26: gpu-next.sh's settings on two other draws of the workload (`--seed 1`, `2`), as
# session 25's seeds.sh did for its candidates, at 13.125 and 8.75 req/s, to seed1/ and seed2/
# (about 2 minutes on 2 CPU cores).
set -e
R=results/simulated/session26
COMMON="--model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384
  --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 13.125,8.75 --simulate
  --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json
  --mode chunked,pdmux,pdmux@$R/spare0.6-share0.05-spare.json,pdmux@$R/spare0.7-share0.05-spare.json"
for seed in 1 2; do
  # shellcheck disable=SC2086  # the flag list splits
  pdtune bench $COMMON --seed $seed --out $R/seed$seed > $R/seed$seed.log 2>&1 &
done
wait
for seed in 1 2; do rm -f $R/seed$seed/requests.csv; gzip -f $R/seed$seed/bench.json; done
