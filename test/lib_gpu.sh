# lib_gpu.sh: sourced by the GPU tests test/gpu_*.sh after test/lib.sh: skips without a GPU or without the
# GPU trainer binaries.
command -v nvidia-smi > /dev/null 2>&1 || skip "no GPU: nvidia-smi is not installed"
nvidia-smi -L 2> /dev/null | grep -q GPU || skip "no GPU: nvidia-smi finds none"
[ -x ./train_llama ] && [ -x ./train_llama_fp32 ] || skip "train_llama was not built (no nvcc when make ran)"
