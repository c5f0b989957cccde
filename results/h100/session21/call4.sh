# Prepared in session 22 for the next device session (call 4, if time is left), not run: on an
# H100, the mixed workload at TTFT 2 s / TPOT 30 ms at 9.125 req/s, chunked's failing rate
# (89.7% in session 19): chunked, adaptive and the first-target setting in one command. Moved
# here from call3.sh (split from it in session 22 to fit its time limit).
rm -rf /tmp/r
source results/h200/device/setup.sh
S=results/h100/session21
step all-9.125 300 "pdtune bench $M $MIX300 $SLO30 --rate 9.125 --mode chunked,pdmux,pdmux@$S/t0.8-shorter.json $P100 --out /tmp/r/all-9.125"; pack
