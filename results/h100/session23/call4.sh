# Session 23, call 4 (what the device time left allows after four H100 starts failed), at the
# commit that adds it: chunked, pdmux with its defaults and pdmux with decode target 0.8 and the
# shorter-first jump (session21/t0.8-shorter.json) in one command at 13.5 then 8.75 req/s, with
# the prefill SMs kept busy between batches (d2e93a9), traced, written straight to $OUT; then the
# pdmux GPU tests (same tokens as sequential, the 10,000-step race test), if time is left.
source results/h200/device/setup.sh
MODES="chunked,pdmux,pdmux@results/h100/session21/t0.8-shorter.json"
timeout 380 pdtune bench $M $MIX300 $SLO30 --rate 13.5,8.75 --mode $MODES $P100 --trace $OUT/sweep/trace.jsonl --out $OUT/sweep > $OUT/sweep.log 2>&1
echo "sweep rc=$?" >> $OUT/sweep.log
rm -f $OUT/sweep/requests.csv; gzip -f $OUT/sweep/trace.jsonl
step gpu-tests-pdmux 150 "python3 -m pytest -q -x tests/gpu/test_gpu_pdmux.py"
cp /tmp/r/gpu-tests-pdmux.log /tmp/r/steps.log /tmp/r/setup.log $OUT/
