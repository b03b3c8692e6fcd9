#!/usr/bin/env bash
# grass_gpu_bench.sh: Grass against AdamW in the same binary (docs/design.md §13: Grass at least 1.3x AdamW's tokens/s for
# 1b at rank 512): tokens/s, MFU and memory for 350m and 1b at the same batch, the ratio, and where the step
# time goes: forward, backward, optimizer (the trainer's CUDA-event phases in log.jsonl), then per kind of work
# (matmuls, attention, norms, Grass's gather and refresh, ...) from separate shorter runs with --profile, so
# that the events it adds stay out of the main table. For single kernels: dev/cuda/bin/* timing loops, or ncu.
#   dev/bench/grass_gpu_bench.sh     settings: PRESETS ["350m 1b"] BATCH [8] SEQ [1024] STEPS [20] RANK [preset's]
#                                              RECOMPUTE [0, as gpu_bench.sh] PROFILE_STEPS [6] (0: no profile tables)
#                                              OPTIMIZERS ["adamw grass"]: the main table's rows (adamw alone: no
#                                              ratio; the profile tables always compare both)
set -euo pipefail
cd "$(dirname "$0")/../.."
PRESETS=${PRESETS:-350m 1b} BATCH=${BATCH:-8} SEQ=${SEQ:-1024} STEPS=${STEPS:-20} PYTHON=${PYTHON:-python3}
PROFILE_STEPS=${PROFILE_STEPS:-6} RECOMPUTE=${RECOMPUTE:-0} OPTIMIZERS=${OPTIMIZERS:-adamw grass}
TRAIN_GPU=${TRAIN_GPU:-./train_llama}  # dev/emu/bin/train_llama checks the script on the CPU emulator (PRESETS=test)
OUT=${OUT:-out/grass_gpu_bench}
mkdir -p "$OUT"
"$PYTHON" test/shard_tool.py "$OUT/train.bin" --tokens $((BATCH * SEQ * (STEPS + 2) + 1)) --vocab 32000
rank_args=(); [ -n "${RANK:-}" ] && rank_args=(--grass-rank "$RANK")
echo "| preset | optimizer | tok/s | MFU | memory GiB | forward ms | backward ms | optimizer ms | Grass / AdamW tok/s |"
echo "|---|---|---|---|---|---|---|---|---|"
for p in $PRESETS; do
  adamw_tok=
  for opt in $OPTIMIZERS; do
    extra=(--optimizer $opt); [ $opt = grass ] && extra+=("${rank_args[@]}")
    if ! "$TRAIN_GPU" --model $p --train-data "$OUT/train.bin" --batch $BATCH --seq $SEQ --steps $STEPS --warmup 1 \
        --recompute $RECOMPUTE --eval-every 0 --ckpt-every -1 "${extra[@]}" --out "$OUT/$p.$opt" > "$OUT/$p.$opt.log"; then
      echo "| $p | $opt | train_llama failed (its stderr is above; $OUT/$p.$opt.log) | | | | | | |"
      continue
    fi
    # mean over the steps after the first three (plans, allocations and the refresh at step 0 settle)
    read -r tok mfu mem fwd bwd optim <<< "$(grep '"loss"' "$OUT/$p.$opt/log.jsonl" | tail -n +4 |
      sed 's/.*"tok_s": \([0-9.]*\), "mfu": \([0-9.]*\), "mem_gib": \([0-9.]*\).*"forward_ms": \([0-9.]*\), "backward_ms": \([0-9.]*\), "optimizer_ms": \([0-9.]*\).*/\1 \2 \3 \4 \5 \6/' |
      awk '{t += $1; m += $2; if ($3 > g) g = $3; f += $4; b += $5; o += $6; n++}
           END {printf "%.0f %.1f %.2f %.1f %.1f %.1f", t / n, 100 * m / n, g, f / n, b / n, o / n}')"
    [ $opt = adamw ] && adamw_tok=$tok
    ratio=$(awk -v a="$tok" -v b="$adamw_tok" 'BEGIN {if (b + 0 > 0) printf "%.2fx", a / b; else print "n/a"}')
    echo "| $p | $opt | $tok | $mfu% | $mem | $fwd | $bwd | $optim | $ratio |"
  done
done
[ "$PROFILE_STEPS" -gt 1 ] || exit 0
for p in $PRESETS; do
  for opt in adamw grass; do
    extra=(--optimizer $opt); [ $opt = grass ] && extra+=("${rank_args[@]}")
    "$TRAIN_GPU" --model $p --train-data "$OUT/train.bin" --batch $BATCH --seq $SEQ --steps $PROFILE_STEPS --warmup 1 \
      --recompute $RECOMPUTE --eval-every 0 --ckpt-every -1 --profile "${extra[@]}" > "$OUT/$p.$opt.profile.log" ||
      echo "$p $opt --profile: train_llama failed ($OUT/$p.$opt.profile.log)"
  done
  echo
  echo "where a $p step's GPU time goes (--profile, ms per step, mean over steps 2 to $PROFILE_STEPS; a refresh only at step 1)"
  echo "| kind of work | AdamW ms | AdamW % | Grass ms | Grass % |"
  echo "|---|---|---|---|---|"
  # rows "profile: NAME  MS ms  SHARE%": AdamW's kinds in order, Grass's own before the total
  awk 'FNR == 1 {f++} /^profile: / && / ms / {name = $0; sub(/^profile: /, "", name); sub(/ +[0-9.]+ ms +[0-9.]+%$/, "", name)
         ms[f, name] = $(NF - 2); pc[f, name] = $NF
         if (!(name in seen)) {seen[name] = 1; if (name != "total") order[++n] = name}}
       END {order[++n] = "total"
            for (i = 1; i <= n; i++) {k = order[i]
              printf "| %s | %s | %s | %s | %s |\n", k, ((1, k) in ms) ? ms[1, k] : "-", ((1, k) in pc) ? pc[1, k] : "-",
                     ((2, k) in ms) ? ms[2, k] : "-", ((2, k) in pc) ? pc[2, k] : "-"}}' \
    "$OUT/$p.adamw.profile.log" "$OUT/$p.grass.profile.log"
done
