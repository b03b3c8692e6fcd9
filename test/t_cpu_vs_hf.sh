# A checkpoint written by train_llama_cpu loads in Hugging Face transformers' LlamaForCausalLM and gives the
# trainer's own logits and loss on the same tokens (bounds in test/hf_compare.py); and the other way, the model
# saved by transformers in its sharded form (model.safetensors.index.json and several files, how it saves large
# models such as LLaMA-2 7B) initialises the trainer to the same weights.
source test/lib.sh
need_python_module transformers
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 20000 --vocab 512
./train_llama_cpu --model test --train-data "$TMP/train.bin" --batch 4 --seq 32 --steps 15 --warmup 2 --lr 3e-3 --out "$TMP/run"
test/bin/test_reference dump "$TMP/run/ckpt_00000015" "$TMP/dump.safetensors" 3 32 7
"$PYTHON" test/hf_compare.py "$TMP/run/ckpt_00000015" "$TMP/dump.safetensors"

"$PYTHON" - "$TMP/run/ckpt_00000015" "$TMP/sharded" << 'EOF'
import sys
from transformers import LlamaForCausalLM
LlamaForCausalLM.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], max_shard_size="100KB", safe_serialization=True)
EOF
shards=$(ls "$TMP/sharded"/model-*.safetensors | wc -l)
[ -f "$TMP/sharded/model.safetensors.index.json" ] && [ "$shards" -ge 2 ] || die "transformers did not write a sharded checkpoint"
# fp32 tensors read from either form are the same numbers: the trainer's forward gives the same bits
test/bin/test_reference dump "$TMP/sharded" "$TMP/dump_sharded.safetensors" 3 32 7
cmp "$TMP/dump.safetensors" "$TMP/dump_sharded.safetensors" || die "the sharded checkpoint gives other logits than the trainer's own"
echo "ok: the transformers checkpoint in $shards shards gives the trainer's logits and loss bit for bit"
