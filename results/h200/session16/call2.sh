rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step gpu-tests 170 "python3 -m pytest -q -p no:cacheprovider tests/gpu -x"
step bench-kernels 200 "pdtune bench-kernels $M --batches 1,2,4,8,64 --contexts 1024,16384 --prefill-tokens 8192 --out /tmp/r/bench-kernels"
pack
