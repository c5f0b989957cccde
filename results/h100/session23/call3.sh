# Session 23, call 3: the overtaken prefill's next layers now run in the step a jump ends (the
# prefill SMs no longer idle from the jump's end to the next step). Does the shorter-first jump
# keep 13.5 req/s now (calls 1-2: 2.7-4.4 s behind, over one TTFT)? Traced, one engine.
source results/h200/device/setup.sh
S=results/h100/session23
timeout 200 pdtune bench $M $MIX300 $SLO30 --rate 13.5 --mode pdmux@$S/shorter.json,pdmux@results/h100/session21/t0.8-shorter.json $P100 --trace $OUT/fill-13.5/trace.jsonl --out $OUT/fill-13.5 > $OUT/fill-13.5.log 2>&1
echo "fill-13.5 rc=$?" >> $OUT/fill-13.5.log
rm -f $OUT/fill-13.5/requests.csv; gzip -f $OUT/fill-13.5/trace.jsonl
