# Every CUDA kernel builds (bf16 and fp32, zero warnings) and the parts that need no GPU run: each dev/cuda
# binary's --cpu-selftest (its CPU reference against finite differences or a second formula) and the
# attention kernels under the CPU emulator. Skipped without nvcc. (On a GPU, test/gpu_kernels.sh runs them.)
source test/lib.sh
NVCC=${NVCC:-nvcc}
command -v "$NVCC" > /dev/null 2>&1 || skip "nvcc not found (the CUDA toolkit is needed to build the GPU code)"
make -C dev/cuda -j2 NVCC="$NVCC" > "$TMP/build.log" 2>&1 || { tail -n 30 "$TMP/build.log"; die "make -C dev/cuda failed"; }
for k in rmsnorm rope swiglu embedding crossentropy adamw matmul attention; do
  for b in "$k" "${k}_fp32"; do
    timeout 300 "dev/cuda/bin/$b" --cpu-selftest > "$TMP/$b.log" 2>&1 || { tail -n 20 "$TMP/$b.log"; die "$b --cpu-selftest failed"; }
    echo "ok: $b --cpu-selftest: $(tail -n 1 "$TMP/$b.log")"
  done
done
timeout 600 dev/cuda/bin/attention_emulate > "$TMP/emulate.log" 2>&1 || { tail -n 20 "$TMP/emulate.log"; die "attention_emulate failed"; }
echo "ok: attention kernels under the CPU emulator: $(tail -n 1 "$TMP/emulate.log")"
