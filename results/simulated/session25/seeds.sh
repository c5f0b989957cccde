# Session 25: lost-gate.sh's two candidates beside chunked and the defaults on two other draws of
# the workload (--seed 1, 2: more long prompts, so 8.75 req/s is not chunked's goodput there), on
# the virtual H100 of run.sh, to seed1/ and seed2/ (about 4 minutes on 2 CPU cores).
set -e
R=results/simulated/session25
for seed in 1 2; do
  # shellcheck disable=SC2086  # the flag list splits
  pdtune bench --model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384 \
    --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 13.5,8.75 --simulate --seed $seed \
    --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json --out $R/seed$seed \
    --mode chunked,pdmux,pdmux@$R/spare0.7-share0.1-spare.json,pdmux@$R/spare0.8-share0.1-spare.json \
    > $R/seed$seed.log 2>&1 &
done
wait
for seed in 1 2; do rm -f $R/seed$seed/requests.csv; gzip -f $R/seed$seed/bench.json; done
