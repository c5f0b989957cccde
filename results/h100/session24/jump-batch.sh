# Session 24, call 3: the shorter-first jump taking the next shortest waiting prompts with it
# (`pdmux_jump_batch`) against one prompt a jump, at pdmux's passing rate (13.5 req/s on an H100)
# and chunked's (8.75), chunked beside them, in one command, traced, straight to $OUT.
source results/h200/device/setup.sh
S=results/h100/session24
MODES="chunked,pdmux@$S/t0.8-shorter-batch.json,pdmux@$S/t0.8-shorter-one.json,pdmux@$S/t0.9-shorter-batch.json"
timeout 560 pdtune bench $M $MIX300 $SLO30 --rate 13.5,8.75 --mode $MODES $P100 --trace $OUT/jump-batch/trace.jsonl --out $OUT/jump-batch > $OUT/jump-batch.log 2>&1
echo "jump-batch rc=$?" >> $OUT/jump-batch.log
rm -f $OUT/jump-batch/requests.csv; gzip -f $OUT/jump-batch/trace.jsonl
