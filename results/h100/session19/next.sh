# Prepared in session 19 for the next device session, not run (its device time was spent): on an
# H100, the same mixed workload as calls 1-3. (1) Issue 6's first target at chunked's passing 8.75
# req/s: pdmux with decode planned at 0.65 of the TPOT and the shortest prefill jumping ahead, and
# each lever alone; (2) whether `--pdmux-prefill-jump shorter` costs goodput at 13.5 req/s;
# (3) the sglang policy at 13.5 (issue 6: adaptive above sglang).
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000 --slo ttft=2s,tpot=30ms"
P="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
step chunked-8.75 90 "pdtune bench $M $MIX300 --rate 8.75 --mode chunked --out /tmp/r/chunked-8.75"; pack
for v in "0.65 shorter" "0.65 off" "1.0 shorter"; do
  set -- $v
  step pdmux-8.75-t$1-$2 100 "pdtune bench $M $MIX300 --rate 8.75 --mode pdmux $P --pdmux-decode-target $1 --pdmux-prefill-jump $2 --out /tmp/r/pdmux-8.75-t$1-$2"; pack
done
step pdmux-13.5-shorter 100 "pdtune bench $M $MIX300 --rate 13.5 --mode pdmux $P --pdmux-prefill-jump shorter --out /tmp/r/pdmux-13.5-shorter"; pack
step sglang-13.5 100 "pdtune bench $M $MIX300 --rate 13.5 --mode pdmux $P --pdmux-policy sglang --out /tmp/r/sglang-13.5"; pack
