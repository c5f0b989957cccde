# Session 22, call 6 (the session's last 365 s of device time): the shorter-first jump only while
# every queued prefill keeps half its TTFT slack (`pdmux_prefill_jump` "spare", new this session),
# with the decode target 0.8 (t0.8-spare.json) and the spare decode target 0.8 (spare-0.8-spare.json):
# does either keep 13.5 req/s, where both settings with the plain jump fell behind (5.13 s, 4.05 s),
# and the first target at 8.75? A sweep on one engine, written straight to $OUT so that a call cut
# by the device time left keeps the rates it served.
source results/h200/device/setup.sh
S=results/h100/session22
timeout 280 pdtune bench $M $MIX300 $SLO30 --rate 13.5,8.75 --mode pdmux@$S/t0.8-spare.json,pdmux@$S/spare-0.8-spare.json $P100 --out $OUT/spare-jump > $OUT/spare-jump.log 2>&1
echo "spare-jump rc=$?" >> $OUT/spare-jump.log
rm -f $OUT/spare-jump/requests.csv
