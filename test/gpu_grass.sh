# Grass on the GPU against Grass on the CPU (docs/design.md §3, §12): for every selector, 8 steps with refreshes at
# 0, 3 and 6 from the same weights and data: the fp32 build selects the same indices (the state's
# grass.sigma is byte-identical) and its losses and norms agree within 1e-4 relative (the bound of
# test/gpu_train.sh); the bf16 build's losses within 2e-2, and its gradient norms within 2e-2 for topr. With
# the sampling selectors the bf16 norms get 1e-1: the rows a refresh draws depend on the row norms, which
# carry bf16's error, so a bf16 run may draw a few rows the CPU did not, and until the next refresh the
# compressed gradient's norm depends on which rows were drawn (multinorm weighs each by 1 / sqrt(r q)).
# The fp32 build also with 2 micro-batches per step, with the side forced (rows, columns) so that the
# ffn of the test preset, 172 stored padded to 176 on the GPU, is the other dimension E of down_proj (rows)
# or of gate_proj and up_proj (columns), and without GQA (q, k and v in one batched product). Then exact resume across a refresh on the GPU.
# The logs are compared by test/log_compare.py (every step and field present, relative differences).
# On the CPU emulator (GPU_EMU=1: test/t_emu_grass.sh) the runs are shorter, where a GPU runs them in no time:
# 5 steps (refreshes at 0 and 3, and two steps of the second selection's restarted moments) and resume 4 + 3
# across the refresh at 6; and of the runs that repeat a code path another covers, only one runs there:
#  - fp32: multinorm, a selector that draws with replacement (repeated indices, which the update scatters, and
#    scales other than 1); the other selectors run the same GPU code with other indices and scales, which
#    test/t_emu_tensors.sh compares with the CPU trainer's (indices identical, and the refresh's and the next
#    step's compressed gradients) for every selector;
#  - bf16: topr (the --profile run's reference) and multinorm (the reverse-order run's); the other selectors'
#    bf16 runs differ from these only in the host's selection, which is the fp32 runs' code (grass.h);
#  - without GQA on the GPU only: test/t_emu_tensors.sh compares the batched q, k, v compressed gradients (and
#    the refresh) of both builds without GQA tensor by tensor; the update after them is the GQA runs'.
source test/lib.sh
source test/lib_gpu.sh
selectors="topr multinorm multinorm-nr uniform uniform-nr"
if [ "${GPU_EMU:-0}" = 1 ]; then
  steps=5 resume_steps=7 fp32_selectors=multinorm bf16_selectors="topr multinorm"
else
  steps=8 resume_steps=10 fp32_selectors=$selectors bf16_selectors=$selectors
fi
final=$(printf 'ckpt_%08d' $steps)
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 40000 --vocab 512
args=(--model test --train-data "$TMP/train.bin" --batch 4 --seq 64 --steps $steps --warmup 2 --lr 3e-3 --weight-decay 0.1
      --eval-every 0 --optimizer grass --grass-rank 12 --grass-interval 3)
compare() {  # A B LOSS_BOUND NORM_BOUND
  "$PYTHON" test/log_compare.py compare "$1/log.jsonl" "$2/log.jsonl" --steps $steps --name "$2" \
    --bound loss=$3 --bound norm=$4 || die "$2 differs from $1"
}
for sel in $selectors; do
  [[ " $fp32_selectors $bf16_selectors " == *" $sel "* ]] || continue
  ./train_llama_cpu "${args[@]}" --grass-select $sel --out "$TMP/cpu_$sel" > /dev/null
  if [[ " $fp32_selectors " == *" $sel "* ]]; then
    "$TRAIN_GPU_FP32" "${args[@]}" --grass-select $sel --out "$TMP/fp32_$sel" > /dev/null
    compare "$TMP/cpu_$sel" "$TMP/fp32_$sel" 1e-4 1e-4
    test/bin/test_reference section "$TMP/cpu_$sel/$final/state.bin" "$TMP/fp32_$sel/$final/state.bin" grass.sigma
  fi
  if [[ " $bf16_selectors " == *" $sel "* ]]; then
    # rank 12: sel padded to 16. The checkpoint of multinorm's is t_emu_grass's reference, topr's is not read
    ckpt=(); [ $sel = multinorm ] || ckpt=(--ckpt-every -1)
    gpu_aligned "$TRAIN_GPU" "${args[@]}" --grass-select $sel "${ckpt[@]}" --out "$TMP/bf16_$sel" > /dev/null
    compare "$TMP/cpu_$sel" "$TMP/bf16_$sel" 2e-2 $([ $sel = topr ] && echo 2e-2 || echo 1e-1)
  fi
done
# --profile under Grass: the same training bit for bit; time for the compressed gradients and the refreshes (the
# refreshes after the first step are profiled), none for full weight-gradient products
"$TRAIN_GPU" "${args[@]}" --grass-select topr --ckpt-every -1 --out "$TMP/bf16_prof" --profile | tee "$TMP/prof.txt" | grep '^profile:'
diff <(log_untimed "$TMP/bf16_topr/log.jsonl") <(log_untimed "$TMP/bf16_prof/log.jsonl") || die "--profile changed the Grass training"
grep -Eq '^profile: grass compressed gradient +[0-9.]+ ms' "$TMP/prof.txt" || die "--profile: no time for Grass's compressed gradients"
grep -Eq '^profile: grass refresh +[0-9.]+ ms' "$TMP/prof.txt" || die "--profile: no time for Grass's refreshes"
! grep -q '^profile: matmul backward (weights)' "$TMP/prof.txt" || die "--profile: full weight gradients under Grass"
# the side forced: the padded ffn is E, the length of each selected row or column. --eps 1e-6: with 1e-8, Adam's
# first step after a refresh turns a compressed-gradient entry of ~1e-8 (this run has them, as AdamW's embedding
# has at step 1) into an update of about lr whatever its last bits, so fp32 summation order alone moves the norms
# by about 1e-3 by step 8 and makes a later refresh draw other rows.
for side in rows cols; do
  ./train_llama_cpu "${args[@]}" --grass-select multinorm --grass-side $side --eps 1e-6 --out "$TMP/cpu_$side" > /dev/null
  "$TRAIN_GPU_FP32" "${args[@]}" --grass-select multinorm --grass-side $side --eps 1e-6 --out "$TMP/fp32_$side" > /dev/null
  compare "$TMP/cpu_$side" "$TMP/fp32_$side" 1e-4 1e-4
  test/bin/test_reference section "$TMP/cpu_$side/$final/state.bin" "$TMP/fp32_$side/$final/state.bin" grass.sigma
done
# without GQA (--kv-heads 4) q, k and v have one shape and read one input: the GPU computes their compressed
# gradients in one batched product of 3 (grass.cuh's grass_group_size), as for the presets
if [ "${GPU_EMU:-0}" != 1 ]; then
  ./train_llama_cpu "${args[@]}" --kv-heads 4 --grass-select multinorm --eps 1e-6 --out "$TMP/cpu_mha" > /dev/null
  gpu_aligned "$TRAIN_GPU_FP32" "${args[@]}" --kv-heads 4 --grass-select multinorm --eps 1e-6 --out "$TMP/fp32_mha" > /dev/null
  compare "$TMP/cpu_mha" "$TMP/fp32_mha" 1e-4 1e-4
  test/bin/test_reference section "$TMP/cpu_mha/$final/state.bin" "$TMP/fp32_mha/$final/state.bin" grass.sigma
fi
# gradient accumulation (2 micro-batches): the refresh takes micro-batch 0's full gradient once
./train_llama_cpu "${args[@]}" --grass-select multinorm --total-batch 512 --out "$TMP/cpu_accum" > /dev/null
"$TRAIN_GPU_FP32" "${args[@]}" --grass-select multinorm --total-batch 512 --out "$TMP/fp32_accum" > /dev/null
compare "$TMP/cpu_accum" "$TMP/fp32_accum" 1e-4 1e-4
test/bin/test_reference section "$TMP/cpu_accum/$final/state.bin" "$TMP/fp32_accum/$final/state.bin" grass.sigma
# exact resume from step 4 across the refresh at 6 (and at 9 on a GPU)
last=$(printf 'ckpt_%08d' $resume_steps)
"$TRAIN_GPU" "${args[@]}" --steps $resume_steps --ckpt-every 4 --out "$TMP/straight"
"$TRAIN_GPU" "${args[@]}" --steps $resume_steps --resume "$TMP/straight/ckpt_00000004" --out "$TMP/resumed"
cmp "$TMP/straight/$last/model.safetensors" "$TMP/resumed/$last/model.safetensors" || die "GPU Grass resume: weights differ"
echo "ok: GPU Grass 4 + resume + $((resume_steps - 4)) (across the refresh at 6) is bit-identical to $resume_steps straight"
