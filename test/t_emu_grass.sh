# test/gpu_grass.sh on the CPU emulator of CUDA (dev/emu, built by make emu): Grass in the GPU trainer against
# the CPU trainer across refreshes, exact resume across a refresh, with the CUDA code run on the CPU, in the
# emulator's shorter set of runs (test/gpu_grass.sh says which, and which test covers the others).
GPU_EMU=1
source test/gpu_grass.sh

# Races (as in test/t_emu_train.sh): the threads of every block in reverse order give the same bits.
EMU_SCHEDULE=reverse "$TRAIN_GPU" "${args[@]}" --grass-select multinorm --out "$TMP/reverse" > /dev/null
cmp "$TMP/bf16_multinorm/$final/model.safetensors" "$TMP/reverse/$final/model.safetensors" || die "reverse thread order changes the weights"
cmp "$TMP/bf16_multinorm/$final/state.bin" "$TMP/reverse/$final/state.bin" || die "reverse thread order changes the state"
echo "ok: Grass (multinorm, bf16) with the threads of every block in reverse order gives the same bits"
