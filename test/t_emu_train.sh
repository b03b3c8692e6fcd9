# test/gpu_train.sh on the CPU emulator of CUDA (dev/emu, built by make emu): the GPU trainer's fp32 and bf16
# builds against the CPU trainer, exact resume, its checkpoint in transformers, with the CUDA code run on the CPU.
GPU_EMU=1
source test/gpu_train.sh
