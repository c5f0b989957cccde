# Prepared in session 24 for the next one, after `next.sh` (about 420 s on an H100 each). The
# decode target's cost at 13.5 req/s alone (`t0.8.json`: 0.8, no jump) and the "safe" jump with
# decode planned at 1 under load but at 0.8 or 0.7 of the TPOT while every queued prefill keeps
# half its TTFT slack (`spare0.8-safe.json`, `spare0.7-safe.json`), beside chunked, at 13.5 and
# 8.75 in one command, traced, to $OUT/spare-safe. Session 23 saw decode target 0.8 with the
# strict `spare` jump still fall 2.66 s behind at 13.5, so the target may cost 13.5 by itself.
S=results/h100/session24
NAME=spare-safe TRACE="--trace $OUT/spare-safe/trace.jsonl" \
  MODES="chunked,pdmux@$S/t0.8.json,pdmux@$S/spare0.8-safe.json,pdmux@$S/spare0.7-safe.json" \
  bash $S/jump-batch.sh
gzip -f $OUT/spare-safe/trace.jsonl
