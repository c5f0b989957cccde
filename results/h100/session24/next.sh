# Prepared in session 24 for the next one (not run: no device time left). The "safe" jump (the
# shortest waiting prompts, batched, jump only while no waiting request that can still meet its
# TTFT would miss it behind them) at decode targets 0.8 and 0.9, beside chunked and session 24's
# batched "shorter" jump at 0.9 (2.88 s behind at 13.5), at 13.5 and 8.75 req/s in one command,
# traced, to $OUT/safe (about 420 s on an H100; 7 files come back). On an H200: session 18's rates
# and profile.
S=results/h100/session24
NAME=safe TRACE="--trace $OUT/safe/trace.jsonl" \
  MODES="chunked,pdmux@$S/t0.8-safe.json,pdmux@$S/t0.9-safe.json,pdmux@$S/t0.9-shorter-batch.json" \
  bash $S/jump-batch.sh
gzip -f $OUT/safe/trace.jsonl
