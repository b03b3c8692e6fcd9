# test/gpu_kernels.sh on the CPU emulator of CUDA (dev/emu, built by make emu): every dev/cuda kernel file's
# checks against its CPU reference, bf16 and fp32, with the kernels themselves run on the CPU (no GPU needed).
GPU_EMU=1
source test/gpu_kernels.sh

# The emulator itself (dev/emu/selftest.cu): right answers for shuffles, block reductions and mma.sync; NaN for
# memory never written; CUDA's launch limits; cuBLAS argument checks; a skipped __syncthreads is reported as a
# deadlock; planted races (a shared store, a cp.async refill) give other results with the threads in reverse order.
dev/emu/bin/selftest > "$TMP/selftest.log" 2>&1 || { cat "$TMP/selftest.log"; die "the emulator's self-test failed"; }
echo "ok: emulator self-test: $(tail -n 1 "$TMP/selftest.log")"
expect_error "deadlock: deadlock_kernel" dev/emu/bin/selftest --deadlock
dev/emu/bin/selftest --reverse-race > "$TMP/race_forward" && EMU_SCHEDULE=reverse dev/emu/bin/selftest --reverse-race > "$TMP/race_reverse" ||
  die "the emulator's planted races did not run"
for race in 1 2; do  # 1: a shared store read without a barrier; 2: a cp.async refill of a buffer another warp reads
  [ "$(sed -n ${race}p "$TMP/race_forward")" != "$(sed -n ${race}p "$TMP/race_reverse")" ] ||
    die "planted race $race gives the same results in both thread orders"
done
echo "ok: the planted races (a store, a cp.async refill) show as different results in reverse thread order"

# The attention versions that share tiles between warps through shared memory (3: the trainer's; 4, 6 and 7: cp.async
# double buffering; 7's dq kernel streams stored dS tiles), with each block's threads in reverse order, a warp at a
# time, and cp.async copies landing at once: a barrier missing around a tile gives other results (without the first
# barrier of version 6's forward loop, or of version 7's dq loop, this fails)
# (one run of the four: each case's inputs, CPU reference and version 2's bits computed once)
EMU_SCHEDULE=reverse dev/emu/bin/attention --no-bench --version 3,4,6,7 > "$TMP/attention_reverse.log" 2>&1 ||
  { awk '/^attention version/ {v = $3} /FAIL/ && n++ < 10 {print "version " v ": " $0}' "$TMP/attention_reverse.log"
    die "attention fails with the threads in reverse order"; }
[ "$(grep -c '^attention version [3467] .*validation' "$TMP/attention_reverse.log")" = 4 ] || die "not the four versions"
echo "ok: attention versions 3, 4, 6 and 7 pass with the threads in reverse order, a warp at a time"

# RMSNorm's backward passes each group's row coefficients from warp to warp through shared memory (without the
# barrier that ends a group, this fails)
EMU_SCHEDULE=reverse dev/emu/bin/rmsnorm --no-bench > "$TMP/rmsnorm_reverse.log" 2>&1 ||
  { awk '/FAIL/ && n++ < 10' "$TMP/rmsnorm_reverse.log"; die "rmsnorm fails with the threads in reverse order"; }
echo "ok: rmsnorm passes with the threads in reverse order"

# cuBLAS kernels that round the product to bf16 before adding C (some do for products of a few tokens: dweight +=
# off by half a bf16 unit of the product): dev/cuda/matmul.cu's bounds for the += forms must allow for it
EMU_GEMM_ROUND_PRODUCT=1 dev/emu/bin/matmul --version 1 --no-bench > "$TMP/matmul_round.log" 2> /dev/null ||
  { grep -v "aligned to" "$TMP/matmul_round.log"; die "matmul's bounds fail when the product is rounded before C is added"; }
echo "ok: matmul's bounds hold with the product rounded to bf16 before C is added"
