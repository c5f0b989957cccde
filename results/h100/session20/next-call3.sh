# Prepared in session 20 for the next device session (call 3 of 3, if time is left), not run: on an
# H100, the mixed workload as in calls 1-4. The spare decode target (new in session 20, CPU-tested):
# decode planned at 0.8 of the TPOT only while every queued prefill keeps a share (0.5, or 0.25) of
# its TTFT, with the shorter-first jump. (1) Issue 6's first target in one command at 8.75 req/s:
# chunked, pdmux with the defaults and with the two spare settings, the pdmux runs on one engine (a
# fixed target of 0.8 with the jump met it in session 20, from two calls); (2) both spare settings
# at 13.5 req/s, pdmux's goodput rate (adaptive passed it at 95.3%, 1.91 s behind): do they keep it?
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
S=results/h100/session20
SPARE="pdmux@$S/spare-0.8-shorter.json,pdmux@$S/spare-0.8-shorter-s0.25.json"
step all-8.75 330 "pdtune bench $M $MIX300 $SLO30 --rate 8.75 --mode chunked,pdmux,$SPARE $P100 --trace /tmp/r/all-8.75/trace.jsonl --out /tmp/r/all-8.75"; pack
step spare-13.5 220 "pdtune bench $M $MIX300 $SLO30 --rate 13.5 --mode $SPARE $P100 --out /tmp/r/spare-13.5"; pack
