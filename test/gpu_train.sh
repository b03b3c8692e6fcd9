# The GPU trainer against the CPU trainer (docs/design.md §12), from the same initial weights on the same data:
#  - the fp32 build: 10 AdamW steps' losses and gradient norms within 1e-4 relative (fp32 with other
#    summation orders and cuBLAS's blocking: ~1e-6 per step, grown by Adam's normalisation of near-zero
#    gradients; the CPU-vs-PyTorch comparison measured 2e-5 for the norms over 8 steps);
#  - the fp32 build with 3 micro-batches per step against the CPU trainer with the same;
#  - the test preset's ffn 172 is stored padded to 176: no product runs with unaligned rows (gpu_aligned), and
#    the comparisons, the HF check and the CPU resume below show that the padding changes nothing;
#  - the bf16 build: losses within 2e-2 relative (bf16 keeps 8 bits: 4e-3 relative per rounding, through a few
#    layers and 10 updates of bf16 weights), with fp32 master weights and with stochastic rounding;
#  - exact resume: 10 + resume + 10 steps equal 20 straight, bit for bit (the kernels are deterministic);
#  - a checkpoint written by the GPU trainer loads in transformers with the CPU trainer's logits
#    (test/hf_compare.py bounds), and resumes in the CPU trainer.
source test/lib.sh
source test/lib_gpu.sh
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 40000 --vocab 512
"$PYTHON" test/shard_tool.py "$TMP/val.bin" --tokens 8000 --vocab 512 --seed 2
args=(--model test --train-data "$TMP/train.bin" --val-data "$TMP/val.bin" --batch 4 --seq 64 --steps 10 --warmup 2
      --lr 3e-3 --weight-decay 0.1 --eval-every 5 --eval-batches 4)
./train_llama_cpu "${args[@]}" --out "$TMP/cpu"
compare() {  # NAME BOUND [REFERENCE]: the run's losses and norms against the CPU trainer's (run $TMP/cpu by default)
  local ref=${3:-cpu}
  paste <(grep -o '"\(val_loss\|loss\|norm\)": [0-9.e+-]*' "$TMP/$ref/log.jsonl") <(grep -o '"\(val_loss\|loss\|norm\)": [0-9.e+-]*' "$TMP/$1/log.jsonl") |
    awk -v b=$2 -v name=$1 '$1 != $3 {exit 1} {a = $2 + 0; c = $4 + 0; d = (a > c ? a - c : c - a) / a; if (d > m) m = d; n++}
      END {printf "%s: %d values, largest relative difference %.2e (bound %g)\n", name, n, m, b; exit !(n == 23 && m <= b)}' ||
    die "$1 differs from the CPU trainer"
}
gpu_aligned "$TRAIN_GPU_FP32" "${args[@]}" --out "$TMP/fp32" --recompute 0
compare fp32 1e-4
"$TRAIN_GPU_FP32" "${args[@]}" --out "$TMP/fp32_r2" --recompute 2
compare fp32_r2 1e-4
gpu_aligned "$TRAIN_GPU" "${args[@]}" --out "$TMP/bf16"
compare bf16 2e-2
# where the step time went (CUDA events inside the step): three positive phases within the step's wall time
grep '"loss"' "$TMP/bf16/log.jsonl" | sed 's/.*"ms": \([0-9.]*\),.*"forward_ms": \([0-9.]*\), "backward_ms": \([0-9.]*\), "optimizer_ms": \([0-9.]*\).*/\1 \2 \3 \4/' |
  awk '{n++; if (NF == 4 && $2 > 0 && $3 > 0 && $4 > 0 && $2 + $3 + $4 <= $1 * 1.001 + 0.01) ok++}
       END {printf "phases: %d of %d steps have forward, backward and optimizer times within the step\n", ok, n; exit !(n == 10 && ok == n)}' ||
  die "the step's phase times are missing or exceed the step"
# --profile: the same training bit for bit, and a table of GPU time by kind of work, with every kind of AdamW's
# step present, none of Grass's, and a total equal to the phases' (both are CUDA events around the same work)
"$TRAIN_GPU" "${args[@]}" --out "$TMP/bf16_prof" --profile | tee "$TMP/prof.txt" | grep '^profile:'
diff <(log_untimed "$TMP/bf16/log.jsonl") <(log_untimed "$TMP/bf16_prof/log.jsonl") || die "--profile changed the training"
for kind in "embedding" "rmsnorm" "matmul forward" "rope" "attention forward" "swiglu" "lm_head + loss" \
            "matmul backward (inputs)" "matmul backward (weights)" "attention backward" "gradient norm" "optimizer update"; do
  grep -Eq "^profile: $(sed 's/[()+]/\\&/g' <<< "$kind") +[0-9.]+ ms" "$TMP/prof.txt" || die "--profile: no time for $kind"
done
! grep -q "^profile: grass" "$TMP/prof.txt" || die "--profile: Grass work in an AdamW run"
phases=$(grep '"loss"' "$TMP/bf16_prof/log.jsonl" | tail -n +2 |
  sed 's/.*"forward_ms": \([0-9.]*\), "backward_ms": \([0-9.]*\), "optimizer_ms": \([0-9.]*\).*/\1 \2 \3/' |
  awk '{s += $1 + $2 + $3; n++} END {printf "%.4f", s / n}')
awk -v p="$phases" '/^profile: total/ {t = $3} END {d = t > p ? t - p : p - t; printf "profile total %.3f ms, phases %.3f ms per step\n", t, p;
  exit !(t > 0 && d <= 0.01 * p + 0.05)}' "$TMP/prof.txt" || die "--profile: the total differs from the step's phases"
"$TRAIN_GPU" "${args[@]}" --out "$TMP/bf16_sr" --master-weights 0 --state-dtype bf16
compare bf16_sr 2e-2
# gradient accumulation: 3 micro-batches per step
./train_llama_cpu "${args[@]}" --total-batch 768 --out "$TMP/cpu_accum" > /dev/null
"$TRAIN_GPU_FP32" "${args[@]}" --total-batch 768 --out "$TMP/fp32_accum"
compare fp32_accum 1e-4 cpu_accum

# exact resume on the GPU
"$TRAIN_GPU" "${args[@]}" --steps 20 --ckpt-every 10 --out "$TMP/straight"
"$TRAIN_GPU" "${args[@]}" --steps 20 --resume "$TMP/straight/ckpt_00000010" --out "$TMP/resumed"
strip() { log_untimed "$1" | grep -v '"step": \([0-9]\|10\),'; }
diff <(strip "$TMP/straight/log.jsonl") <(strip "$TMP/resumed/log.jsonl") || die "GPU resume differs"
cmp "$TMP/straight/ckpt_00000020/model.safetensors" "$TMP/resumed/ckpt_00000020/model.safetensors" || die "GPU resume: weights differ"
echo "ok: GPU 10 + resume + 10 is bit-identical to 20 straight"

# the GPU checkpoint in transformers, and in the CPU trainer
if "$PYTHON" -c "import transformers" 2> /dev/null; then
  test/bin/test_reference dump "$TMP/straight/ckpt_00000020" "$TMP/dump.safetensors" 3 32 7
  "$PYTHON" test/hf_compare.py "$TMP/straight/ckpt_00000020" "$TMP/dump.safetensors"
else
  echo "transformers missing: the HF check of the GPU checkpoint did not run"; exit 1
fi
./train_llama_cpu "${args[@]}" --steps 21 --resume "$TMP/straight/ckpt_00000020" --out "$TMP/cpu_resume"
echo "ok: the GPU checkpoint resumes in the CPU trainer"
