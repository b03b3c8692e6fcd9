#!/usr/bin/env bash
# gpu_bench.sh: train_llama's throughput, MFU and memory for the presets 60m ... 1b at sequence 1024 (AdamW,
# bf16, random-token shards), with the PyTorch baseline (HF LlamaForCausalLM + torch AdamW, bf16, same batch)
# beside it; prints a table for dev/bench/RESULTS.md. Run on a GPU from the repository root after `make`.
#   dev/bench/gpu_bench.sh            settings: PRESETS ["60m 130m 350m 1b"] BATCH [8] SEQ [1024] STEPS [20]
#                                               RECOMPUTE [0] TRAIN_GPU [./train_llama] TORCH_DEVICE [cuda]
# RECOMPUTE 0 (no activation recomputation, the trainer's default being 1) because the baseline does none
# either (HF's gradient checkpointing is off by default) and every preset up to 1b fits without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PRESETS=${PRESETS:-60m 130m 350m 1b} BATCH=${BATCH:-8} SEQ=${SEQ:-1024} STEPS=${STEPS:-20} PYTHON=${PYTHON:-python3}
RECOMPUTE=${RECOMPUTE:-0}
TRAIN_GPU=${TRAIN_GPU:-./train_llama}  # dev/emu/bin/train_llama checks the script on the CPU emulator (PRESETS=test)
OUT=${OUT:-out/gpu_bench}
mkdir -p "$OUT"
"$PYTHON" test/shard_tool.py "$OUT/train.bin" --tokens $((BATCH * SEQ * (STEPS + 2) + 1)) --vocab 32000
echo "| preset | batch x seq | train_llama tok/s | MFU | memory GiB | PyTorch tok/s | PyTorch peak GiB | speed-up |"
echo "|---|---|---|---|---|---|---|---|"
for p in $PRESETS; do
  if ! "$TRAIN_GPU" --model $p --train-data "$OUT/train.bin" --batch $BATCH --seq $SEQ --steps $STEPS --warmup 1 \
      --recompute $RECOMPUTE --eval-every 0 --ckpt-every -1 --out "$OUT/$p" > "$OUT/$p.log"; then
    echo "| $p | $BATCH x $SEQ | train_llama failed (its stderr is above; $OUT/$p.log) | | | | | |"
    continue
  fi
  # mean over the steps after the first three (cuBLASLt plans and allocations settle)
  read -r tok mfu mem <<< "$(grep '"loss"' "$OUT/$p/log.jsonl" | tail -n +4 | sed 's/.*"tok_s": \([0-9.]*\), "mfu": \([0-9.]*\), "mem_gib": \([0-9.]*\).*/\1 \2 \3/' |
    awk '{t += $1; m += $2; if ($3 > g) g = $3; n++} END {printf "%.0f %.1f %.2f", t / n, 100 * m / n, g}')"
  pt=$("$PYTHON" dev/bench/pytorch_baseline.py --preset $p --batch $BATCH --seq $SEQ --steps $STEPS --device ${TORCH_DEVICE:-cuda} \
       2> "$OUT/$p.pytorch.err" || echo "pytorch $p tok/s n/a peak_gib n/a")
  ptok=$(echo "$pt" | awk '{print $4}'); pmem=$(echo "$pt" | awk '{print $6}')
  speed=$(awk -v a="$tok" -v b="$ptok" 'BEGIN {if (b + 0 > 0) printf "%.2fx", a / b; else print "n/a"}')
  echo "| $p | $BATCH x $SEQ | $tok | $mfu% | $mem | $ptok | $pmem | $speed |"
done
