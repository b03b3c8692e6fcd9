#!/usr/bin/env bash
# quickstart.sh: the README's CPU quick start, exactly as README.md states it (the tiny preset on TinyShakespeare,
# 300 steps of 8 x 128 tokens), then the final validation loss, which is the number README quotes. The run is
# deterministic (the same bits for any number of threads), so any machine prints the same loss; it takes about 3
# minutes on 2 cores.
#   dev/bench/quickstart.sh            prints the trainer's output, then "final val_loss X.XXXX" and the time taken
# TinyShakespeare comes from $GRASS_DATA/tinyshakespeare.txt (default ../shared/data beside the checkout) when it
# exists, else dev/data/tinyshakespeare.sh downloads it (the same text either way); the tokenizer as that script
# finds it. OUT (default out/quickstart) is replaced: the run starts from scratch.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/quickstart}
data=${GRASS_DATA:-$(cd .. && pwd)/shared/data}
make -s train_llama_cpu tokenize
if [ ! -f data/tinyshakespeare/train_000000.bin ] || [ ! -f data/tokenizer.model ]; then
  if [ -f "$data/tinyshakespeare.txt" ]; then dev/data/tinyshakespeare.sh "$data/tinyshakespeare.txt"
  else dev/data/tinyshakespeare.sh; fi
fi
rm -rf "$OUT"
mkdir -p "$OUT"
start=$SECONDS
./train_llama_cpu --model tiny \
    --train-data "data/tinyshakespeare/train_*.bin" --val-data "data/tinyshakespeare/val_*.bin" \
    --batch 8 --seq 128 --steps 300 --warmup 30 --lr 3e-3 --eval-every 50 --eval-batches 10 \
    --sample-every 100 --tokenizer data/tokenizer.model --out "$OUT" | tee "$OUT/stdout.log"
loss=$(awk '$1 == "val_loss" {v = $2} END {print v}' "$OUT/stdout.log")
[ -n "$loss" ] || { echo "error: no val_loss line in the trainer's output ($OUT/stdout.log)" >&2; exit 1; }
echo "final val_loss $loss ($((SECONDS - start)) s)"
