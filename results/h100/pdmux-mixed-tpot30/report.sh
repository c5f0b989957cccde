# Regenerates this folder from the saved runs (from the repository root: bash
# results/h100/pdmux-mixed-tpot30/report.sh). Runs of one setup at several rates join into one
# attainment curve and goodput; add the folders of later runs at TPOT 30 ms to RUNS (and their
# traces to TRACES) and run it again. report.txt keeps the output from the traces' tables on.
set -eu
S19=results/h100/session19 S20=results/h100/session20/mixed300-8.75 S21=results/h100/session21
S22=results/h100/session22 S23=results/h100/session23 S24=results/h100/session24
D=results/h100/pdmux-mixed-tpot30
RUNS="$S19/mixed300-chunked $S19/mixed300-chunked-8.75 $S19/mixed300-chunked-9.125 $S20/chunked
  $S19/mixed300-pdmux-10.8 $S19/mixed300-pdmux-up $S19/mixed300-pdmux-14.4 $S21/both-13.5 $S21/sglang-goodput
  $S20/pdmux-t0.8-shorter-step $S20/pdmux-t0.65-shorter-step
  $S22/all-8.75 $S22/all-9.125 $S22/all-13.5 $S22/static-8.75 $S22/static-13.5 $S23/spare-jump $S23/jump-target
  $S24/all-13.5 $S24/all-8.75 $S24/jump-batch"
TRACES="$S19/mixed300-pdmux-10.8/trace.jsonl.gz $S20/pdmux-t0.8-shorter-step/trace.jsonl.gz
  $S20/pdmux-t0.65-shorter-step/trace.jsonl.gz $S21/sglang-goodput/trace.jsonl.gz $S22/all-8.75/trace.jsonl.gz
  $S24/all-8.75/trace.jsonl.gz"
# shellcheck disable=SC2086  # the lists split into paths
COLUMNS=250 pdtune report $RUNS $TRACES --out $D > $D/report.all.txt
FIRST=${TRACES%%.jsonl.gz*}.jsonl.gz  # the first trace's table title starts report.txt
awk -v t="$FIRST" '{ line = $0; gsub(/^ +| +$/, "", line) } line == t { on = 1 } on' $D/report.all.txt > $D/report.txt
rm $D/report.all.txt
