# Prepared in session 20 for the next device session (call 2 of 3), not run: on an H100, the mixed
# workload at TPOT 30 ms. SGLang's own split rule (fixed in session 20: pdtune's old rule moved one
# split up per 36 decoding sequences, SGLang's per 6, so at pdmux's goodput rates SGLang's gives
# decode 68/64 where adaptive picks the least that meets the TPOT). (1) Its goodput, bisected
# between chunked's 8.75 and adaptive's 13.5 on one engine (issue 6: adaptive above sglang); (2)
# adaptive with the shorter-first jump at 14.4 req/s, where adaptive failed 3.05 s behind (the
# jump's goodput cost).
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step sglang-goodput 240 "pdtune bench $M $MIX300 $SLO30 --goodput --goodput-bracket 8.75,13.5 --goodput-iterations 2 --mode pdmux:sglang $P100 --trace /tmp/r/sglang-goodput/trace.jsonl --out /tmp/r/sglang-goodput"; pack
step shorter-14.4 150 "pdtune bench $M $MIX300 $SLO30 --rate 14.4 --mode pdmux $P100 --pdmux-prefill-jump shorter --out /tmp/r/shorter-14.4"; pack
