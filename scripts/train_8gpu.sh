#!/usr/bin/env bash
# train_8gpu.sh: one node, 8 GPUs, one process per GPU (the GPU is picked by node-local rank), gradients
# averaged with NCCL. The 1b preset with Grass at rank 512 as the example; any train_llama option can follow.
#   scripts/train_8gpu.sh DATA_DIR OUT_DIR [extra train_llama options]
set -euo pipefail
data=${1:?usage: scripts/train_8gpu.sh DATA_DIR OUT_DIR [options]} out=${2:?usage: scripts/train_8gpu.sh DATA_DIR OUT_DIR [options]}
shift 2
cd "$(dirname "$0")/.."
exec mpirun -np 8 --bind-to none ./train_llama --model 1b --optimizer grass --grass-rank 512 --batch 8 --seq 1024 \
  --total-batch 524288 --lr 1e-3 --warmup 1000 --steps 20000 --train-data "$data/train_*.bin" \
  --val-data "$data/val_*.bin" --eval-every 500 --ckpt-every 1000 --resume auto --out "$out" "$@"
