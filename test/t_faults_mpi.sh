# Ranks that do not match, or a rank that stops, under MPI (2 CPU ranks from one mpirun, each given its own
# command line in Open MPI's form `mpirun -np 1 A : -np 1 B`): ranks started with different options, models
# or data are refused at start with one error line naming the first difference, rank 0's value and the other
# rank's (instead of hanging in an all-reduce or crashing); a rank stopped with SIGSTOP ends the job within
# --comm-timeout with a line naming the collective and the step (instead of leaving the others waiting for
# ever). Then the stopped rank with the emulated GPU trainer (dev/emu/bin/train_llama, --comm mpi), when built.
source test/lib.sh
command -v mpirun > /dev/null || skip "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
# not grep -q: it stops reading at the first match, and under pipefail the writer's SIGPIPE fails the test
ldd ./train_llama_cpu | grep libmpi > /dev/null || skip "train_llama_cpu was built without MPI (no mpicc when it was built)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
CPU=$PWD/train_llama_cpu
mkdir -p "$TMP/a" "$TMP/b"
"$PYTHON" test/shard_tool.py "$TMP/a/train.bin" --tokens 12000 --vocab 512
"$PYTHON" test/shard_tool.py "$TMP/b/train.bin" --tokens 6000 --vocab 512
config() {  # DIR DIM: a config.json of the test preset's shape with width DIM
  printf '{"hidden_size": %d, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "intermediate_size": 172, "vocab_size": 512, "max_position_embeddings": 256}\n' "$2" > "$1/config.json"
}
config "$TMP/a" 64
config "$TMP/b" 128
base=(--seq 16 --batch 2 --steps 4 --warmup 1 --eval-every 0 --comm-timeout 5)

# refused WANT MPIRUN-ARGS...: the job ends within 60 s with a non-zero exit and exactly one error line, which
# contains WANT
refused() {
  local want=$1; shift
  local rc=0
  timeout 60 mpirun "$@" > "$TMP/out" 2>&1 || rc=$?
  [ $rc -ne 0 ] || die "expected a refusal, got exit 0: mpirun $*"
  [ $rc -ne 124 ] || die "hung (killed after 60 s): mpirun $*"
  [ "$(grep -c '^error: ' "$TMP/out")" -eq 1 ] || { cat "$TMP/out"; die "expected one error line: mpirun $*"; }
  grep '^error: ' "$TMP/out" | grep -qF -- "$want" || die "the error line lacks '$want': $(grep '^error: ' "$TMP/out")"
  echo "ok (exit $rc): $(grep '^error: ' "$TMP/out")"
}
data=(--model test --train-data "$TMP/a/train.bin")
refused "--steps: rank 0 has 4, rank 1 has 5" \
  -np 1 "$CPU" "${data[@]}" "${base[@]}" : -np 1 "$CPU" "${data[@]}" "${base[@]}" --steps 5
refused "--model: rank 0 has test, rank 1 has tiny" \
  -np 1 "$CPU" "${data[@]}" "${base[@]}" : -np 1 "$CPU" "${data[@]}" "${base[@]}" --model tiny
refused "--train-data: rank 0 has $TMP/a/train.bin, rank 1 has $TMP/b/train.bin" \
  -np 1 "$CPU" "${data[@]}" "${base[@]}" : -np 1 "$CPU" "${data[@]}" "${base[@]}" --train-data "$TMP/b/train.bin"
# the same options, read in other directories (as on nodes whose files differ): the model config, the data
refused "the models differ between the ranks: hidden_size: rank 0 has 64, rank 1 has 128" \
  -np 1 -wdir "$PWD/$TMP/a" "$CPU" --model config.json --train-data "$PWD/$TMP/a/train.bin" "${base[@]}" : \
  -np 1 -wdir "$PWD/$TMP/b" "$CPU" --model config.json --train-data "$PWD/$TMP/a/train.bin" "${base[@]}"
refused "--train-data train.bin, file 1: rank 0 has train.bin (12000 tokens of 2 bytes, 25024 bytes), rank 1 has train.bin (6000 tokens" \
  -np 1 -wdir "$PWD/$TMP/a" "$CPU" --model test --train-data train.bin "${base[@]}" : \
  -np 1 -wdir "$PWD/$TMP/b" "$CPU" --model test --train-data train.bin "${base[@]}"

# stopped NAME BINARY MPIRUN-ARGS...: starts a run of BINARY under mpirun that writes $TMP/NAME/log.jsonl, stops
# rank 1 with SIGSTOP once a step is logged, and expects the job to end within 60 s (--comm-timeout 5), with a
# non-zero exit and rank 0's line naming the collective and the step
stopped() {
  local name=$1 bin=$2; shift 2
  mpirun "$@" > "$TMP/$name.out" 2>&1 &
  local job=$! victim="" pid i
  for i in $(seq 600); do [ -s "$TMP/$name/log.jsonl" ] && break; sleep 0.1; done
  [ -s "$TMP/$name/log.jsonl" ] || { kill $job; die "$name: no step was logged"; }
  for pid in $(pgrep -f -- "$TMP/$name"); do  # rank 1 of this run: its binary, and OMPI_COMM_WORLD_RANK=1
    [ "$(cat /proc/$pid/comm 2> /dev/null)" = "$(basename "$bin" | cut -c1-15)" ] &&
      tr '\0' '\n' < /proc/$pid/environ 2> /dev/null | grep -x OMPI_COMM_WORLD_RANK=1 > /dev/null && victim=$pid
  done
  [ -n "$victim" ] || { kill $job; die "$name: rank 1 not found"; }
  kill -STOP "$victim"
  local t0=$EPOCHREALTIME rc=0
  (sleep 60; kill -CONT "$victim"; kill -9 "$victim" $job) 2> /dev/null &  # a hung job fails instead of hanging
  local guard=$!
  wait $job || rc=$?
  kill $guard 2> /dev/null || true
  kill -9 "$victim" 2> /dev/null || true
  local secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
  awk -v s="$secs" 'BEGIN {exit !(s < 50)}' || die "$name: the job took $secs s to end after rank 1 was stopped (exit $rc)"
  [ $rc -ne 0 ] || die "$name: exit 0 after rank 1 was stopped"
  grep -q "^error: rank 0 waited 5 s (--comm-timeout) in .* in step [0-9]*: another rank is stopped" "$TMP/$name.out" ||
    { cat "$TMP/$name.out"; die "$name: no error line naming the collective and the step"; }
  echo "ok: $name: the job ended $secs s after rank 1 was stopped (exit $rc): $(grep -m1 '^error: ' "$TMP/$name.out")"
}
stopped cpu "$CPU" -np 2 "$CPU" "${data[@]}" "${base[@]}" --steps 100000 --out "$TMP/cpu"

# The emulated GPU trainer (CUDA run on the CPU; make emu) with --comm mpi. --comm nccl is not run: the
# emulator's NCCL all-reduce is a blocking MPI_Allreduce made when it is queued, so a stopped rank holds the
# host inside ncclAllReduce, where a real GPU would hold only the stream that gpu_comm_sync watches.
EMU=$PWD/dev/emu/bin/train_llama
if emu_part "$EMU"; then
  if ldd "$EMU" | grep libmpi > /dev/null; then
    stopped emu "$EMU" -np 2 "$EMU" "${data[@]}" "${base[@]}" --steps 100000 --comm mpi --out "$TMP/emu"
  else
    echo "note: $EMU was built without MPI: the emulated GPU trainer's stopped rank is not tested"
  fi
fi
