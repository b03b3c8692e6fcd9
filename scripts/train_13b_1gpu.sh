#!/usr/bin/env bash
# train_13b_1gpu.sh: LLaMA 13B pretraining with Grass on one 40 GB GPU (docs/design.md §6, §13): bf16 weights without a
# master copy (stochastic rounding), bf16 moments, full recomputation, rank 256; the plan is 29.3 GiB.
#   scripts/train_13b_1gpu.sh DATA_DIR OUT_DIR [extra train_llama options]
# DATA_DIR holds train_*.bin and val_*.bin (dev/data/); run `./train_llama ... --dry-run` to see the plan.
set -euo pipefail
data=${1:?usage: scripts/train_13b_1gpu.sh DATA_DIR OUT_DIR [options]} out=${2:?usage: scripts/train_13b_1gpu.sh DATA_DIR OUT_DIR [options]}
shift 2
cd "$(dirname "$0")/.."
exec ./train_llama --model 13b --optimizer grass --grass-rank 256 --master-weights 0 --state-dtype bf16 --recompute 2 \
  --batch 1 --seq 256 --total-batch 131072 --lr 1e-3 --warmup 1000 --steps 20000 --gpu-mem-limit 40 \
  --train-data "$data/train_*.bin" --val-data "$data/val_*.bin" --eval-every 500 --ckpt-every 1000 --resume auto \
  --out "$out" "$@"
