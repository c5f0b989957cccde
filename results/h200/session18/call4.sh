rm -rf /tmp/r
source results/h200/device/setup.sh
export PYTHONUNBUFFERED=1
for b in 64 16; do
  step profile-p$b 90 "pdtune profile $M --splits 112/20,96/36,72/60 --batches 1,16,64 --contexts 512,4096 --prefill-tokens 256,1024,2048 --block-size $b --out /tmp/r/profile-p$b/profile-llama-3.1-8b.json"
  pack
done
