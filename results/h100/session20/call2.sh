# Session 20, call 2 (H100, warm after call 1, whose runs' time limits were too short: chunked and
# two pdmux runs were cut off). The same commands with longer limits.
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
step chunked-8.75 150 "pdtune bench $M $MIX300 --rate 8.75 --mode chunked --out /tmp/r/chunked-8.75"; pack
for v in "0.65 shorter pace" "0.65 shorter step"; do
  set -- $v
  name=pdmux-8.75-t$1-$2-$3
  step $name 150 "pdtune bench $M $MIX300 --rate 8.75 --mode pdmux $P --pdmux-decode-target $1 --pdmux-prefill-jump $2 --pdmux-decode-budget $3 --trace /tmp/r/$name/trace.jsonl --out /tmp/r/$name"; pack
done
