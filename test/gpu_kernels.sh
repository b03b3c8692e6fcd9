# The CUDA kernels of kernels/ against their CPU references: every dev/cuda binary's checks in the bf16 and
# the fp32 builds (no timing) and their CPU self-tests. On a GPU it builds dev/cuda for this GPU's
# architecture (skipped without a GPU or without nvcc); with GPU_EMU=1 it runs the same files built for the
# CPU emulator (dev/emu/bin, `make emu`).
source test/lib.sh
kernels=(rmsnorm rope swiglu embedding crossentropy adamw matmul attention grass)
if [ "${GPU_EMU:-0}" = 1 ]; then
  bin=dev/emu/bin
  for k in "${kernels[@]}"; do
    [ -x $bin/$k ] || skip "the emulated kernel files were not built (no CUDA headers when make ran: see make emu)"
  done
  echo "the kernels under the CPU emulator (dev/emu)"
else
  command -v nvidia-smi > /dev/null 2>&1 || skip "no GPU: nvidia-smi is not installed"
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -n 1 | tr -d '. ') || true
  [[ "$cap" =~ ^[0-9]+$ ]] || skip "no GPU: nvidia-smi finds none"
  NVCC=${NVCC:-nvcc}
  command -v "$NVCC" > /dev/null 2>&1 || skip "nvcc not found (set NVCC)"
  [ "$cap" -ge 80 ] || skip "the attention kernels need sm_80 or newer; this GPU is sm_$cap"
  arch=${GPU_ARCH:-sm_$cap}
  make -C dev/cuda -j4 NVCC="$NVCC" GPU_ARCH="$arch" > "$TMP/build.log" 2>&1 || { tail -n 30 "$TMP/build.log"; die "make -C dev/cuda failed"; }
  echo "ok: built dev/cuda for $arch"
  bin=dev/cuda/bin
fi

failed=()
run() {  # run NAME ARGS...: its output goes to $TMP/NAME.log; a failure is reported and remembered
  local name=$1; shift
  if timeout 900 "$@" > "$TMP/$name.log" 2>&1; then
    echo "ok: $name ($(tail -n 1 "$TMP/$name.log"))"
  else
    echo "FAIL: $name (exit $?); the checks that failed:"
    awk '/FAIL|error/ && n++ < 20 {print "    " $0}' "$TMP/$name.log"  # (grep | head could end the script under set -e)
    failed+=("$name")
  fi
}
for k in "${kernels[@]}"; do
  for b in "$k" "${k}_fp32"; do
    run "$b" "$bin/$b" --no-bench
    run "$b.selftest" "$bin/$b" --cpu-selftest
  done
done
# swiglu's odd size (37 x 5461) takes the one-element path and says so once on stderr (the line gpu_aligned
# looks for in the trainer's runs); --version 1 forces that path without saying it
if [ "$(grep -c 'one element per access' "$TMP/swiglu.log")" != 1 ]; then
  echo "FAIL: swiglu did not report its one-element fallback exactly once"
  failed+=(swiglu.fallback-line)
fi
[ ${#failed[@]} -eq 0 ] || die "${#failed[@]} kernel check(s) failed: ${failed[*]} (logs in $TMP)"
echo "ok: every kernel matches its CPU reference"
