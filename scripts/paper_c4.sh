#!/usr/bin/env bash
# paper_c4.sh: the C4 pretraining runs of the GaLore and Grass papers (LLaMA 60m, 130m, 350m and 1b), Grass
# or the full-rank AdamW baseline, in this project's trainer. Their setting: sequence 256, 512 sequences
# (131072 tokens) per step, 10k / 20k / 60k / 100k steps (1.3B / 2.6B / 7.9B / 13.1B tokens), linear warmup over
# the first 10% of the steps then cosine decay to 10% of the peak, no weight decay, bf16; Grass at the preset's
# rank (60m 128, 130m and 350m 256, 1b 512) with scale 0.25 and a new selection every 200 steps (the trainer's
# defaults); validation on about 10M tokens every 1000 steps.
#   scripts/paper_c4.sh PRESET grass|adamw DATA_DIR OUT_DIR [extra train_llama options, e.g. --grass-select]
# DATA_DIR holds train_*.bin and val_*.bin from `python3 dev/data/c4.py` (data/c4). Environment:
#   GPUS=N   ranks under mpirun, one per GPU [1]; the steps do not change (gradient accumulation makes up
#            the 512 sequences of a step), only their speed
#   MICRO=B  sequences per micro-batch and GPU [128; 64 for 1b: every run's plan then fits a 40 GB GPU]
#   LR=X     peak learning rate [grass 1e-2, the GaLore setting of the projected methods; adamw 1e-3]
# The command is printed first; a run resumes from its newest checkpoint in OUT_DIR (one every 1000 steps).
set -euo pipefail
usage="usage: scripts/paper_c4.sh 60m|130m|350m|1b grass|adamw DATA_DIR OUT_DIR [train_llama options]"
[ $# -ge 4 ] || { echo "error: $usage" >&2; exit 2; }
preset=$1 opt=$2 data=$3 out=$4
shift 4
case $preset in
  60m) steps=10000 ;;
  130m) steps=20000 ;;
  350m) steps=60000 ;;
  1b) steps=100000 ;;
  *) echo "error: preset '$preset': the papers' C4 runs are 60m, 130m, 350m and 1b ($usage)" >&2; exit 2 ;;
esac
case $opt in
  grass) lr=${LR:-1e-2} ;;
  adamw) lr=${LR:-1e-3} ;;
  *) echo "error: optimizer '$opt': grass or adamw ($usage)" >&2; exit 2 ;;
esac
gpus=${GPUS:-1} micro=${MICRO:-$([ "$preset" = 1b ] && echo 64 || echo 128)}
seq=256 tokens=131072
if [ $((tokens % (gpus * micro * seq))) -ne 0 ]; then
  echo "error: GPUS=$gpus x MICRO=$micro sequences must divide the 512 sequences of a step" >&2; exit 2
fi
eval_batches=$(( (10000000 + gpus * micro * seq - 1) / (gpus * micro * seq) ))  # about 10M tokens over all ranks
cd "$(dirname "$0")/.."
launch=(./train_llama); [ "$gpus" -gt 1 ] && launch=(mpirun -np "$gpus" --bind-to none ./train_llama)
cmd=("${launch[@]}" --model "$preset" --optimizer "$opt" --seq $seq --batch "$micro" --total-batch $tokens
     --steps $steps --warmup $((steps / 10)) --lr "$lr" --min-lr-ratio 0.1 --weight-decay 0
     --train-data "$data/train_*.bin" --val-data "$data/val_*.bin" --eval-every 1000 --eval-batches $eval_batches
     --ckpt-every 1000 --resume auto --out "$out" "$@")
echo "${cmd[*]}"
exec "${cmd[@]}"
