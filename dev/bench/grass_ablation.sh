#!/usr/bin/env bash
# grass_ablation.sh: trains the same model on the same data, steps and seed with AdamW and with Grass under
# each selector, and prints a table: final validation loss, optimizer-state bytes (from the trainer's memory
# plan), and mean step time. docs/grass.md's table and the default --grass-select come from this.
#   dev/bench/grass_ablation.sh                  (TinyShakespeare from dev/data/tinyshakespeare.sh)
# Settings by environment variable (defaults in brackets): MODEL [tiny] STEPS [200] BATCH [8] SEQ [128]
# LR [3e-3] WARMUP [20] RANK [preset] INTERVAL [50] EVAL_BATCHES [20] TRAIN ["data/tinyshakespeare/train_*.bin"]
# VAL ["data/tinyshakespeare/val_*.bin"] OUT [out/grass_ablation] BIN [./train_llama_cpu]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-tiny} STEPS=${STEPS:-200} BATCH=${BATCH:-8} SEQ=${SEQ:-128} LR=${LR:-3e-3} WARMUP=${WARMUP:-20}
INTERVAL=${INTERVAL:-50} EVAL_BATCHES=${EVAL_BATCHES:-20} OUT=${OUT:-out/grass_ablation} BIN=${BIN:-./train_llama_cpu}
TRAIN=${TRAIN:-data/tinyshakespeare/train_*.bin} VAL=${VAL:-data/tinyshakespeare/val_*.bin}
rank_args=(); [ -n "${RANK:-}" ] && rank_args=(--grass-rank "$RANK")
mkdir -p "$OUT"
common=(--model "$MODEL" --train-data "$TRAIN" --val-data "$VAL" --batch "$BATCH" --seq "$SEQ" --steps "$STEPS"
        --lr "$LR" --warmup "$WARMUP" --eval-every 0 --eval-batches "$EVAL_BATCHES" --seed 1337)
runs=(adamw topr multinorm multinorm-nr uniform uniform-nr)
for run in "${runs[@]}"; do
  if [ "$run" = adamw ]; then opt=(--optimizer adamw); else
    opt=(--optimizer grass --grass-select "$run" --grass-interval "$INTERVAL" "${rank_args[@]}"); fi
  echo "== $run" >&2
  "$BIN" "${common[@]}" "${opt[@]}" --out "$OUT/$run" > "$OUT/$run.log"
done
printf '\n%s, %s steps of %s x %s tokens, lr %s, Grass interval %s%s\n\n' "$MODEL" "$STEPS" "$BATCH" "$SEQ" "$LR" \
  "$INTERVAL" "$(grep -m1 '^grass:' "$OUT/topr.log" | sed 's/^grass: \(rank [0-9]*\).*/, \1/')"
printf '| optimizer | val loss | optimizer state (MiB) | of it projections (MiB) | gradients (MiB) | step (ms) |\n|---|---|---|---|---|---|\n'
for run in "${runs[@]}"; do
  val=$(grep '"val_loss"' "$OUT/$run/log.jsonl" | tail -1 | sed 's/.*"val_loss": \([0-9.e+-]*\).*/\1/')
  opt_b=$(awk '/^  optimizer state/ {print $3}' "$OUT/$run.log")
  grad_b=$(awk '/^  gradients/ {print $2}' "$OUT/$run.log")
  proj_b=$(awk '/^  projections:/ {print $7}' "$OUT/$run.log")
  ms=$(grep '"loss"' "$OUT/$run/log.jsonl" | tail -n +2 | sed 's/.*"ms": \([0-9.]*\).*/\1/' | awk '{s += $1; n++} END {printf "%.1f", n ? s / n : 0}')
  name=$run; [ "$run" = adamw ] || name="grass $run"
  mib() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1048576}'; }
  printf '| %s | %.4f | %s | %s | %s | %s |\n' "$name" "$val" "$(mib "$opt_b")" "$(mib "$proj_b")" "$(mib "$grad_b")" "$ms"
done
