# Prepared in session 23 for the next one (not run in session 23: no machine came), call 1: the
# pdmux GPU tests (same greedy tokens as sequential, the 10,000-step race test, partitions limiting
# SMs) on the prefill-behind changes, then every mode at pdmux's passing rate (`all.sh`: 13.5
# req/s on an H100, 13.125 on an H200, session 18). Call 2: `bash results/h100/session23/all.sh
# 8.75` (chunked's passing rate on an H100; 10.169 on an H200).
source results/h200/device/setup.sh
step gpu-tests-pdmux 150 "python3 -m pytest -q -x tests/gpu/test_gpu_pdmux.py"
cp /tmp/r/gpu-tests-pdmux.log /tmp/r/steps.log /tmp/r/setup.log $OUT/
RATE=13.5
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then RATE=13.125; fi
bash results/h100/session23/all.sh $RATE
