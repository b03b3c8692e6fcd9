# test/gpu_hf.sh on the CPU emulator of CUDA (dev/emu, built by make emu): a checkpoint of the emulated GPU
# trainer loads in transformers with the CPU trainer's logits and loss. Skipped without transformers.
GPU_EMU=1
source test/gpu_hf.sh
