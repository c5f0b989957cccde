# Prepared in session 21 for the next device session (call 3), not run: on an H100, the mixed
# workload at TTFT 2 s / TPOT 30 ms. The goodput target from one run for all modes: at adaptive's
# goodput 13.5 req/s chunked (goodput 8.75, sessions 19-20), adaptive, SGLang's rule (82.0% in
# session 21) and the two first-target settings of call 2 (do they keep 13.5?), in one command.
# Session 22 moved the 9.125 req/s step to call4.sh: by session 20's step times (chunked 71 s,
# a pdmux engine's start 40 s and about 50 s a run) it needs about 210 s, over the 190 s it had.
rm -rf /tmp/r
source results/h200/device/setup.sh
step all-13.5 450 "pdtune bench $M $MIX300 $SLO30 --rate 13.5 --mode $ALL_MODES $P100 --out /tmp/r/all-13.5"; pack
