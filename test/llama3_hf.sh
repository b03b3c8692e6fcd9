# The Llama-3 family against Hugging Face transformers, for a trainer $TRAIN (sourced after test/lib.sh by
# test/t_llama3_hf.sh with the CPU trainer, test/gpu_llama3_hf.sh with the GPU trainer's fp32 build). Tiny random
# models written by transformers itself (test/hf_tiny.py):
#   tied_llama3  tied embeddings, llama3 RoPE scaling (original length 32: at head dim 16 and theta 5e5 its three
#                frequency bands all occur), GQA, rms_norm_eps 1e-5, eos_token_id a list, fp32, the LLaMA-2 vocabulary
#   linear_bf16  linear RoPE scaling (factor 2), MQA, bf16 tensors in several files (model.safetensors.index.json)
#   llama3_bf16  llama3 scaling with untied embeddings, bf16
# For each, `--init DIR --eval-only` gives transformers' validation loss on the same batches within LOSS_BOUND
# (test/hf_eval.py). Then the other way: $TRAIN continues tied_llama3 with Grass and the LLaMA-2 tokenizer and samples
# greedily; its checkpoint keeps config.json's fields (tie, rope_scaling, eos list, rms_norm_eps, torch_dtype of the
# file), carries the tokenizer and a generation_config.json, AutoTokenizer loads from it, and transformers' greedy
# generate continues BOS with exactly the trainer's sample (test/hf_generate.py).
need_python_module transformers
need_data llama2_tokenizer.model
# fp32 on both sides, the same bound as test/hf_compare.py's loss: summation orders differ, ~1e-6 relative
LOSS_BOUND=1e-5
tiny() { "$PYTHON" test/hf_tiny.py "$TMP/$1" "${@:2}" > /dev/null || die "test/hf_tiny.py $1 failed"; }
tiny tied_llama3 --tie --rope-scaling llama3 --rope-original-max-seq 32 --rope-theta 500000 --norm-eps 1e-5 --kv-heads 2 \
  --eos-token-id 2,3 --vocab 32000 --max-seq 128
tiny linear_bf16 --rope-scaling linear --rope-factor 2 --kv-heads 1 --dtype bfloat16 --max-shard-size 100KB --max-seq 128
tiny llama3_bf16 --rope-scaling llama3 --rope-original-max-seq 32 --rope-theta 500000 --dtype bfloat16 --max-seq 128
[ "$(ls "$TMP"/linear_bf16/model-*.safetensors | wc -l)" -ge 2 ] || die "linear_bf16 was not written in several files"
"$PYTHON" test/shard_tool.py "$TMP/val32k.bin" --tokens 4000 --vocab 32000 --seed 3
"$PYTHON" test/shard_tool.py "$TMP/val512.bin" --tokens 4000 --vocab 512 --seed 4
eval=(--eval-only --batch 2 --seq 64 --eval-batches 2)
for m in tied_llama3:val32k linear_bf16:val512 llama3_bf16:val512; do
  model=${m%%:*} val="$TMP/${m##*:}.bin"
  loss=$("$TRAIN" --init "$TMP/$model" --val-data "$val" "${eval[@]}" | awk '$1 == "val_loss" {print $2}')
  [ -n "$loss" ] || die "$model: no val_loss from --eval-only"
  echo "== $model"
  "$PYTHON" test/hf_eval.py "$TMP/$model" "$val" --batch 2 --seq 64 --batches 2 --expect "$loss" --bound $LOSS_BOUND \
    || die "$model: the trainer's loss is not transformers'"
done

"$PYTHON" test/shard_tool.py "$TMP/train32k.bin" --tokens 20000 --vocab 32000 --seed 5
"$TRAIN" --init "$TMP/tied_llama3" --tokenizer "$DATA/llama2_tokenizer.model" --train-data "$TMP/train32k.bin" --batch 2 \
  --seq 64 --steps 4 --warmup 1 --lr 1e-3 --optimizer grass --grass-rank 8 --grass-interval 2 --sample-every 4 \
  --sample-temperature 0 --sample-tokens 12 --out "$TMP/run" | tee "$TMP/run.txt"
ckpt="$TMP/run/ckpt_00000004"
sample=$(sed -n 's/^sample (step 4)://p' "$TMP/run.txt")
[ -n "$sample" ] || die "no sample ids in the trainer's output"
cmp "$DATA/llama2_tokenizer.model" "$ckpt/tokenizer.model" || die "the checkpoint's tokenizer.model is not --tokenizer's"
"$PYTHON" - "$TMP/tied_llama3" "$ckpt" << 'PY' || die "the checkpoint's config.json or generation_config.json is not faithful"
import json, struct, sys
src, ck = (json.load(open(f"{d}/config.json")) for d in sys.argv[1:3])
for key in ("tie_word_embeddings", "rope_scaling", "eos_token_id", "bos_token_id", "rms_norm_eps", "rope_theta",
            "num_key_value_heads", "max_position_embeddings", "vocab_size"):
    assert ck[key] == src[key], f"{key}: {ck[key]!r} in the checkpoint, {src[key]!r} in the source"
raw = open(f"{sys.argv[2]}/model.safetensors", "rb").read()
header = json.loads(raw[8:8 + struct.unpack_from("<Q", raw)[0]])
dtypes = {t["dtype"] for name, t in header.items() if name != "__metadata__"}
assert "lm_head.weight" not in header, "a tied checkpoint holds lm_head.weight"
assert ck["torch_dtype"] == {"F32": "float32", "BF16": "bfloat16"}[dtypes.pop()] and not dtypes, "torch_dtype is not the file's"
gen = json.load(open(f"{sys.argv[2]}/generation_config.json"))
assert gen["eos_token_id"] == src["eos_token_id"] and gen["bos_token_id"] == src["bos_token_id"], gen
print("ok: config.json keeps tie, rope_scaling, the eos list, rms_norm_eps and theta; torch_dtype is the file's")
PY
"$PYTHON" test/hf_generate.py "$ckpt" --prompt 1 --expect "$sample" --ignore-eos \
  || die "transformers' greedy generate differs from the trainer's greedy sample"
echo "ok: transformers loads the checkpoint and its tokenizer, and generates the trainer's sample"
