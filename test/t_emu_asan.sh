# The GPU trainer on the CPU emulator under AddressSanitizer and UBSan (dev/emu/bin/*_asan): every kernel's
# reads and writes stay inside their cudaMalloc'd buffers (allocated at exactly the requested size), and no
# undefined behaviour, for odd sizes (batch 3, seq 37) in the configurations that use different kernels:
# bf16 Grass (multinorm, refresh every step) with stochastic rounding and recompute 2, and fp32 AdamW with
# recompute 0 and gradient accumulation. 2 steps each plus an evaluation. Any report fails the run.
source test/lib.sh
for b in train_llama_asan train_llama_fp32_asan; do
  [ -x dev/emu/bin/$b ] || skip "the emulated GPU trainer was not built (no CUDA headers when make ran: see make emu)"
done
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 4000 --vocab 512
base=(--model test --train-data "$TMP/train.bin" --val-data "$TMP/train.bin" --batch 3 --seq 37 --steps 2 --warmup 1
      --eval-every 0 --eval-batches 1 --weight-decay 0.1)
export ASAN_OPTIONS=detect_stack_use_after_return=0:detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
dev/emu/bin/train_llama_asan "${base[@]}" --optimizer grass --grass-rank 12 --grass-interval 1 --grass-select multinorm \
  --master-weights 0 --state-dtype bf16 --recompute 2 --out "$TMP/bf16" > "$TMP/bf16.log" 2>&1 || { tail -n 30 "$TMP/bf16.log"; die "bf16 Grass under the sanitizers"; }
echo "ok: bf16 Grass (stochastic rounding, recompute 2): no sanitizer report"
dev/emu/bin/train_llama_fp32_asan "${base[@]}" --recompute 0 --total-batch 222 --out "$TMP/fp32" > "$TMP/fp32.log" 2>&1 || { tail -n 30 "$TMP/fp32.log"; die "fp32 AdamW under the sanitizers"; }
echo "ok: fp32 AdamW (recompute 0, 2 micro-batches): no sanitizer report"
! grep -q "runtime error\|ERROR: AddressSanitizer" "$TMP/bf16.log" "$TMP/fp32.log" || die "a sanitizer reported an error"
