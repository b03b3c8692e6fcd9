# Data parallelism on CPU ranks (docs/design.md §7): N ranks with micro-batch B reproduce 1 rank with micro-batch N*B
# (losses and final weights within fp32 rounding) for AdamW and every Grass selector across refreshes, with
# gradient accumulation, all-reducing and with the optimizer state sharded (2 to 4 ranks); the bytes of the
# collectives by category in the log equal the formulas; a rank that fails or dies ends the run instead of hanging; a checkpoint resumes on another
# number of ranks (the same tokens per step: the data order is the step's, not the ranks') within fp32 rounding of
# the uninterrupted run, and with another --total-batch is refused.
source test/lib.sh
command -v mpirun > /dev/null || skip "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
# not grep -q: it stops reading at the first match, and under pipefail the writer's SIGPIPE fails the test
ldd ./train_llama_cpu | grep libmpi > /dev/null || skip "train_llama_cpu was built without MPI (no mpicc when it was built)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun -np)
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 12000 --vocab 512
"$PYTHON" test/shard_tool.py "$TMP/val.bin" --tokens 4000 --vocab 512 --seed 3
base=(--model test --train-data "$TMP/train.bin" --val-data "$TMP/val.bin" --seq 16 --steps 6 --warmup 2 --lr 3e-3
      --weight-decay 0.1 --eval-every 3 --eval-batches 2 --total-batch 192 --eps 1e-6)
# Bounds. Losses and gradient norms (6 steps, 3 evaluations; 9 significant digits in log.jsonl): fp32 rounding
# of a mean over 6 sequences taken as 1 x 6, 2 x 3 or 3 x 2 differs by ~1e-7 relative (measured <= 1e-7); bound
# 1e-5. Weights (||A - B|| / ||A|| per tensor): Adam divides by sqrt(v) + eps, so a gradient entry that is
# mostly rounding noise can move its weight by up to lr a step between the runs; eps 1e-6 (instead of 1e-8)
# damps entries below 1e-6, which are what the data-parallel split perturbs, without changing what is tested.
# Bound 1e-4, while a missing or doubled reduction, or a rank reading the wrong data, moves the weights by
# more than 1e-2 and the losses by more than 1e-3.
compare() {  # NAME then extra flags
  local name=$1; shift
  OMP_NUM_THREADS=1 ./train_llama_cpu "${base[@]}" "$@" --batch 6 --out "$TMP/$name.1"
  OMP_NUM_THREADS=1 ./train_llama_cpu "${base[@]}" "$@" --batch 4 --out "$TMP/$name.1b4"
  # 2 and 3 ranks all-reducing; 2, 3 and 4 ranks with the optimizer state sharded (--shard-optimizer), the gradients in
  # buckets of 10 KB (several a step); micro-batches: 2, 2, 3 a step. A Grass refresh selects from the step's first
  # micro-batch on every rank: 6 sequences on 2 and 3 ranks, as 1 rank of 6; 4 on 4 ranks, as 1 rank of 4.
  for run in 2 3 2s 3s 4s; do
    local n=${run%s} shard=() one=1
    [ $n = 4 ] && one=1b4
    [ "$run" = "$n" ] || shard=(--shard-optimizer --bucket-mb 0.01)
    OMP_NUM_THREADS=1 "${MPIRUN[@]}" $n ./train_llama_cpu "${base[@]}" "$@" "${shard[@]}" --batch $((6 / n)) \
      --out "$TMP/$name.$run" > "$TMP/$name.$run.stdout"
    grep -q "ranks: $n" "$TMP/$name.$run.stdout" || die "$name: the $n-rank run did not see $n ranks"
    fields() { grep -o '"\(val_loss\|loss\|norm\)": [0-9.e+-]*' "$1"; }
    paste <(fields "$TMP/$name.$one/log.jsonl") <(fields "$TMP/$name.$run/log.jsonl") |
      awk -v n=$run -v name=$name '$1 != $3 {exit 1} {a = $2 + 0; b = $4 + 0; d = (a > b ? a - b : b - a) / a; if (d > m) m = d; c++}
        END {printf "%s: %s ranks: %d losses and norms, largest relative difference %.2e (bound 1e-5)\n", name, n, c, m; exit !(c == 15 && m <= 1e-5)}' ||
      die "$name: $run ranks differ from 1 rank"
    test/bin/test_reference diff "$TMP/$name.$one/ckpt_00000006/model.safetensors" "$TMP/$name.$run/ckpt_00000006/model.safetensors" 1e-4
    # the bytes of the step's collectives by category: step 1 refreshes (Grass), step 2 does not
    local grass=() sharded=()
    [ "$name" = adamw ] || grass=(--grass-rank 12)
    [ "$run" = "$n" ] || sharded=(--sharded)
    for step in 1 2; do
      local want got refresh=()
      [ $step = 1 ] && refresh=(--refresh)
      want=$("$PYTHON" test/comm_bytes.py "$TMP/$name.$run/ckpt_00000006/config.json" --ranks $n "${sharded[@]}" "${grass[@]}" \
        "${refresh[@]}" --grad-bytes 4 --weight-bytes 4)
      got=$(for c in grads weights updates refresh; do
        local b; b=$("$PYTHON" test/log_compare.py get "$TMP/$name.$run/log.jsonl" comm_${c}_bytes --step $step)
        echo -n "$c ${b%.0} "; done)
      [ "$got" = "$want " ] || die "$name: $run ranks: step $step's collectives moved $got, the formulas say $want"
    done
  done
  echo "ok: $name: the bytes of the collectives by category equal the formulas (last: $want)"
}
compare adamw
for sel in topr multinorm multinorm-nr uniform uniform-nr; do
  compare "grass-$sel" --optimizer grass --grass-select $sel --grass-rank 12 --grass-interval 3
done

# resuming with the same number of ranks is exact: 2 ranks, 3 steps + resume + 3 = 6 straight, bit for bit
OMP_NUM_THREADS=1 "${MPIRUN[@]}" 2 ./train_llama_cpu "${base[@]}" --batch 3 --optimizer grass --grass-rank 12 \
  --grass-interval 2 --ckpt-every 3 --out "$TMP/rs_straight" > /dev/null
OMP_NUM_THREADS=1 "${MPIRUN[@]}" 2 ./train_llama_cpu "${base[@]}" --batch 3 --optimizer grass --grass-rank 12 \
  --grass-interval 2 --resume "$TMP/rs_straight/ckpt_00000003" --out "$TMP/rs_resumed" > /dev/null
cmp "$TMP/rs_straight/ckpt_00000006/model.safetensors" "$TMP/rs_resumed/ckpt_00000006/model.safetensors" ||
  die "2-rank resume: the weights differ"
cmp "$TMP/rs_straight/ckpt_00000006/state.bin" "$TMP/rs_resumed/ckpt_00000006/state.bin" || die "2-rank resume: the state differs"
echo "ok: 2 ranks, 3 + resume + 3 steps (Grass, refreshes at 4) is bit-identical to 6 straight"

# resuming on another number of ranks (bounds as above), each against its uninterrupted run: steps 4 to 6 and the final
# weights. The 2-rank Grass run's step-3 checkpoint on 3 ranks of 2 sequences and on 1 rank of 6 (2 micro-batches
# each, so a refresh still selects from the same 6 sequences, the step's first micro-batch on every rank), and a 4-rank
# AdamW run's (3 sequences, 1 micro-batch) on 2 ranks of 3 (2 micro-batches)
grass=(--optimizer grass --grass-rank 12 --grass-interval 2)
OMP_NUM_THREADS=1 "${MPIRUN[@]}" 4 ./train_llama_cpu "${base[@]}" --batch 3 --ckpt-every 3 --out "$TMP/rs4_straight" > /dev/null
resumed() {  # NAME STRAIGHT RANKS BATCH [FLAGS...]
  local name=$1 straight=$2 n=$3 batch=$4
  shift 4
  OMP_NUM_THREADS=1 "${MPIRUN[@]}" $n ./train_llama_cpu "${base[@]}" --batch $batch "$@" \
    --resume "$TMP/$straight/ckpt_00000003" --out "$TMP/$name" > "$TMP/$name.stdout"
  "$PYTHON" test/log_compare.py compare "$TMP/$straight/log.jsonl" "$TMP/$name/log.jsonl" --steps 6 --from-step 4 --name $name \
    --bound loss=1e-5 --bound norm=1e-5 --bound val_loss=1e-5 || die "$name: the resumed run differs from $straight"
  test/bin/test_reference diff "$TMP/$straight/ckpt_00000006/model.safetensors" "$TMP/$name/ckpt_00000006/model.safetensors" 1e-4
}
resumed rs_2to3 rs_straight 3 2 "${grass[@]}"
resumed rs_2to1 rs_straight 1 6 "${grass[@]}"
resumed rs_4to2 rs4_straight 2 3
echo "ok: checkpoints of 2 and 4 ranks continue on 3, 1 and 2 ranks as the uninterrupted runs"
# the same with the optimizer state sharded: the moments are gathered into the one state.bin and each rank takes its
# part on resuming, so a sharded checkpoint continues sharded on another number of ranks, and unsharded
shard=(--shard-optimizer --bucket-mb 0.01)
OMP_NUM_THREADS=1 "${MPIRUN[@]}" 2 ./train_llama_cpu "${base[@]}" --batch 3 "${grass[@]}" "${shard[@]}" --ckpt-every 3 \
  --out "$TMP/rss_straight" > /dev/null
OMP_NUM_THREADS=1 "${MPIRUN[@]}" 4 ./train_llama_cpu "${base[@]}" --batch 3 "${shard[@]}" --ckpt-every 3 --out "$TMP/rss4_straight" > /dev/null
# on 2 ranks a sum of two is the same in any order: sharded or not, the runs are the same bit for bit, their state too
for f in model.safetensors state.bin; do
  cmp "$TMP/rs_straight/ckpt_00000006/$f" "$TMP/rss_straight/ckpt_00000006/$f" || die "2 ranks: $f differs sharded and not"
done
resumed rss_2to3 rss_straight 3 2 "${grass[@]}" "${shard[@]}"
resumed rss_2to1 rss_straight 1 6 "${grass[@]}"
resumed rss_4to2 rss4_straight 2 3 "${shard[@]}"
resumed rs_4to2s rs4_straight 2 3 "${shard[@]}"
echo "ok: sharded checkpoints of 2 and 4 ranks continue on 3 and 2 sharded ranks and on 1 rank, an unsharded one sharded"

# another number of tokens per step is refused (every rank prints the error; mpirun reports the abort)
rc=0; OMP_NUM_THREADS=1 timeout 60 "${MPIRUN[@]}" 3 ./train_llama_cpu "${base[@]}" --batch 2 --steps 8 --total-batch 384 \
  --resume "$TMP/adamw.2/ckpt_00000006" > "$TMP/ranks.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || die "resume with another --total-batch: exit $rc"
grep -q "^error: .*state.bin was written with --seq 16, --seed 1337 and 192 tokens per step (--batch 3 x 2 ranks x 2 micro-batches); this run has --seq 16, --seed 1337 and 384 tokens per step" "$TMP/ranks.out" ||
  die "no clear error for another --total-batch"
echo "ok: resuming with another --total-batch is refused: $(grep -m1 '^error' "$TMP/ranks.out")"

# a rank that fails (a bad token only rank 1 reads: offsets 5..9 of its part of every window) ends every rank
"$PYTHON" test/shard_tool.py "$TMP/bad.bin" --tokens 12000 --vocab 512 --bad-token 999 \
  --bad-at "$(seq 0 64 11900 | awk '{printf "%s%d", (NR > 1 ? "," : ""), $1 + 32 + 5}')"
rc=0; OMP_NUM_THREADS=1 timeout 60 "${MPIRUN[@]}" 2 ./train_llama_cpu "${base[@]}" --batch 2 --total-batch 0 --train-data "$TMP/bad.bin" \
  > "$TMP/fail.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || die "a failing rank: exit $rc (124: the others hung)"
grep -q "error: .*bad.bin: token id 999" "$TMP/fail.out" || die "the failing rank's error is not shown"
echo "ok: a failing rank ends the run (exit $rc) with its error"

# a rank killed with SIGKILL ends the run
OMP_NUM_THREADS=1 timeout 120 "${MPIRUN[@]}" 2 ./train_llama_cpu "${base[@]}" --batch 3 --steps 100000 --eval-every 0 \
  --out "$TMP/killme" > "$TMP/kill.out" 2>&1 &
mpipid=$!
for i in $(seq 50); do [ -s "$TMP/killme/log.jsonl" ] && break; sleep 0.2; done
victim=$(pgrep -f "train_llama_cpu.*killme" | tail -1)
[ -n "$victim" ] || die "no rank to kill"
kill -9 "$victim"
rc=0; wait $mpipid || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || die "after a rank was killed: exit $rc (124: the others hung)"
echo "ok: a killed rank ends the run (exit $rc)"
