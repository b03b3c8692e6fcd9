# Every CUDA kernel file of dev/cuda builds with nvcc, bf16 and fp32, with zero warnings (dev/cuda/Makefile
# makes warnings errors; the trainers are built by make itself), and the emulated build of the trainer and the
# kernel files (dev/emu, the CUDA host code CI compiles) has none either (make emu-warnings). Skipped without nvcc. The kernels run in
# test/t_emu_kernels.sh (CPU emulator) and test/gpu_kernels.sh (GPU).
source test/lib.sh
NVCC=${NVCC:-nvcc}
command -v "$NVCC" > /dev/null 2>&1 || skip "nvcc not found (the CUDA toolkit is needed to build the GPU code)"
make -C dev/cuda -j2 NVCC="$NVCC" > "$TMP/build.log" 2>&1 || { tail -n 30 "$TMP/build.log"; die "make -C dev/cuda failed"; }
echo "ok: $(ls dev/cuda/bin | wc -l) dev/cuda binaries built"
make emu-warnings > "$TMP/emu.log" 2>&1 || { tail -n 30 "$TMP/emu.log"; die "the emulated CUDA sources have compiler warnings"; }
echo "ok: $(tail -n 1 "$TMP/emu.log")"
