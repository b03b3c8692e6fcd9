# Checkpoint and resume: 20 steps straight vs 10 + resume + 10 give bit-identical losses, gradient norms,
# validation losses and final weights (with gradient accumulation and shuffled multi-shard data). Then a run
# killed with SIGKILL at arbitrary moments (possibly inside a checkpoint write) and resumed with
# --resume auto ends with the same weights, bit for bit.
source test/lib.sh
for i in 0 1 2; do "$PYTHON" test/shard_tool.py "$TMP/train_$i.bin" --tokens 3000 --vocab 512 --seed $i; done
"$PYTHON" test/shard_tool.py "$TMP/val.bin" --tokens 3000 --vocab 512 --seed 9
args=(--model test --train-data "$TMP/train_*.bin" --val-data "$TMP/val.bin" --batch 2 --seq 32 --total-batch 128
      --steps 20 --warmup 3 --lr 3e-3 --weight-decay 0.1 --eval-every 5 --eval-batches 4)
./train_llama_cpu "${args[@]}" --ckpt-every 10 --out "$TMP/straight"
./train_llama_cpu "${args[@]}" --resume "$TMP/straight/ckpt_00000010" --out "$TMP/resumed"

# the log lines of steps 11..20 (ms and tok/s aside) must be identical
strip() { log_untimed "$1" | grep -v '"step": \([0-9]\|10\),'; }
diff <(strip "$TMP/straight/log.jsonl") <(strip "$TMP/resumed/log.jsonl") || die "resumed run's log differs"
[ "$(strip "$TMP/resumed/log.jsonl" | grep -c '"loss"')" -eq 10 ] || die "expected 10 resumed steps"
cmp "$TMP/straight/ckpt_00000020/model.safetensors" "$TMP/resumed/ckpt_00000020/model.safetensors" || die "final weights differ"
cmp "$TMP/straight/ckpt_00000020/state.bin" "$TMP/resumed/ckpt_00000020/state.bin" || die "final optimizer state differs"
echo "ok: 10 + resume + 10 is bit-identical to 20 straight"

# crash at arbitrary moments: checkpoint every step, SIGKILL, resume auto, until done
ls "$TMP/straight"
for delay in 0.35 0.2 0.5 0.3 0.45; do
  ./train_llama_cpu "${args[@]}" --ckpt-every 1 --resume auto --out "$TMP/killed" > /dev/null &
  pid=$!
  sleep $delay
  kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  echo "after $delay s: $(ls "$TMP/killed" 2> /dev/null | tr '\n' ' ')"
done
# a half-written checkpoint (what a kill inside a save leaves) is never taken for a complete one
mkdir -p "$TMP/killed/ckpt_00000099.tmp" && echo garbage > "$TMP/killed/ckpt_00000099.tmp/model.safetensors"
./train_llama_cpu "${args[@]}" --ckpt-every 1 --resume auto --out "$TMP/killed" || true  # may already be done
[ -d "$TMP/killed/ckpt_00000020" ] || die "killed run never finished"
cmp "$TMP/straight/ckpt_00000020/model.safetensors" "$TMP/killed/ckpt_00000020/model.safetensors" || die "killed+resumed weights differ"
echo "ok: killed and resumed runs end bit-identical"
