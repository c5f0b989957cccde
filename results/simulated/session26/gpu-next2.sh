# Prepared in session 26 for the next session's second device call, if neither setting of
# gpu-next.sh passes both targets on the H100 (about 330 s; carry the same wheel): chunked beside
# the sweep's next setting that passed both targets in all seven variants of robust/ (spare target
# 0.7 at slack share 0.1: robust.py's second set, verdicts.txt) and the static plan with long
# blocks of static-g18/ (112/20, gang 18, 16384-token batches: a lead, the virtual H100 is
# pessimistic for static plans) at 13.125 and 8.75 req/s, traced, to $OUT/second-next.
R=results/simulated/session26
NAME=second-next TRACE="--trace $OUT/second-next/trace.jsonl" RATES=13.125,8.75 \
  MODES="chunked,pdmux@$R/spare0.7-share0.1-spare.json,pdmux@$R/static-112-20-g18.json" \
  bash results/h100/session24/jump-batch.sh
gzip -f $OUT/second-next/trace.jsonl
