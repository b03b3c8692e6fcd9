#!/usr/bin/env bash
# train_2node.sh: two nodes of 8 GPUs (16 ranks) with OpenMPI; NCCL carries the gradients between the nodes.
# HOSTS names the nodes (each with 8 slots); the repository and the data must be at the same path on both
# (a shared file system), since every rank reads its part of each batch and rank 0 writes the checkpoints.
#   HOSTS=node1,node2 scripts/train_2node.sh DATA_DIR OUT_DIR [extra train_llama options]
set -euo pipefail
data=${1:?usage: HOSTS=a,b scripts/train_2node.sh DATA_DIR OUT_DIR [options]} out=${2:?usage: HOSTS=a,b scripts/train_2node.sh DATA_DIR OUT_DIR [options]}
shift 2
: "${HOSTS:?set HOSTS=node1,node2}"
cd "$(dirname "$0")/.."
hosts=$(echo "$HOSTS" | sed 's/\([^,]*\)/\1:8/g')
exec mpirun -np 16 -H "$hosts" --bind-to none -x PATH -x LD_LIBRARY_PATH -x NCCL_DEBUG=WARN ./train_llama --model 1b \
  --optimizer grass --grass-rank 512 --batch 8 --seq 1024 --total-batch 1048576 --lr 1e-3 --warmup 1000 --steps 20000 \
  --train-data "$data/train_*.bin" --val-data "$data/val_*.bin" --eval-every 500 --ckpt-every 1000 --resume auto \
  --out "$out" "$@"
