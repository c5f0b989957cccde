# Session 26 (no GPU lent): `pdtune search --simulate` on session 25's virtual H100, and the one
# static plan measured on the H100 served there (about 1 minute on one CPU core in all).
# search/: 30 trials of static plans at chunked's goodput (8.75 req/s, the 300-request mixed
#   workload) and the adaptive run after them.
# search-s22/: session 22's H100 search replayed (8 trials of 100 requests at 13.5 req/s, same
#   seed: the sampler suggests the same plans; results/h100/session22/search/ holds the measured).
# validation-static/: that search's best plan (104/28, gang 5, 4096 prefill tokens) at 13.5 and
#   8.75 (measured: results/h100/session22/static-13.5, static-8.75; session 22's code, so
#   prefill-behind off; the other rules it lacked change nothing without jumps).
# static-g18/: a static plan with long blocks (112/20, gang 18, 16384 prefill tokens: a search
#   found it on an earlier version of the virtual H100) at 13.125 and 8.75 req/s.
set -e
R=results/simulated/session26
M="--model llama-3.1-8b --load-format dummy --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000
  --slo ttft=2s,tpot=30ms --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json --simulate"
# shellcheck disable=SC2086  # the flag lists split
pdtune search $M --workload mixed --num-requests 300 --rate 8.75 --trials 30 --out $R/search/search-mixed-8.75.json > $R/search.log 2>&1
# shellcheck disable=SC2086
pdtune search $M --workload mixed --num-requests 100 --rate 13.5 --trials 8 --out $R/search-s22/search-mixed.json > $R/search-s22.log 2>&1
# shellcheck disable=SC2086
pdtune bench $M --workload mixed --num-requests 300 --rate 13.5,8.75 --no-pdmux-prefill-behind \
  --mode pdmux@results/h100/session22/search/search-mixed.json --out $R/validation-static > $R/validation-static.log 2>&1
# shellcheck disable=SC2086
pdtune bench $M --workload mixed --num-requests 300 --rate 13.125,8.75 --mode pdmux@$R/static-112-20-g18.json \
  --out $R/static-g18 > $R/static-g18.log 2>&1
rm -f $R/validation-static/requests.csv $R/static-g18/requests.csv
gzip -f $R/validation-static/bench.json $R/static-g18/bench.json
