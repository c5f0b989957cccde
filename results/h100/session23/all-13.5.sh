# Session 23: every mode and policy in one command at 13.5 req/s, with the prefill SMs kept busy
# between batches (d2e93a9: behind a jump and behind a batch's last layers): chunked, pdmux (defaults), pdmux:sglang, the shorter-first jump at
# decode targets 1.0 (shorter.json) and 0.8 (session21/t0.8-shorter.json). Traced.
source results/h200/device/setup.sh
S=results/h100/session23
MODES="chunked,pdmux,pdmux:sglang,pdmux@$S/shorter.json,pdmux@results/h100/session21/t0.8-shorter.json"
timeout 560 pdtune bench $M $MIX300 $SLO30 --rate 13.5 --mode $MODES $P100 --trace $OUT/all-13.5/trace.jsonl --out $OUT/all-13.5 > $OUT/all-13.5.log 2>&1
echo "all-13.5 rc=$?" >> $OUT/all-13.5.log
rm -f $OUT/all-13.5/requests.csv; gzip -f $OUT/all-13.5/trace.jsonl
