# test/gpu_mpi.sh on the CPU emulator of CUDA (dev/emu, built by make emu): 2 ranks of the GPU trainer with
# --comm mpi and with --comm nccl (the emulator's NCCL, over MPI) against 1 rank, AdamW and Grass, with the CUDA
# code run on the CPU.
GPU_EMU=1
source test/gpu_mpi.sh
