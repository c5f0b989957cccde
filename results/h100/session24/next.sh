# Prepared in session 24 for the next one (not run: no device time left). The "safe" jump (the
# shortest waiting prompts, batched, jump only while no waiting request that can still meet its
# TTFT would miss it behind them) at decode targets 0.8 and 0.9, beside chunked and session 24's
# batched "shorter" jump at 0.9 (2.88 s behind at 13.5), at 13.5 and 8.75 req/s in one command,
# traced, straight to $OUT (about 420 s on an H100). On an H200: session 18's rates and profile.
source results/h200/device/setup.sh
S=results/h100/session24
RATES=13.5,8.75 PROFILE="$P100"
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  RATES=13.125,10.169 PROFILE="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
fi
MODES="chunked,pdmux@$S/t0.8-safe.json,pdmux@$S/t0.9-safe.json,pdmux@$S/t0.9-shorter-batch.json"
timeout 560 pdtune bench $M $MIX300 $SLO30 --rate $RATES --mode $MODES $PROFILE --trace $OUT/safe/trace.jsonl --out $OUT/safe > $OUT/safe.log 2>&1
echo "safe rc=$?" >> $OUT/safe.log
rm -f $OUT/safe/requests.csv; gzip -f $OUT/safe/trace.jsonl
