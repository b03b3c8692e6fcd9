# The Llama-3 family (tied embeddings, RoPE scaling, bf16 and sharded files) against transformers, in the GPU trainer
# (test/llama3_hf.sh says what is checked): its fp32 build, which computes as transformers does in fp32, through the
# whole of test/llama3_hf.sh; its bf16 build's --eval-only loss of the tied, llama3-scaled model within 2e-2 relative
# (bf16 activations and weights: 8 bits, ~4e-3 relative per rounding, through 2 layers and the lm_head). On the CPU
# emulator as test/t_emu_llama3_hf.sh.
source test/lib.sh
source test/lib_gpu.sh
TRAIN=$TRAIN_GPU_FP32
source test/llama3_hf.sh
loss=$("$TRAIN_GPU" --init "$TMP/tied_llama3" --val-data "$TMP/val32k.bin" "${eval[@]}" | awk '$1 == "val_loss" {print $2}')
[ -n "$loss" ] || die "bf16: no val_loss from --eval-only"
"$PYTHON" test/hf_eval.py "$TMP/tied_llama3" "$TMP/val32k.bin" --batch 2 --seq 64 --batches 2 --expect "$loss" --bound 2e-2 \
  || die "the bf16 build's loss is not transformers'"
