# A checkpoint written by the GPU trainer loads in Hugging Face transformers and gives the CPU trainer's logits
# and loss there (test/hf_compare.py's bounds): the bf16 build trains the test preset (ffn 172, stored padded to
# 176 on the GPU; model.safetensors holds the model's shapes and its bf16 weights, state.bin the fp32 master weights), then the CPU trainer's
# forward of that checkpoint on random tokens (test_reference dump) is compared with transformers'. Skipped
# without transformers; 20 steps on a GPU, 4 on the CPU emulator (test/t_emu_hf.sh).
source test/lib.sh
source test/lib_gpu.sh
need_python_module transformers
steps=20; [ "${GPU_EMU:-0}" = 1 ] && steps=4
ckpt="$TMP/gpu/$(printf 'ckpt_%08d' $steps)"
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 40000 --vocab 512
"$TRAIN_GPU" --model test --train-data "$TMP/train.bin" --batch 4 --seq 64 --steps $steps --warmup 2 --lr 3e-3 \
  --weight-decay 0.1 --eval-every 0 --out "$TMP/gpu" > /dev/null
test/bin/test_reference dump "$ckpt" "$TMP/dump.safetensors" 3 32 7
"$PYTHON" test/hf_compare.py "$ckpt" "$TMP/dump.safetensors"
echo "ok: the GPU trainer's checkpoint in transformers"
