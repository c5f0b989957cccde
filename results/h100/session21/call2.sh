# Prepared in session 21 for the next device session (call 2), not run: on an H100, the mixed
# workload at TTFT 2 s / TPOT 30 ms. Issue 6 asks its targets from one run for all modes. (1) At
# chunked's passing 8.75 req/s in one command: chunked, pdmux with its defaults, SGLang's rule, the
# decode target 0.8 with the shorter-first jump (met the first target in session 20, from two
# calls) and the spare decode target (0.8 only while queued prefills keep half their TTFT, new in
# session 20, not yet served on a GPU); the pdmux runs share one engine. A fresh machine's first
# engine start took over 85 s in session 20.
rm -rf /tmp/r
source results/h200/device/setup.sh
step all-8.75 560 "pdtune bench $M $MIX300 $SLO30 --rate 8.75 --mode $ALL_MODES $P100 --trace /tmp/r/all-8.75/trace.jsonl --out /tmp/r/all-8.75"; pack
