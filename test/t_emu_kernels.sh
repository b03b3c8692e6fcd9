# test/gpu_kernels.sh on the CPU emulator of CUDA (dev/emu, built by make emu): every dev/cuda kernel file's
# checks against its CPU reference, bf16 and fp32, with the kernels themselves run on the CPU (no GPU needed).
GPU_EMU=1
source test/gpu_kernels.sh

# The emulator itself (dev/emu/selftest.cu): right answers for shuffles, block reductions and mma.sync; NaN for
# memory never written; CUDA's launch limits; cuBLAS argument checks; a skipped __syncthreads is reported as a
# deadlock; a planted race gives other results with the threads in reverse order.
dev/emu/bin/selftest > "$TMP/selftest.log" 2>&1 || { cat "$TMP/selftest.log"; die "the emulator's self-test failed"; }
echo "ok: emulator self-test: $(tail -n 1 "$TMP/selftest.log")"
expect_error "deadlock: deadlock_kernel" dev/emu/bin/selftest --deadlock
forward=$(dev/emu/bin/selftest --reverse-race) reverse=$(EMU_SCHEDULE=reverse dev/emu/bin/selftest --reverse-race)
[ "$forward" != "$reverse" ] || die "a planted race gives the same results in both thread orders"
echo "ok: a planted race shows as different results in reverse thread order"

# cuBLAS kernels that round the product to bf16 before adding C (seen on an H200 for 3-token products: dweight +=
# off by half a bf16 unit of the product): dev/cuda/matmul.cu's bounds for the += forms must allow for it
EMU_GEMM_ROUND_PRODUCT=1 dev/emu/bin/matmul --version 1 --no-bench > "$TMP/matmul_round.log" 2> /dev/null ||
  { grep -v "aligned to" "$TMP/matmul_round.log"; die "matmul's bounds fail when the product is rounded before C is added"; }
echo "ok: matmul's bounds hold with the product rounded to bf16 before C is added"
