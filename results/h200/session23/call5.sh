# Session 23, call 5, on an H200 (five H100 starts failed; what the device time left allows), at
# the commit that adds it: the pdmux GPU tests, then decode target 0.8 with the shorter-first jump,
# pdmux with its defaults and chunked in one command at 13.125 req/s (pdmux's passing rate on the
# H200 with 64-token pages, session 18) and 10.169 (chunked's), with the prefill SMs kept busy
# between batches (d2e93a9). The H200 profile of session 18; traced; straight to $OUT.
source results/h200/device/setup.sh
step gpu-tests-pdmux 150 "python3 -m pytest -q -x tests/gpu/test_gpu_pdmux.py"
cp /tmp/r/gpu-tests-pdmux.log /tmp/r/steps.log /tmp/r/setup.log $OUT/
P200="--perf-model results/h200/session18/profile-p64/profile-llama-3.1-8b.json"
MODES="pdmux@results/h100/session21/t0.8-shorter.json,pdmux,chunked"
timeout 330 pdtune bench $M $MIX300 $SLO30 --rate 13.125,10.169 --mode $MODES $P200 --trace $OUT/sweep/trace.jsonl --out $OUT/sweep > $OUT/sweep.log 2>&1
echo "sweep rc=$?" >> $OUT/sweep.log
rm -f $OUT/sweep/requests.csv; gzip -f $OUT/sweep/trace.jsonl
