# Session 26 (no GPU lent): the spare jump and the spare decode target (closed while a waiting
# request is lost) at spare targets 0.5-0.8 and slack shares 0.05-0.2, beside chunked and the
# defaults, at 13.125 req/s (1.5 x chunked's goodput of 8.75 on the H100) and 8.75, on session
# 25's virtual H100, to sweep-a/ and sweep-b/ (about 3 minutes on 2 CPU cores).
set -e
R=results/simulated/session26
COMMON="--model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384
  --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 13.125,8.75 --simulate
  --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
modes() { for s in "$@"; do printf ',pdmux@%s/spare%s-spare.json' "$R" "$s"; done; }
# shellcheck disable=SC2086  # the flag lists split
pdtune bench $COMMON --out $R/sweep-a --mode "chunked,pdmux$(modes 0.5-share0.05 0.5-share0.1 0.5-share0.2 0.6-share0.05 0.6-share0.1)" > $R/sweep-a.log 2>&1 &
# shellcheck disable=SC2086
pdtune bench $COMMON --out $R/sweep-b --mode "$(modes 0.6-share0.2 0.7-share0.05 0.7-share0.1 0.7-share0.2 0.8-share0.05 0.8-share0.1 0.8-share0.2 | cut -c2-)" > $R/sweep-b.log 2>&1
wait
rm -f $R/sweep-a/requests.csv $R/sweep-b/requests.csv
gzip -f $R/sweep-a/bench.json $R/sweep-b/bench.json
