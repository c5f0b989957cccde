rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step decode-prefetch 240 "python results/h200/decode-prefetch/decode_prefetch.py /tmp/r/decode-prefetch"
pack
