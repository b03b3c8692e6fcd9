# The Llama-3 family (tied embeddings, RoPE scaling, bf16 and sharded files) against transformers, in the CPU trainer:
# test/llama3_hf.sh says what is checked.
source test/lib.sh
TRAIN=./train_llama_cpu
source test/llama3_hf.sh
# and logit by logit (test/hf_compare.py's bounds): the trainer's forward of the tied, llama3-scaled model and of its
# checkpoint after the Grass steps
for dir in "$TMP/tied_llama3" "$TMP/run/ckpt_00000004"; do
  test/bin/test_reference dump "$dir" "$TMP/dump.safetensors" 3 64 7
  "$PYTHON" test/hf_compare.py "$dir" "$TMP/dump.safetensors" || die "$dir: the trainer's logits are not transformers'"
done
