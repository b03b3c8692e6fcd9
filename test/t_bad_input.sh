# Bad input of every class (flags, sizes, shards, checkpoints) gets one clear "error:" line naming the flag
# or file and what is expected, and a non-zero exit; never a crash or a hang.
source test/lib.sh
T=./train_llama_cpu
"$PYTHON" test/shard_tool.py "$TMP/ok.bin" --tokens 5000 --vocab 512
ok=(--model test --train-data "$TMP/ok.bin" --batch 2 --seq 16 --steps 2 --warmup 1)

echo "== flags"
expect_error "unknown option --bogus (see --help)" $T --bogus 1
# a mistyped option names the nearest one: a few edits away, spelled by its words' initials, or with fewer words
expect_error "unknown option --lerning-rate (did you mean --lr?" $T "${ok[@]}" --lerning-rate 1e-3
expect_error "unknown option --eval-evry (did you mean --eval-every?" $T "${ok[@]}" --eval-evry 5
expect_error "unknown option --grass_rank (did you mean --grass-rank?" $T "${ok[@]}" --grass_rank 8
expect_error "unknown option --batch-size (did you mean --batch?" $T "${ok[@]}" --batch-size=4
expect_error "unexpected argument '-lr' (did you mean --lr?" $T "${ok[@]}" -lr 1e-3
expect_error "--tokenizer: cannot open $TMP/none.model: No such file or directory" $T "${ok[@]}" --tokenizer "$TMP/none.model"
expect_error "--tokenizer: $TMP is not a regular file" $T "${ok[@]}" --tokenizer "$TMP"
expect_error "--lr expects a number, got 'fast'" $T "${ok[@]}" --lr fast
expect_error "--steps expects an integer, got '10x'" $T "${ok[@]}" --steps 10x
expect_error "--batch must not be negative" $T "${ok[@]}" --batch -2
expect_error "--seq needs a value" $T "${ok[@]}" --seq
expect_error "--eval-only takes no value" $T "${ok[@]}" --eval-only=1
expect_error "unexpected argument 'stray'" $T "${ok[@]}" stray
expect_error "--optimizer must be one of adamw|grass, got 'sgd'" $T "${ok[@]}" --optimizer sgd
expect_error "--grass-* options need --optimizer grass" $T "${ok[@]}" --grass-rank 8
expect_error "--grass-select must be one of topr|multinorm|multinorm-nr|uniform|uniform-nr, got 'best'" $T "${ok[@]}" --optimizer grass --grass-select best
expect_error "--grass-side must be one of auto|rows|cols, got 'both'" $T "${ok[@]}" --optimizer grass --grass-side both
expect_error "--grass-interval must be at least 1" $T "${ok[@]}" --optimizer grass --grass-interval 0
expect_error "--recompute is an option of the GPU trainer" $T "${ok[@]}" --recompute 1
expect_error "--init and --resume exclude each other" $T "${ok[@]}" --init "$TMP" --resume "$TMP"
expect_error "--eval-only needs the weights" $T "${ok[@]}" --eval-only --val-data "$TMP/ok.bin"
expect_error "--train-data is required" $T --model test
expect_error "--ckpt-every needs --out" $T "${ok[@]}" --ckpt-every 5
expect_error "--resume auto looks for checkpoints in --out" $T "${ok[@]}" --resume auto
expect_error "--resume $TMP/none: no such checkpoint directory" $T "${ok[@]}" --resume "$TMP/none"
expect_error "--total-batch 100 is not a multiple of batch 2 x seq 16" $T "${ok[@]}" --total-batch 100
expect_error "--beta2 must be below 1" $T "${ok[@]}" --beta2 1.5

echo "== sizes"
expect_error "--seq 300 is longer than the model's max-seq 256" $T "${ok[@]}" --seq 300
expect_error "dim 60 is not a multiple of heads 8" $T "${ok[@]}" --dim 60 --heads 8
expect_error "heads 4 is not a multiple of kv-heads 3" $T "${ok[@]}" --kv-heads 3
expect_error "--model 3b is neither a preset" $T "${ok[@]}" --model 3b
echo '{"hidden_size": 64, "num_hidden_layers": 2}' > "$TMP/partial.json"
expect_error "partial.json: missing field \"num_attention_heads\"" $T "${ok[@]}" --model "$TMP/partial.json"
echo '{"hidden_size": 64,' > "$TMP/broken.json"
expect_error "broken.json is not valid JSON" $T "${ok[@]}" --model "$TMP/broken.json"

echo "== numbers that overflow"
expect_error "--total-batch 9223372036854775776 needs 288230376151711743 micro-batches" $T "${ok[@]}" --total-batch 9223372036854775776
expect_error "--total-batch 16 is less than one micro-batch" $T "${ok[@]}" --total-batch 16
expect_error "--batch 65536 x --seq 65536 = 4294967296 tokens is more than a micro-batch may hold" $T "${ok[@]}" --batch 65536 --seq 65536
expect_error "--sample-tokens 2147483647 is above the largest supported" $T "${ok[@]}" --sample-every 1 --sample-tokens 2147483647
cfg() { echo "{\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"intermediate_size\": 172, \"vocab_size\": 512$1}" > "$TMP/$2"; }
cfg ', "rope_theta": 1e300' theta.json
expect_error 'theta.json: field "rope_theta" is 1e+300, too large for a float' $T "${ok[@]}" --model "$TMP/theta.json"
cfg ', "rope_theta": 1e400' theta2.json
expect_error "theta2.json is not valid JSON: number too large for a double" $T "${ok[@]}" --model "$TMP/theta2.json"
cfg ', "max_position_embeddings": 1e10' big.json
expect_error 'big.json: field "max_position_embeddings" is 1e+10, outside the range of an int' $T "${ok[@]}" --model "$TMP/big.json"
cfg ', "max_position_embeddings": 4194304' seq.json
expect_error "seq.json: max-seq 4194304 is above the largest supported, 1048576" $T "${ok[@]}" --model "$TMP/seq.json"
expect_error "dim 2097152 is above the largest supported, 1048576" $T "${ok[@]}" --dim 2097152 --heads 1

echo "== shards"
sh() { "$PYTHON" test/shard_tool.py "$TMP/$1" --vocab 512 "${@:2}"; }
sh magic.bin --tokens 5000 --magic 12345
expect_error "magic.bin is not a token shard: magic 12345" $T "${ok[@]}" --train-data "$TMP/magic.bin"
sh version.bin --tokens 5000 --version 3
expect_error "version.bin: shard version 3, expected 1" $T "${ok[@]}" --train-data "$TMP/version.bin"
sh trunc.bin --tokens 5000 --truncate 100
expect_error "trunc.bin is truncated: the header says 5000 tokens" $T "${ok[@]}" --train-data "$TMP/trunc.bin"
sh count.bin --tokens 5000 --header-count 4000
expect_error "count.bin: the header says 4000 tokens" $T "${ok[@]}" --train-data "$TMP/count.bin"
printf 'tiny' > "$TMP/short.bin"
expect_error "short.bin is not a token shard: shorter than the 1024-byte header" $T "${ok[@]}" --train-data "$TMP/short.bin"
sh token.bin --tokens 5000 --bad-token 700
expect_error "token.bin: token id 700 at position 2500 is outside the model's vocabulary (size 512)" $T "${ok[@]}" --train-data "$TMP/token.bin" --steps 100
sh u32.bin --tokens 5000 --uint32 --bad-token 70000
expect_error "u32.bin: token id 70000" $T "${ok[@]}" --train-data "$TMP/u32.bin" --steps 100
sh small.bin --tokens 20
expect_error "small.bin: 20 tokens, fewer than one step needs" $T "${ok[@]}" --train-data "$TMP/small.bin"
expect_error "--train-data $TMP/nothing_*.bin matches no files" $T "${ok[@]}" --train-data "$TMP/nothing_*.bin"
expect_error "--val-data $TMP/nothing.bin matches no files" $T "${ok[@]}" --val-data "$TMP/nothing.bin"
# a FIFO or directory where a file belongs is refused at once (opening a FIFO for reading would block until a writer came)
mkfifo "$TMP/fifo.bin"
expect_error "fifo.bin is not a regular file" $T "${ok[@]}" --train-data "$TMP/fifo*.bin"
mkdir -p "$TMP/dir.json"
expect_error "dir.json is not a regular file" $T "${ok[@]}" --model "$TMP/dir.json"

echo "== checkpoints"
$T "${ok[@]}" --out "$TMP/run" > /dev/null
ck="$TMP/run/ckpt_00000002"
cp -r "$ck" "$TMP/ck_trunc"; truncate -s -1000 "$TMP/ck_trunc/model.safetensors"
expect_error "model.safetensors is truncated: tensor lm_head.weight" $T "${ok[@]}" --init "$TMP/ck_trunc"
cp -r "$ck" "$TMP/ck_head"; printf '\xff\xff\xff\xff' | dd of="$TMP/ck_head/model.safetensors" conv=notrunc status=none
expect_error "model.safetensors is not a safetensors file (or is truncated)" $T "${ok[@]}" --init "$TMP/ck_head"
# a safetensors header whose numbers are not sizes: a negative shape entry, an offset of 1e300
st_edit() {
  cp -r "$ck" "$TMP/$1"
  "$PYTHON" -c "
import json, struct, sys
with open(sys.argv[1], 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
exec(sys.argv[2])
b = json.dumps(h).encode()
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(b)) + b + data)" "$TMP/$1/model.safetensors" "$2"
}
st_edit ck_shape "h['model.norm.weight']['shape'] = [-64]"
expect_error "tensor model.norm.weight: shape entry 0 is not a whole number from 0 to 2^53" $T "${ok[@]}" --init "$TMP/ck_shape"
st_edit ck_offset "h['model.norm.weight']['data_offsets'][1] = 1e300"
expect_error "tensor model.norm.weight: data_offsets must be two whole numbers from 0 to 2^53" $T "${ok[@]}" --init "$TMP/ck_offset"
st_edit ck_numel "h['model.norm.weight']['shape'] = [2**40, 2**40]"
expect_error "tensor model.norm.weight: its shape has more than 2^53 elements" $T "${ok[@]}" --init "$TMP/ck_numel"
# strict loading: a tensor the model does not use, and config.json fields that would change the model's function
st_edit ck_bias "h['model.layers.0.self_attn.q_proj.bias'] = dict(h['model.norm.weight'])"
expect_error "holds tensor model.layers.0.self_attn.q_proj.bias, which grass.c's LLaMA does not have" $T "${ok[@]}" --init "$TMP/ck_bias"
cfg_edit() {  # NAME PYTHON: a copy of the checkpoint whose config.json (the dict c) the statement edits
  cp -r "$ck" "$TMP/$1"
  "$PYTHON" -c "
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(c, open(sys.argv[1], 'w'))" "$TMP/$1/config.json" "$2"
}
cfg_edit ck_abias "c['attention_bias'] = True"
expect_error "attention_bias is true: grass.c's LLaMA has no q/k/v/o biases" $T "${ok[@]}" --init "$TMP/ck_abias"
cfg_edit ck_mbias "c['mlp_bias'] = True"
expect_error "mlp_bias is true" $T "${ok[@]}" --init "$TMP/ck_mbias"
cfg_edit ck_hdim "c['head_dim'] = 32"
expect_error "head_dim 32 is not hidden_size / num_attention_heads (64 / 4)" $T "${ok[@]}" --init "$TMP/ck_hdim"
cfg_edit ck_act "c['hidden_act'] = 'gelu'"
expect_error "hidden_act must be \"silu\" (the LLaMA SwiGLU), not gelu" $T "${ok[@]}" --init "$TMP/ck_act"
cfg_edit ck_yarn "c['rope_scaling'] = {'rope_type': 'yarn', 'factor': 4.0}"
expect_error "rope_scaling type \"yarn\" is not supported (supported: default, linear, llama3)" $T "${ok[@]}" --init "$TMP/ck_yarn"
cfg_edit ck_l3 "c['rope_scaling'] = {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0}"
expect_error "rope_scaling of type llama3 needs \"high_freq_factor\"" $T "${ok[@]}" --init "$TMP/ck_l3"
cfg_edit ck_tie "c['tie_word_embeddings'] = True"
expect_error "holds lm_head.weight, but its config.json ties the lm_head to model.embed_tokens.weight" $T "${ok[@]:2}" --init "$TMP/ck_tie"
cp -r "$ck" "$TMP/ck_state"; printf 'XXXXXXXX' | dd of="$TMP/ck_state/state.bin" bs=1 seek=$(($(stat -c %s "$TMP/ck_state/state.bin") - 8)) conv=notrunc status=none
expect_error "state.bin: corrupt trainer state (no end marker)" $T "${ok[@]}" --steps 5 --resume "$TMP/ck_state"
cp -r "$ck" "$TMP/ck_state2"; truncate -s 100 "$TMP/ck_state2/state.bin"
expect_error "state.bin is truncated" $T "${ok[@]}" --steps 5 --resume "$TMP/ck_state2"
cp -r "$ck" "$TMP/ck_nostate"; rm "$TMP/ck_nostate/state.bin"
expect_error "ck_nostate/state.bin (for reading): No such file" $T "${ok[@]}" --steps 5 --resume "$TMP/ck_nostate"
expect_error "is not the model --model test with the size flags gives: num_hidden_layers 2 vs 3" $T "${ok[@]}" --steps 5 --resume "$ck" --layers 3
expect_error "is not the model --model tiny gives: hidden_size 64 vs 128, num_hidden_layers 2 vs 4" $T "${ok[@]}" --model tiny --init "$ck"
# a Llama-2-7b directory differs from the 7b preset only in rms_norm_eps: the one differing field is named
mkdir -p "$TMP/llama2_7b"
cat > "$TMP/llama2_7b/config.json" << 'EOF'
{"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32, "num_key_value_heads": 32,
 "num_hidden_layers": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0}
EOF
expect_error "is not the model --model 7b gives: rms_norm_eps 1e-05 vs 1e-06 (checkpoint vs options)" $T --model 7b --init "$TMP/llama2_7b" --dry-run
cp -r "$ck" "$TMP/ck_cfg"; sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' "$TMP/ck_cfg/config.json"
expect_error "tensor model.layers.2.input_layernorm.weight is missing" $T "${ok[@]:2}" --init "$TMP/ck_cfg"
expect_error "was written with --seq 16, --seed 1337 and 32 tokens per step (--batch 2 x 1 ranks x 1 micro-batches); this run has --seq 16, --seed 1337 and 64 tokens per step" $T "${ok[@]}" --steps 5 --resume "$ck" --batch 4
expect_error "is at step 2; --steps 2 leaves nothing to do" $T "${ok[@]}" --resume "$ck"
mkdir -p "$TMP/empty"
expect_error "empty has no config.json" $T --train-data "$TMP/ok.bin" --init "$TMP/empty"
# Hugging Face's sharded form (model.safetensors.index.json naming the files): no weights at all, a missing
# shard, a tensor that no shard holds, a malformed index
mkdir -p "$TMP/ck_shard"; cp "$ck/config.json" "$TMP/ck_shard/"; cp "$ck/model.safetensors" "$TMP/ck_shard/part-1.safetensors"
expect_error "has neither model.safetensors nor model.safetensors.index.json" $T "${ok[@]:2}" --init "$TMP/ck_shard"
echo '{"metadata": {}, "weight_map": {"lm_head.weight": "part-1.safetensors", "model.norm.weight": "part-2.safetensors"}}' > "$TMP/ck_shard/model.safetensors.index.json"
expect_error "part-2.safetensors" $T "${ok[@]:2}" --init "$TMP/ck_shard"
echo '{"weight_map": {"lm_head.weight": "part-1.safetensors"}}' > "$TMP/ck_shard/model.safetensors.index.json"
"$PYTHON" -c "
import json, struct, sys
with open(sys.argv[1], 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
del h['model.norm.weight']
b = json.dumps(h).encode()
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(b)) + b + data)" "$TMP/ck_shard/part-1.safetensors"
expect_error "model.safetensors.index.json: tensor model.norm.weight is in none of its 1 files" $T "${ok[@]:2}" --init "$TMP/ck_shard"
echo '{"weight_map": ["part-1.safetensors"]}' > "$TMP/ck_shard/model.safetensors.index.json"
expect_error 'expected an object "weight_map"' $T "${ok[@]:2}" --init "$TMP/ck_shard"

echo "== the GPU trainer (where it was built): the options, shards and tokenizer are checked before any GPU is touched"
if [ -x ./train_llama ]; then
  expect_error "magic.bin is not a token shard: magic 12345" ./train_llama "${ok[@]}" --train-data "$TMP/magic.bin"
  expect_error "--val-data $TMP/nothing.bin matches no files" ./train_llama "${ok[@]}" --val-data "$TMP/nothing.bin"
  expect_error "--tokenizer: cannot open $TMP/none.model" ./train_llama "${ok[@]}" --tokenizer "$TMP/none.model"
  expect_error "unknown option --recompte (did you mean --recompute?" ./train_llama "${ok[@]}" --recompte 2
  if have_gpu; then
    echo "not checked here (this machine has a GPU): train_llama's error where there is none"
  else  # said plainly, before a memory plan it could not carry out
    expect_error "error: no CUDA GPU found (" ./train_llama "${ok[@]}"
    ! grep -q "^model: \|total" "$TMP/stdout" || { cat "$TMP/stdout"; die "train_llama printed a plan before finding no GPU"; }
    ./train_llama "${ok[@]}" --dry-run > "$TMP/stdout" || die "train_llama --dry-run fails without a GPU"
    grep -q "total" "$TMP/stdout" || die "train_llama --dry-run printed no plan without a GPU"
  fi
fi
echo "all bad inputs rejected cleanly"
