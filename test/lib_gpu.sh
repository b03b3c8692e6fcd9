# lib_gpu.sh: sourced by the GPU tests test/gpu_*.sh after test/lib.sh. Sets TRAIN_GPU and TRAIN_GPU_FP32,
# the GPU trainer's bf16 and fp32 builds, and TENSORS_GPU and TENSORS_GPU_FP32, those of test/test_tensors.cu:
# ./train_llama, ./train_llama_fp32 and test/bin/ on a GPU (skips without one or without the trainers), or with
# GPU_EMU=1 their builds for the CPU emulator, dev/emu/bin/ (`make emu`), which is how test/t_emu_*.sh run the
# same tests on machines without a GPU. llama3_config writes a small config.json with the Llama-3 options.
if [ "${GPU_EMU:-0}" = 1 ]; then
  TRAIN_GPU=dev/emu/bin/train_llama TRAIN_GPU_FP32=dev/emu/bin/train_llama_fp32
  TENSORS_GPU=dev/emu/bin/test_tensors TENSORS_GPU_FP32=dev/emu/bin/test_tensors_fp32
  [ -x $TRAIN_GPU ] && [ -x $TRAIN_GPU_FP32 ] || skip "the emulated GPU trainer was not built (no CUDA headers when make ran: see make emu)"
  echo "the GPU trainer under the CPU emulator (dev/emu)"
else
  command -v nvidia-smi > /dev/null 2>&1 || skip "no GPU: nvidia-smi is not installed"
  have_gpu || skip "no GPU: nvidia-smi finds none"
  TRAIN_GPU=./train_llama TRAIN_GPU_FP32=./train_llama_fp32
  TENSORS_GPU=test/bin/test_tensors TENSORS_GPU_FP32=test/bin/test_tensors_fp32
  [ -x $TRAIN_GPU ] && [ -x $TRAIN_GPU_FP32 ] || skip "train_llama was not built (no nvcc when make ran)"
fi

# gpu_aligned CMD...: runs a GPU trainer command (stdout to the log) and fails when one of its matrix products
# had rows below the 16-byte alignment of cuBLASLt's fast kernels (kernels/matmul.cuh says so on stderr), or a
# memory-bound kernel fell back to one element per access (kernels/common.cuh says so), or cuBLASLt had no
# algorithm for one of them (a batch of Grass's compressed gradients among them), which then ran through
# cublasGemmEx one by one: the trainer stores odd sizes padded (llama_model.cuh), the test preset's ffn 172 among them.
gpu_aligned() {
  "$@" 2> "$TMP/aligned.err" || { cat "$TMP/aligned.err"; die "failed: $*"; }
  cat "$TMP/aligned.err" >&2
  ! grep "below the 16" "$TMP/aligned.err" || die "a matrix product with unaligned rows: $*"
  ! grep "one element per access" "$TMP/aligned.err" || die "a memory-bound kernel without 16-byte accesses: $*"
  ! grep "cuBLASLt has no algorithm" "$TMP/aligned.err" || die "a matrix product without a cuBLASLt algorithm: $*"
}

# llama3_config FILE TIE THETA ROPE_SCALING [FFN]: the test preset's sizes (dim 64, 2 layers, 4 heads, 2 kv heads,
# vocab 512, max-seq 256; ffn FFN, default 172) as a config.json for --model, with the Llama-3 options:
# tie_word_embeddings TIE (true or false), rope_theta THETA and rope_scaling ROPE_SCALING (JSON, or null).
llama3_config() {
  cat > "$1" << JSON
{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "intermediate_size": ${5:-172}, "vocab_size": 512, "max_position_embeddings": 256, "rms_norm_eps": 1e-06,
 "rope_theta": $3, "tie_word_embeddings": $2, "rope_scaling": $4}
JSON
}
