#!/usr/bin/env bash
# reduce_dtype.sh: how much summing the ranks' gradients in bf16 costs against fp32 (--reduce-dtype), the measurement
# that chose the default. The bf16 GPU trainer trains the same model on the same data with RANKS ranks of micro-batch 1
# under both settings, with and without --shard-optimizer, and once on 1 rank with micro-batch RANKS (the same
# sequences a step, summed within the batch instead of across ranks); it prints each run's largest loss difference from
# the 1-rank run over the steps and the largest difference of its final weights (||A - B|| / ||A||, worst tensor).
#   dev/bench/reduce_dtype.sh            (the CPU emulator's build, dev/emu/bin/train_llama: `make emu`; NCCL stand-in)
#   BIN=./train_llama dev/bench/reduce_dtype.sh    (on a machine with RANKS GPUs)
# Settings by environment variable (defaults in brackets): RANKS [8] STEPS [20] MODEL [test] SEQ [32]
# OPTIMIZER [adamw] OUT [out/reduce_dtype] BIN [dev/emu/bin/train_llama]
set -euo pipefail
cd "$(dirname "$0")/../.."
RANKS=${RANKS:-8} STEPS=${STEPS:-20} MODEL=${MODEL:-test} SEQ=${SEQ:-32} OPTIMIZER=${OPTIMIZER:-adamw}
OUT=${OUT:-out/reduce_dtype} BIN=${BIN:-dev/emu/bin/train_llama}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo /usr/bin/python3)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$OUT"
"$PYTHON" test/shard_tool.py "$OUT/train.bin" --tokens 200000 --vocab 512 > /dev/null
common=(--model "$MODEL" --train-data "$OUT/train.bin" --seq "$SEQ" --steps "$STEPS" --warmup 2 --lr 3e-3 --eval-every 0
        --optimizer "$OPTIMIZER" --total-batch $((RANKS * SEQ)))
final=$(printf 'ckpt_%08d' "$STEPS")
"$BIN" "${common[@]}" --batch "$RANKS" --out "$OUT/one" > "$OUT/one.log"
printf '\n%s, %s, %s ranks of 1 x %s tokens against 1 rank of %s x %s, %s steps (%s)\n\n' "$MODEL" "$OPTIMIZER" "$RANKS" "$SEQ" \
  "$RANKS" "$SEQ" "$STEPS" "$BIN"
printf '| gradients summed in | optimizer state | largest loss difference | final weights, worst tensor |\n|---|---|---|---|\n'
for dtype in fp32 bf16; do
  for shard in 0 1; do
    run=$dtype.$shard flags=(--reduce-dtype "$dtype")
    [ $shard = 1 ] && flags+=(--shard-optimizer)
    mpirun -np "$RANKS" "$BIN" "${common[@]}" "${flags[@]}" --batch 1 --out "$OUT/$run" > "$OUT/$run.log"
    loss=$("$PYTHON" test/log_compare.py compare "$OUT/one/log.jsonl" "$OUT/$run/log.jsonl" --steps "$STEPS" --bound loss=1 |
      sed -n 's/.*loss \([0-9.e+-]*\) at step.*/\1/p')
    weights=$(test/bin/test_reference diff "$OUT/one/$final/model.safetensors" "$OUT/$run/$final/model.safetensors" 1 |
      sed -n 's/.*at most \([0-9.e+-]*\) relative.*/\1/p')
    printf '| %s | %s | %s | %s |\n' "$dtype" "$([ $shard = 1 ] && echo sharded || echo replicated)" "$loss" "$weights"
  done
done
