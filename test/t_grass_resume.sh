# Grass checkpoints: with a refresh every 4 steps, 10 steps + resume + 10 (the checkpoint falls inside an
# interval, the resumed part crosses the refreshes at 12 and 16) is bit-identical to 20 straight, for a
# with-replacement and a without-replacement selector; the indices, scales and moments are in the state.
source test/lib.sh
for i in 0 1; do "$PYTHON" test/shard_tool.py "$TMP/train_$i.bin" --tokens 4000 --vocab 512 --seed $i; done
for sel in multinorm uniform-nr; do
  args=(--model test --train-data "$TMP/train_*.bin" --batch 2 --seq 32 --total-batch 128 --steps 20 --warmup 3
        --lr 3e-3 --weight-decay 0.1 --optimizer grass --grass-rank 12 --grass-interval 4 --grass-select $sel)
  ./train_llama_cpu "${args[@]}" --ckpt-every 10 --out "$TMP/straight_$sel"
  ./train_llama_cpu "${args[@]}" --resume "$TMP/straight_$sel/ckpt_00000010" --out "$TMP/resumed_$sel"
  strip() { log_untimed "$1" | grep -v '"step": \([0-9]\|10\),'; }
  diff <(strip "$TMP/straight_$sel/log.jsonl") <(strip "$TMP/resumed_$sel/log.jsonl") || die "$sel: resumed log differs"
  cmp "$TMP/straight_$sel/ckpt_00000020/model.safetensors" "$TMP/resumed_$sel/ckpt_00000020/model.safetensors" || die "$sel: weights differ"
  cmp "$TMP/straight_$sel/ckpt_00000020/state.bin" "$TMP/resumed_$sel/ckpt_00000020/state.bin" || die "$sel: state differs"
  echo "ok: $sel: 10 + resume + 10 across refreshes is bit-identical to 20 straight"
done
# resuming with other Grass settings is refused
expect_error "was written with --optimizer grass --grass-select uniform-nr" ./train_llama_cpu "${args[@]}" \
  --grass-select topr --resume "$TMP/straight_uniform-nr/ckpt_00000010"
expect_error "was written with --optimizer grass" ./train_llama_cpu --model test --train-data "$TMP/train_*.bin" --batch 2 \
  --seq 32 --total-batch 128 --steps 20 --resume "$TMP/straight_uniform-nr/ckpt_00000010"
