# Session 23: every mode and policy in one command at RATE req/s (the first argument), with the prefill SMs kept busy
# between batches (d2e93a9: behind a jump and behind a batch's last layers): chunked, pdmux (defaults), pdmux:sglang, the shorter-first jump at
# decode targets 1.0 (shorter.json) and 0.8 (session21/t0.8-shorter.json). Traced.
RATE=$1
source results/h200/device/setup.sh
S=results/h100/session23
MODES="chunked,pdmux,pdmux:sglang,pdmux@$S/shorter.json,pdmux@results/h100/session21/t0.8-shorter.json"
timeout 560 pdtune bench $M $MIX300 $SLO30 --rate $RATE --mode $MODES $P100 --trace $OUT/all-$RATE/trace.jsonl --out $OUT/all-$RATE > $OUT/all-$RATE.log 2>&1
echo "all-$RATE rc=$?" >> $OUT/all-$RATE.log
rm -f $OUT/all-$RATE/requests.csv; gzip -f $OUT/all-$RATE/trace.jsonl
