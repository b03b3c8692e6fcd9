# test/gpu_train.sh on the CPU emulator of CUDA (dev/emu, built by make emu): the GPU trainer's fp32 and bf16
# builds against the CPU trainer, exact resume, its checkpoint in the CPU trainer, with the CUDA code run on the
# CPU, in the emulator's shorter runs (test/gpu_train.sh says which; test/t_emu_hf.sh loads a checkpoint in transformers).
GPU_EMU=1
source test/gpu_train.sh

# Races: the emulator runs each block's threads in order between barriers; in reverse order, a thread that
# reads what another writes without a barrier between them would see other values. The bits must not change.
final=$(printf 'ckpt_%08d' $steps)
EMU_SCHEDULE=reverse "$TRAIN_GPU" "${args[@]}" --out "$TMP/bf16_reverse" > /dev/null
cmp "$TMP/bf16/$final/model.safetensors" "$TMP/bf16_reverse/$final/model.safetensors" || die "bf16: reverse thread order changes the weights"
EMU_SCHEDULE=reverse "$TRAIN_GPU_FP32" "${args[@]}" --out "$TMP/fp32_reverse" --recompute 0 > /dev/null
cmp "$TMP/fp32/$final/model.safetensors" "$TMP/fp32_reverse/$final/model.safetensors" || die "fp32: reverse thread order changes the weights"
echo "ok: the threads of every block run in reverse order give the same bits (bf16, and fp32)"
