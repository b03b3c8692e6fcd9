# The CUDA kernels of kernels/ against their CPU references: builds dev/cuda (for this GPU's architecture)
# and runs every binary's checks in the bf16 and the fp32 builds (no timing), their CPU self-tests, and the
# attention kernels under the CPU emulator. Skipped without a GPU or without nvcc.
source test/lib.sh
command -v nvidia-smi > /dev/null 2>&1 || skip "no GPU: nvidia-smi is not installed"
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -n 1 | tr -d '. ') || true
[[ "$cap" =~ ^[0-9]+$ ]] || skip "no GPU: nvidia-smi finds none"
NVCC=${NVCC:-nvcc}
command -v "$NVCC" > /dev/null 2>&1 || skip "nvcc not found (set NVCC)"
[ "$cap" -ge 80 ] || skip "the attention kernels need sm_80 or newer; this GPU is sm_$cap"

arch=${GPU_ARCH:-sm_$cap}
make -C dev/cuda -j4 NVCC="$NVCC" GPU_ARCH="$arch" > "$TMP/build.log" 2>&1 || { tail -n 30 "$TMP/build.log"; die "make -C dev/cuda failed"; }
echo "ok: built dev/cuda for $arch"

failed=()
run() {  # run NAME ARGS...: its output goes to $TMP/NAME.log; a failure is reported and remembered
  local name=$1; shift
  if timeout 600 "$@" > "$TMP/$name.log" 2>&1; then
    echo "ok: $name ($(tail -n 1 "$TMP/$name.log"))"
  else
    echo "FAIL: $name (exit $?); the checks that failed:"
    grep -E 'FAIL|error' "$TMP/$name.log" | head -n 20 | sed 's/^/    /'
    failed+=("$name")
  fi
}
for k in rmsnorm rope swiglu embedding crossentropy adamw matmul attention; do
  for b in "$k" "${k}_fp32"; do
    run "$b" "dev/cuda/bin/$b" --no-bench
    run "$b.selftest" "dev/cuda/bin/$b" --cpu-selftest
  done
done
run attention_emulate dev/cuda/bin/attention_emulate
[ ${#failed[@]} -eq 0 ] || die "${#failed[@]} kernel check(s) failed: ${failed[*]} (logs in $TMP)"
echo "ok: every kernel matches its CPU reference"
