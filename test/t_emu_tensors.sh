# test/gpu_tensors.sh on the CPU emulator of CUDA (dev/emu, built by make emu): the GPU model against the CPU
# trainer on one batch, tensor by tensor (logits, loss, every gradient, Grass's selections and compressed
# gradients), with the CUDA code run on the CPU.
GPU_EMU=1
source test/gpu_tensors.sh
