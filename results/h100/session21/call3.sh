# Prepared in session 21 for the next device session (call 3), not run: on an H100, the mixed
# workload at TTFT 2 s / TPOT 30 ms. The goodput target from one run for all modes: at adaptive's
# goodput 13.5 req/s chunked (goodput 8.75, sessions 19-20), adaptive, SGLang's rule (82.0% in
# session 21) and the two first-target settings of call 2 (do they keep 13.5?), in one command;
# then chunked, adaptive and the first-target setting at 9.125, chunked's failing rate.
rm -rf /tmp/r
source results/h200/device/setup.sh
S=results/h100/session21
step all-13.5 400 "pdtune bench $M $MIX300 $SLO30 --rate 13.5 --mode $ALL_MODES $P100 --out /tmp/r/all-13.5"; pack
step all-9.125 190 "pdtune bench $M $MIX300 $SLO30 --rate 9.125 --mode chunked,pdmux,pdmux@$S/t0.8-shorter.json $P100 --out /tmp/r/all-9.125"; pack
