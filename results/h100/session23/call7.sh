# Session 23, call 7 (about 300 s of device time left after eight failed starts: a start and the
# GPU tests only), at the commit that adds it, on whichever card comes: the pdmux GPU tests (same
# greedy tokens as sequential in every policy with the jump, the 10,000-step race test, partitions
# limiting SMs) on the prefill-behind changes of c69ce88 and d2e93a9.
source results/h200/device/setup.sh
step gpu-tests-pdmux 110 "python3 -m pytest -q -x tests/gpu/test_gpu_pdmux.py"
cp /tmp/r/gpu-tests-pdmux.log /tmp/r/steps.log /tmp/r/setup.log $OUT/
