# Every mode and policy in one command at RATE req/s (the first argument), traced, written straight
# to $OUT: chunked; pdmux with its defaults, and with the prefill SMs left idle after a batch's
# last layers as before session 23 (behind-off.json, `pdmux_prefill_behind` false); SGLang's rule;
# decode target 0.8 with the shorter-first jump (session21/t0.8-shorter.json), and the same as
# before session 23 (t0.8-shorter-behind-off.json). The pdmux modes share one engine. The profile
# is the card's: the H100's of session 19, or on an H200 session 18's.
RATE=$1
source results/h200/device/setup.sh
S=results/h100/session23
PROFILE="$P100"
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  PROFILE="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
fi
MODES="chunked,pdmux,pdmux@$S/behind-off.json,pdmux:sglang,pdmux@results/h100/session21/t0.8-shorter.json"
MODES+=",pdmux@$S/t0.8-shorter-behind-off.json"
timeout 540 pdtune bench $M $MIX300 $SLO30 --rate $RATE --mode $MODES $PROFILE --trace $OUT/all-$RATE/trace.jsonl --out $OUT/all-$RATE > $OUT/all-$RATE.log 2>&1
echo "all-$RATE rc=$?" >> $OUT/all-$RATE.log
rm -f $OUT/all-$RATE/requests.csv; gzip -f $OUT/all-$RATE/trace.jsonl
