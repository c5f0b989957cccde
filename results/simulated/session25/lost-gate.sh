# Session 25: the spare decode target and the spare jump closed while a waiting request is lost
# (`pdmux_spare_none_lost`, on), on the virtual H100 of run.sh: chunked and the defaults beside
# the spare jump at spare targets 0.8 (slack shares 0 and 0.1) and 0.7 (share 0.1), and the
# share-0.25 setting of sweep/ with the rule on, at 13.5 and 8.75 req/s in one command, to
# lost-gate/ (about 2.5 minutes on one CPU core).
set -e
R=results/simulated/session25
# shellcheck disable=SC2086  # the flag list splits
pdtune bench --model llama-3.1-8b --load-format dummy --workload mixed --num-requests 300 --max-prompt-len 16384 \
  --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms --rate 13.5,8.75 --simulate \
  --perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json --out $R/lost-gate \
  --mode chunked,pdmux,pdmux@$R/spare0.8-share0-spare.json,pdmux@$R/spare0.8-share0.1-spare.json,pdmux@$R/spare0.7-share0.1-spare.json,pdmux@$R/spare0.8-share0.25-spare.json \
  > $R/lost-gate.log 2>&1
rm -f $R/lost-gate/requests.csv
gzip -f $R/lost-gate/bench.json
