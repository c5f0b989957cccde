# Session 23, call 2: the shorter-first jump at decode targets 0.9 and 1.0 (the default): does a
# target between 0.8 (first target met, 13.5 fell behind) and 1.0 (13.5 kept, first target missed)
# hold both? One engine, 13.5 then 8.75 req/s, straight to $OUT.
source results/h200/device/setup.sh
S=results/h100/session23
timeout 280 pdtune bench $M $MIX300 $SLO30 --rate 13.5,8.75 --mode pdmux@$S/t0.9-shorter.json,pdmux@$S/shorter.json $P100 --out $OUT/jump-target > $OUT/jump-target.log 2>&1
echo "jump-target rc=$?" >> $OUT/jump-target.log
rm -f $OUT/jump-target/requests.csv
