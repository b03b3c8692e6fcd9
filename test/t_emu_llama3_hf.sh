# test/gpu_llama3_hf.sh on the CPU emulator of CUDA (dev/emu, built by make emu): the GPU trainer with tied embeddings
# and RoPE scaling against transformers.
GPU_EMU=1
source test/gpu_llama3_hf.sh
