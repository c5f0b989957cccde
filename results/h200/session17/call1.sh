rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step decode-partition 240 "python results/h200/decode-partition/decode_partition.py /tmp/r/decode-partition"
step gemm-decode 120 "python results/h200/gemm-decode/gemm_decode.py /tmp/r/gemm-decode"
pack
