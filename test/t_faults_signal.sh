# Signals never lose work (train_guard.h): SIGTERM (or SIGINT, or SIGUSR1, which Slurm sends ahead of a time limit)
# lets the step finish, saves a checkpoint, says so and exits with status 75; rerunning the same command with
# --resume auto ends bit-identical to a run never stopped. A second signal ends the run at once (128 + signal).
# Under MPI a signal that reaches one rank only stops every rank at the same step. The GPU trainer (emulated, where
# built; test/gpu_faults.sh: on a GPU) goes through the same path.
source test/lib.sh
T=./train_llama_cpu
for i in 0 1; do "$PYTHON" test/shard_tool.py "$TMP/train_$i.bin" --tokens 20000 --vocab 512 --seed $i; done
args=(--model test --train-data "$TMP/train_*.bin" --batch 4 --seq 64 --steps 80 --warmup 3 --lr 3e-3 --weight-decay 0.1
      --eval-every 0 --ckpt-every 0)

# wait_steps LOG N: until LOG holds N step lines (30 s at most)
wait_steps() {
  local n
  for _ in $(seq 300); do
    n=$(grep -c '"loss"' "$1" 2> /dev/null || true)
    [ "${n:-0}" -ge "$2" ] && return 0
    sleep 0.1
  done
  die "$1 never reached $2 steps"
}
# interrupt SIGNAL OUT CMD...: runs CMD in the background, sends SIGNAL to it after 3 steps, expects exit 75 and a
# checkpoint of the step it names
interrupt() {
  local sig=$1 out=$2 rc=0; shift 2
  "$@" > "$TMP/int.out" 2> "$TMP/int.err" &
  local pid=$!
  wait_steps "$out/log.jsonl" 3
  kill -"$sig" $pid
  wait $pid || rc=$?
  [ $rc -eq 75 ] || { cat "$TMP/int.err"; die "$sig: exit $rc, expected 75"; }
  local step
  step=$(sed -n 's/^stopped by a signal after step \([0-9]*\): checkpoint .*; rerun the same command with --resume auto to continue$/\1/p' "$TMP/int.out")
  [ -n "$step" ] || { cat "$TMP/int.out"; die "$sig: no 'stopped by a signal' line"; }
  [ -d "$out/ckpt_$(printf %08d "$step")" ] || die "$sig: no checkpoint of step $step"
  [ "$step" -lt 80 ] || die "$sig: the run had already finished"
  echo "ok: $sig after step $step: exit 75, $(grep -c . "$TMP/int.err") line(s) on stderr: $(head -c 100 "$TMP/int.err")"
}

$T "${args[@]}" --out "$TMP/straight" > /dev/null
for sig in TERM INT USR1; do
  interrupt $sig "$TMP/$sig" $T "${args[@]}" --resume auto --out "$TMP/$sig"
  $T "${args[@]}" --resume auto --out "$TMP/$sig" > /dev/null
  cmp "$TMP/straight/ckpt_00000080/model.safetensors" "$TMP/$sig/ckpt_00000080/model.safetensors" || die "$sig: weights differ"
  cmp "$TMP/straight/ckpt_00000080/state.bin" "$TMP/$sig/ckpt_00000080/state.bin" || die "$sig: state differs"
  echo "ok: SIG$sig, then --resume auto: bit-identical to the run never stopped"
done

# a second signal ends the run at once: the first one's step is never finished or saved. Steps of a large batch
# (a second or so here), and the second signal only once the first was taken (its line on stderr): two signals
# sent together may arrive as one.
$T "${args[@]}" --batch 128 --out "$TMP/twice" > /dev/null 2> "$TMP/twice.err" &
pid=$!
wait_steps "$TMP/twice/log.jsonl" 1
kill -TERM $pid
for _ in $(seq 500); do grep -q "signal received" "$TMP/twice.err" && break; sleep 0.01; done
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 143 ] || die "two signals: exit $rc, expected 143 (128 + SIGTERM)"
[ -z "$(ls "$TMP/twice" | grep ckpt_)" ] || die "two signals: a checkpoint was written: $(ls "$TMP/twice")"
echo "ok: a second signal exits at once (143), nothing saved"

echo "== MPI: a signal to one rank stops both at the same step"
if command -v mpirun > /dev/null && ldd $T | grep libmpi > /dev/null; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
  margs=("${args[@]}" --batch 2)
  OMP_NUM_THREADS=1 mpirun -np 2 $T "${margs[@]}" --out "$TMP/mpi_straight" > /dev/null
  OMP_NUM_THREADS=1 mpirun -np 2 $T "${margs[@]}" --resume auto --out "$TMP/mpi" > "$TMP/mpi.out" 2>&1 &
  mpipid=$!
  wait_steps "$TMP/mpi/log.jsonl" 3
  victim=$(pgrep -f "train_llama_cpu.*$TMP/mpi\$" | tail -1)
  [ -n "$victim" ] || die "no rank to signal"
  kill -USR1 "$victim"
  rc=0; wait $mpipid || rc=$?
  [ $rc -eq 75 ] || { tail "$TMP/mpi.out"; die "MPI: exit $rc, expected 75"; }
  grep -q "^stopped by a signal after step [0-9]*: checkpoint" "$TMP/mpi.out" || die "MPI: no 'stopped' line"
  OMP_NUM_THREADS=1 mpirun -np 2 $T "${margs[@]}" --resume auto --out "$TMP/mpi" > /dev/null
  cmp "$TMP/mpi_straight/ckpt_00000080/model.safetensors" "$TMP/mpi/ckpt_00000080/model.safetensors" || die "MPI: weights differ"
  echo "ok: $(grep '^stopped' "$TMP/mpi.out"); resumed on 2 ranks, bit-identical"
else
  echo "not checked: no mpirun or train_llama_cpu built without MPI"
fi

echo "== the GPU trainer (fp32: emulated where built, or FAULTS_GPU_FP32)"
GPU=${FAULTS_GPU_FP32:-dev/emu/bin/train_llama_fp32}
if emu_part "$GPU"; then
  gargs=("${args[@]}" --steps 12 --batch 2 --seq 32)
  $GPU "${gargs[@]}" --out "$TMP/gpu_straight" > /dev/null
  interrupt TERM "$TMP/gpu" $GPU "${gargs[@]}" --resume auto --out "$TMP/gpu"
  $GPU "${gargs[@]}" --resume auto --out "$TMP/gpu" > /dev/null
  cmp "$TMP/gpu_straight/ckpt_00000012/model.safetensors" "$TMP/gpu/ckpt_00000012/model.safetensors" || die "GPU: weights differ"
  cmp "$TMP/gpu_straight/ckpt_00000012/state.bin" "$TMP/gpu/ckpt_00000012/state.bin" || die "GPU: state differs"
  echo "ok: $GPU stopped by SIGTERM and resumed is bit-identical"
fi
echo "== scripts/train.sbatch: requeues the job when the trainer stops with 75 (srun and scontrol stand-ins)"
mkdir -p "$TMP/bin"
printf '#!/bin/sh\necho "$@" > %s/srun.args\nexit ${SRUN_EXIT}\n' "$TMP" > "$TMP/bin/srun"
printf '#!/bin/sh\necho "$@" >> %s/scontrol.args\n' "$TMP" > "$TMP/bin/scontrol"
chmod +x "$TMP/bin/srun" "$TMP/bin/scontrol"
for code in 75 1 0; do
  rm -f "$TMP/scontrol.args"
  rc=0; PATH="$TMP/bin:$PATH" SRUN_EXIT=$code SLURM_JOB_ID=42 DATA=d OUT=o bash scripts/train.sbatch --seed 7 > /dev/null || rc=$?
  [ $rc -eq $code ] || die "train.sbatch: exit $rc where srun exited $code"
  grep -q -- "--resume auto --out o --seed 7" "$TMP/srun.args" || die "train.sbatch: srun got $(cat "$TMP/srun.args")"
  if [ $code -eq 75 ]; then grep -qx "requeue 42" "$TMP/scontrol.args" || die "train.sbatch did not requeue after 75"
  else [ ! -e "$TMP/scontrol.args" ] || die "train.sbatch requeued after exit $code"; fi
done
grep -q "^#SBATCH --signal=USR1@" scripts/train.sbatch || die "train.sbatch asks for no signal before the time limit"
echo "ok: train.sbatch requeues after 75 only"
echo "signals handled"
