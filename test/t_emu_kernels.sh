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
