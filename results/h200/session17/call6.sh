rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
BK="--batches 1,64 --contexts 1024 --prefill-tokens 512 --no-transformers"
step bench-kernels-b64 60 "pdtune bench-kernels $M $BK --out /tmp/r/bench-kernels-b64"; pack
step bench-kernels-b64-untuned 60 "pdtune bench-kernels $M $BK --no-tune-decode-gemms --out /tmp/r/bench-kernels-b64-untuned"; pack
