#!/usr/bin/env bash
# comm_model.sh: bytes all-reduced per optimizer step for AdamW and Grass, per preset, from the trainers' own
# memory plan (--dry-run), and the predicted 8-GPU step time: ring all-reduce time = 2 (N-1)/N x bytes / bus
# bandwidth, over NVLink (NVLINK_GBS, default 370 GB/s bus bandwidth) and PCIe (PCIE_GBS, default 25 GB/s),
# added to a measured single-GPU step time (no overlap; the trainer overlaps part of it with the backward).
#   dev/bench/comm_model.sh [STEP_MS_FILE]
# STEP_MS_FILE: lines "preset optimizer milliseconds" measured on one GPU with the batch of the run (see
# dev/bench/RESULTS.md); without it only the communication is printed. Grass uses each preset's rank;
# refresh steps (every --grass-interval) also average the full projection gradients, shown separately.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-8} NVLINK_GBS=${NVLINK_GBS:-370} PCIE_GBS=${PCIE_GBS:-25} BIN=${BIN:-./train_llama_cpu}
STEPS_FILE=${1:-}
printf '| preset | optimizer | all-reduce MB/step | projections MB | proj. ratio vs AdamW | refresh step MB | NVLink ms | PCIe ms | 1-GPU step ms | 8-GPU NVLink ms | 8-GPU PCIe ms |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for preset in 60m 130m 350m 1b 7b 13b; do
  adamw_proj=
  for opt in adamw grass; do
    line=$("$BIN" --model $preset --dry-run --seq 128 --batch 1 --optimizer $opt | grep '^all-reduce per step')
    read -r step proj refresh <<< "$(echo "$line" | grep -o '[0-9]\+ bytes' | awk '{printf "%s ", $1}')"
    [ $opt = adamw ] && adamw_proj=$proj
    ms=""
    [ -n "$STEPS_FILE" ] && ms=$(awk -v p=$preset -v o=$opt '$1 == p && $2 == o {print $3}' "$STEPS_FILE")
    awk -v p=$preset -v o=$opt -v s=$step -v pr=$proj -v ap=$adamw_proj -v r=$refresh -v n=$N -v nv=$NVLINK_GBS \
        -v pc=$PCIE_GBS -v ms="$ms" 'BEGIN {
      f = 2 * (n - 1) / n; tnv = f * s / (nv * 1e9) * 1e3; tpc = f * s / (pc * 1e9) * 1e3
      printf "| %s | %s | %.1f | %.1f | %.3f | %.1f | %.2f | %.1f | %s | %s | %s |\n", p, o, s / 1e6, pr / 1e6, pr / ap,
        (o == "grass" ? r : s) / 1e6, tnv, tpc, (ms == "" ? "n/a" : ms), (ms == "" ? "n/a" : sprintf("%.1f", ms + tnv)),
        (ms == "" ? "n/a" : sprintf("%.1f", ms + tpc)) }'
  done
done
