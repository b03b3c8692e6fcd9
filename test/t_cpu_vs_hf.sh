# A checkpoint written by train_llama_cpu loads in Hugging Face transformers' LlamaForCausalLM and gives the
# trainer's own logits and loss on the same tokens (bounds in test/hf_compare.py).
source test/lib.sh
need_python_module transformers
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 20000 --vocab 512
./train_llama_cpu --model test --train-data "$TMP/train.bin" --batch 4 --seq 32 --steps 15 --warmup 2 --lr 3e-3 --out "$TMP/run"
test/bin/test_reference dump "$TMP/run/ckpt_00000015" "$TMP/dump.safetensors" 3 32 7
"$PYTHON" test/hf_compare.py "$TMP/run/ckpt_00000015" "$TMP/dump.safetensors"
