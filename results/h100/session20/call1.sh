# Session 20, call 1 (H100). Issue 6's first target at chunked's passing 8.75 req/s on the mixed
# workload: chunked again on this machine, and pdmux with decode planned at a share of the TPOT SLO
# (--pdmux-decode-target), per step or per request's pace, with and without the shortest prefill
# jumping ahead, and with prefill alone on the whole GPU when banked TPOT allows.
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
step chunked-8.75 85 "pdtune bench $M $MIX300 --rate 8.75 --mode chunked --out /tmp/r/chunked-8.75"; pack
for v in "0.65 shorter step" "0.65 shorter pace" "0.65 off step" "0.8 shorter step" "0.65 shorter pace --pdmux-prefill-alone"; do
  set -- $v
  name=pdmux-8.75-t$1-$2-$3${4:+-alone}
  step $name 95 "pdtune bench $M $MIX300 --rate 8.75 --mode pdmux $P --pdmux-decode-target $1 --pdmux-prefill-jump $2 --pdmux-decode-budget $3 ${4:-} --trace /tmp/r/$name/trace.jsonl --out /tmp/r/$name"; pack
done
