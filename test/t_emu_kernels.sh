# test/gpu_kernels.sh on the CPU emulator of CUDA (dev/emu, built by make emu): every dev/cuda kernel file's
# checks against its CPU reference, bf16 and fp32, with the kernels themselves run on the CPU (no GPU needed).
GPU_EMU=1
source test/gpu_kernels.sh
