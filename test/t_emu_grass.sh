# test/gpu_grass.sh on the CPU emulator of CUDA (dev/emu, built by make emu): Grass in the GPU trainer against
# the CPU trainer for every selector, exact resume across a refresh, with the CUDA code run on the CPU.
GPU_EMU=1
source test/gpu_grass.sh
