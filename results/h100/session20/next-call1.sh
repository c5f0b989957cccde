# Prepared in session 20 for the next device session (call 1 of 3), not run: on an H100, the mixed
# workload as in calls 1-4. Issue 6's "adaptive above sglang": at TPOT 30 ms both passed 12.6 and
# 13.5 req/s (a tie), but with a rule that was not SGLang's (fixed in session 20: one split up per
# 36 decoding sequences where SGLang's moves one per 6). SGLang's rule picks its split from the
# decode batch size alone, so at TPOT 20 ms its splits may be too small and at 50 ms too large. (1)
# sglang at TPOT 20 ms on adaptive's probes (8.4: 99.3%, 9.6: 98.0%); (2) both policies at TPOT 50
# ms, 13.5 req/s (not served at that SLO), one engine; (3) the pdmux GPU tests (their same-tokens
# test now covers the spare target and the jump). Limits: a fresh machine's first engine start took
# over 85 s in session 20.
rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
step sglang-tpot20 210 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=20ms --goodput --goodput-bracket 6,10.8 --goodput-iterations 2 --mode pdmux:sglang $P100 --out /tmp/r/sglang-tpot20"; pack
step both-tpot50-13.5 180 "pdtune bench $M $MIX300 --slo ttft=2s,tpot=50ms --rate 13.5 --mode pdmux,pdmux:sglang $P100 --out /tmp/r/both-tpot50-13.5"; pack
step gpu-tests-pdmux 120 "python -m pytest -q -x tests/gpu/test_gpu_pdmux.py"; pack
