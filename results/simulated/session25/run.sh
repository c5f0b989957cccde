# Session 25 (no GPU lent): the mixed workload of session 24's H100 runs served on a virtual H100
# (`bench --simulate`, step times from session 19's H100 profile) at 13.5 and 8.75 req/s.
# validation/: the modes session 24 measured (results/h100/session24/all-*, jump-batch), to set
# the simulation against the measurements; sweep/: the settings prepared for the next GPU session
# (session 24's next.sh, next2.sh) and others, in one command. About 4 minutes on 2 CPU cores.
set -e
S=results/h100/session24 R=results/simulated/session25
COMMON="--model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384
  --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 13.5,8.75 --simulate
  --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
# shellcheck disable=SC2086  # the flag lists split
pdtune bench $COMMON --out $R/validation --mode chunked,pdmux,pdmux:sglang,pdmux@$S/t0.8-shorter-batch.json,pdmux@$S/t0.8-shorter-one.json,pdmux@$S/t0.9-shorter-batch.json > $R/validation.log 2>&1 &
# `pdmux_spare_none_lost` off: the spare settings here as they ran before that rule (lost-gate.sh has it on).
# shellcheck disable=SC2086
pdtune bench $COMMON --no-pdmux-spare-none-lost --out $R/sweep --mode pdmux@$S/t0.8-safe.json,pdmux@$S/t0.9-safe.json,pdmux@$S/t0.8.json,pdmux@$S/spare0.8-safe.json,pdmux@$S/spare0.7-safe.json,pdmux@$R/shorter.json,pdmux@$R/spare0.8-share0.25.json,pdmux@$R/spare0.8-share0.25-shorter.json,pdmux@$R/spare0.8-share0.25-spare.json,pdmux@$R/spare0.8-share0.35-spare.json > $R/sweep.log 2>&1
wait
rm -f $R/validation/requests.csv $R/sweep/requests.csv
gzip -f $R/validation/bench.json $R/sweep/bench.json
