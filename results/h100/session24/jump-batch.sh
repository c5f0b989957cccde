# Session 24, call 3: the shorter-first jump taking the next shortest waiting prompts with it
# (`pdmux_jump_batch`) against one prompt a jump, at pdmux's passing rate (13.5 req/s on an H100)
# and chunked's (8.75), chunked beside them, in one command, straight to $OUT/$NAME. On an H200:
# session 18's rates (13.125 and 10.169) and profile. Run untraced: `--trace` was refused when
# every pdmux mode was a pdmux@FILE (fixed after the run, in `mode_name`). `next.sh` serves other
# modes through it (NAME, MODES, TRACE and the H100's RATES from the environment).
source results/h200/device/setup.sh
S=results/h100/session24
NAME=${NAME:-jump-batch} TRACE=${TRACE:-}
MODES=${MODES:-chunked,pdmux@$S/t0.8-shorter-batch.json,pdmux@$S/t0.8-shorter-one.json,pdmux@$S/t0.9-shorter-batch.json}
RATES=${RATES:-13.5,8.75} PROFILE="$P100"
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  RATES=13.125,10.169 PROFILE="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
fi
# shellcheck disable=SC2086  # the flag lists split
timeout 560 pdtune bench $M $MIX300 $SLO30 --rate $RATES --mode $MODES $PROFILE $TRACE --out $OUT/$NAME > $OUT/$NAME.log 2>&1
echo "$NAME rc=$?" >> $OUT/$NAME.log
rm -f $OUT/$NAME/requests.csv
