# Prepared in session 22 for the next device session, after session 21's call2.sh and call3.sh
# (and call4.sh if time is left), not run: on an H100, the mixed workload at TTFT 2 s / TPOT 30 ms,
# the static policy, never served on a workload on a GPU: `pdtune search` (8 trials of 100
# requests at adaptive's goodput 13.5 req/s, then the adaptive run), then its best plan on the
# 300-request workload at 13.5 and at chunked's goodput 8.75 (they join the adaptive, sglang and
# chunked runs of call2.sh and call3.sh in `pdtune report`: same workload, engine and GPU). Carry
# all of .whl/ (optuna and its dependencies). Each step packs, so a call cut at its limit keeps
# the steps before.
rm -rf /tmp/r
source results/h200/device/setup.sh
MIX100="--workload mixed --num-requests 100 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000"
STATIC=/tmp/r/search/search-mixed.json
step search 330 "pdtune search $M $MIX100 $SLO30 --rate 13.5 --trials 8 $P100 --out $STATIC"; pack
step static-13.5 130 "pdtune bench $M $MIX300 $SLO30 --rate 13.5 --mode pdmux@$STATIC $P100 --out /tmp/r/static-13.5"; pack
step static-8.75 130 "pdtune bench $M $MIX300 $SLO30 --rate 8.75 --mode pdmux@$STATIC $P100 --out /tmp/r/static-8.75"; pack
