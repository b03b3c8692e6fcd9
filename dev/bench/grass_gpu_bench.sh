#!/usr/bin/env bash
# grass_gpu_bench.sh: Grass against AdamW in the same binary (DESIGN §9: Grass at least 1.3x AdamW's tokens/s for
# 1b at rank 512): tokens/s, MFU and memory for 350m and 1b at the same batch, the ratio, and where the step
# time goes (forward, backward, optimizer: the trainer's CUDA-event phases in log.jsonl; for single kernels,
# `ncu` or dev/cuda/bin/grass's timing loop).
#   dev/bench/grass_gpu_bench.sh     settings: PRESETS ["350m 1b"] BATCH [8] SEQ [1024] STEPS [20] RANK [preset's]
set -euo pipefail
cd "$(dirname "$0")/../.."
PRESETS=${PRESETS:-350m 1b} BATCH=${BATCH:-8} SEQ=${SEQ:-1024} STEPS=${STEPS:-20} PYTHON=${PYTHON:-python3}
TRAIN_GPU=${TRAIN_GPU:-./train_llama}  # dev/emu/bin/train_llama checks the script on the CPU emulator (PRESETS=test)
OUT=${OUT:-out/grass_gpu_bench}
mkdir -p "$OUT"
"$PYTHON" test/shard_tool.py "$OUT/train.bin" --tokens $((BATCH * SEQ * (STEPS + 2) + 1)) --vocab 32000
rank_args=(); [ -n "${RANK:-}" ] && rank_args=(--grass-rank "$RANK")
echo "| preset | optimizer | tok/s | MFU | memory GiB | forward ms | backward ms | optimizer ms | Grass / AdamW tok/s |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in $PRESETS; do
  adamw_tok=
  for opt in adamw grass; do
    extra=(--optimizer $opt); [ $opt = grass ] && extra+=("${rank_args[@]}")
    "$TRAIN_GPU" --model $p --train-data "$OUT/train.bin" --batch $BATCH --seq $SEQ --steps $STEPS --warmup 1 \
      --eval-every 0 --ckpt-every -1 "${extra[@]}" --out "$OUT/$p.$opt" > "$OUT/$p.$opt.log"
    # mean over the steps after the first three (plans, allocations and the refresh at step 0 settle)
    read -r tok mfu mem fwd bwd optim <<< "$(grep '"loss"' "$OUT/$p.$opt/log.jsonl" | tail -n +4 |
      sed 's/.*"tok_s": \([0-9.]*\), "mfu": \([0-9.]*\), "mem_gib": \([0-9.]*\).*"forward_ms": \([0-9.]*\), "backward_ms": \([0-9.]*\), "optimizer_ms": \([0-9.]*\).*/\1 \2 \3 \4 \5 \6/' |
      awk '{t += $1; m += $2; if ($3 > g) g = $3; f += $4; b += $5; o += $6; n++}
           END {printf "%.0f %.1f %.2f %.1f %.1f %.1f", t / n, 100 * m / n, g, f / n, b / n, o / n}')"
    [ $opt = adamw ] && adamw_tok=$tok
    ratio=$(awk -v a="$tok" -v b="$adamw_tok" 'BEGIN {printf "%.2fx", a / b}')
    echo "| $p | $opt | $tok | $mfu% | $mem | $fwd | $bwd | $optim | $ratio |"
  done
done
