# Session 23, call 6 (about 510 s of device time left after six failed starts), at the commit that
# adds it, on whichever card comes: pdmux with decode target 0.8 and the shorter-first jump
# (session21/t0.8-shorter.json) and pdmux with its defaults on one engine at pdmux's passing rate
# (H100: 13.5 req/s with the H100 profile; H200: 13.125 with session 18's H200 profile), with the
# prefill SMs kept busy between batches (d2e93a9): does the jump keep the rate now? Traced, straight
# to $OUT. Then the pdmux GPU tests.
source results/h200/device/setup.sh
RATE=13.5; PROFILE="$P100"
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  RATE=13.125; PROFILE="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
fi
MODES="pdmux@results/h100/session21/t0.8-shorter.json,pdmux"
timeout 200 pdtune bench $M $MIX300 $SLO30 --rate $RATE --mode $MODES $PROFILE --trace $OUT/jump-$RATE/trace.jsonl --out $OUT/jump-$RATE > $OUT/jump-$RATE.log 2>&1
echo "jump-$RATE rc=$?" >> $OUT/jump-$RATE.log
rm -f $OUT/jump-$RATE/requests.csv; gzip -f $OUT/jump-$RATE/trace.jsonl
step gpu-tests-pdmux 120 "python3 -m pytest -q -x tests/gpu/test_gpu_pdmux.py"
cp /tmp/r/gpu-tests-pdmux.log /tmp/r/steps.log /tmp/r/setup.log $OUT/
