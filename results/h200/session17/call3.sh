rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step gpu-tests 200 "python -m pytest -q -x tests/gpu --durations=8"
step bench-kernels 150 "pdtune bench-kernels $M --batches 1,2,4,8,64,128 --contexts 1024,16384 --prefill-tokens 8192 --out /tmp/r/bench-kernels"
step bench-kernels-untuned 110 "pdtune bench-kernels $M --batches 1,2,4,8,64,128 --contexts 1024,16384 --prefill-tokens 512 --no-transformers --no-tune-decode-gemms --out /tmp/r/bench-kernels-untuned"
pack
