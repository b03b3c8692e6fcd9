# test/gpu_train.sh on the CPU emulator of CUDA (dev/emu, built by make emu): the GPU trainer's fp32 and bf16
# builds against the CPU trainer, exact resume, its checkpoint in transformers, with the CUDA code run on the CPU.
GPU_EMU=1
source test/gpu_train.sh

# Races: the emulator runs each block's threads in order between barriers; in reverse order, a thread that
# reads what another writes without a barrier between them would see other values. The bits must not change.
EMU_SCHEDULE=reverse "$TRAIN_GPU" "${args[@]}" --out "$TMP/bf16_reverse" > /dev/null
cmp "$TMP/bf16/ckpt_00000010/model.safetensors" "$TMP/bf16_reverse/ckpt_00000010/model.safetensors" || die "bf16: reverse thread order changes the weights"
EMU_SCHEDULE=reverse "$TRAIN_GPU_FP32" "${args[@]}" --out "$TMP/fp32_r2_reverse" --recompute 2 > /dev/null
cmp "$TMP/fp32_r2/ckpt_00000010/model.safetensors" "$TMP/fp32_r2_reverse/ckpt_00000010/model.safetensors" || die "fp32: reverse thread order changes the weights"
echo "ok: the threads of every block run in reverse order give the same bits (bf16, and fp32 with recompute 2)"
