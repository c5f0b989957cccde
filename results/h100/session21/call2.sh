# Session 21, call 2, on an H100: the mixed workload at TTFT 2 s / TPOT 30 ms. (1) Issue 6's first
# target in one command at chunked's passing 8.75 req/s: chunked, pdmux with its defaults, with the
# decode target 0.8 and the shorter-first jump (met the target in session 20, from two calls), and
# with the spare decode target (0.8 only while queued prefills keep half their TTFT, new in session
# 20, not yet run on a GPU); the pdmux runs share one engine. (2) The pdmux GPU tests, whose
# same-tokens test covers the spare target and the jump.
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
S=results/h100/session21
MODES="chunked,pdmux,pdmux@$S/t0.8-shorter.json,pdmux@results/h100/session20/spare-0.8-shorter.json"
step all-8.75 400 "pdtune bench $M $MIX300 $SLO30 --rate 8.75 --mode $MODES $P100 --trace /tmp/r/all-8.75/trace.jsonl --out /tmp/r/all-8.75"; pack
step gpu-tests-pdmux 150 "python -m pytest -q -x tests/gpu/test_gpu_pdmux.py"; pack
