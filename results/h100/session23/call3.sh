# Session 23, call 3, at commit d2e93a9: the overtaken prefill's next layers run in the step a jump
# ends, and the next prefill batch starts behind the last layers of the one before (the prefill
# SMs no longer idle to the next step). First the pdmux GPU tests (same tokens as sequential, the
# 10,000-step race test), then every mode and policy in one command at 13.5 req/s (all.sh).
source results/h200/device/setup.sh
step gpu-tests-pdmux 150 "python3 -m pytest -q -x tests/gpu/test_gpu_pdmux.py"
cp /tmp/r/gpu-tests-pdmux.log /tmp/r/steps.log /tmp/r/setup.log $OUT/
bash results/h100/session23/all.sh 13.5
