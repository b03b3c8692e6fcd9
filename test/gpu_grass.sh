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
source test/lib.sh
source test/lib_gpu.sh
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 40000 --vocab 512
args=(--model test --train-data "$TMP/train.bin" --batch 4 --seq 64 --steps 8 --warmup 2 --lr 3e-3 --weight-decay 0.1
      --eval-every 0 --optimizer grass --grass-rank 12 --grass-interval 3)
compare() {  # A B LOSS_BOUND NORM_BOUND
  paste <(grep -o '"\(loss\|norm\)": [0-9.e+-]*' "$1/log.jsonl") <(grep -o '"\(loss\|norm\)": [0-9.e+-]*' "$2/log.jsonl") |
    awk -v lb=$3 -v nb=$4 -v name="$2" '$1 != $3 {exit 1}
      {a = $2 + 0; c = $4 + 0; d = (a > c ? a - c : c - a) / a; if ($1 ~ /loss/) {if (d > ml) ml = d} else if (d > mn) mn = d; n++}
      END {printf "%s: %d values, largest relative difference: losses %.2e (bound %g), norms %.2e (bound %g)\n", name, n, ml, lb, mn, nb
           exit !(n == 16 && ml <= lb && mn <= nb)}' ||
    die "$2 differs from $1"
}
for sel in topr multinorm multinorm-nr uniform uniform-nr; do
  ./train_llama_cpu "${args[@]}" --grass-select $sel --out "$TMP/cpu_$sel" > /dev/null
  "$TRAIN_GPU_FP32" "${args[@]}" --grass-select $sel --out "$TMP/fp32_$sel" > /dev/null
  gpu_aligned "$TRAIN_GPU" "${args[@]}" --grass-select $sel --out "$TMP/bf16_$sel" > /dev/null  # rank 12: sel padded to 16
  compare "$TMP/cpu_$sel" "$TMP/fp32_$sel" 1e-4 1e-4
  compare "$TMP/cpu_$sel" "$TMP/bf16_$sel" 2e-2 $([ $sel = topr ] && echo 2e-2 || echo 1e-1)
  test/bin/test_reference section "$TMP/cpu_$sel/ckpt_00000008/state.bin" "$TMP/fp32_$sel/ckpt_00000008/state.bin" grass.sigma
done
# --profile under Grass: the same training bit for bit; time for the compressed gradients and the refreshes (steps
# 3 and 6 are profiled), none for full weight-gradient products
"$TRAIN_GPU" "${args[@]}" --grass-select topr --out "$TMP/bf16_prof" --profile | tee "$TMP/prof.txt" | grep '^profile:'
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
  test/bin/test_reference section "$TMP/cpu_$side/ckpt_00000008/state.bin" "$TMP/fp32_$side/ckpt_00000008/state.bin" grass.sigma
done
# without GQA (--kv-heads 4) q, k and v have one shape and read one input: the GPU computes their compressed
# gradients in one batched product of 3 (grass.cuh's grass_group_size), as for the presets
./train_llama_cpu "${args[@]}" --kv-heads 4 --grass-select multinorm --eps 1e-6 --out "$TMP/cpu_mha" > /dev/null
gpu_aligned "$TRAIN_GPU_FP32" "${args[@]}" --kv-heads 4 --grass-select multinorm --eps 1e-6 --out "$TMP/fp32_mha" > /dev/null
compare "$TMP/cpu_mha" "$TMP/fp32_mha" 1e-4 1e-4
test/bin/test_reference section "$TMP/cpu_mha/ckpt_00000008/state.bin" "$TMP/fp32_mha/ckpt_00000008/state.bin" grass.sigma
# gradient accumulation (2 micro-batches): the refresh takes micro-batch 0's full gradient once
./train_llama_cpu "${args[@]}" --grass-select multinorm --total-batch 512 --out "$TMP/cpu_accum" > /dev/null
"$TRAIN_GPU_FP32" "${args[@]}" --grass-select multinorm --total-batch 512 --out "$TMP/fp32_accum" > /dev/null
compare "$TMP/cpu_accum" "$TMP/fp32_accum" 1e-4 1e-4
test/bin/test_reference section "$TMP/cpu_accum/ckpt_00000008/state.bin" "$TMP/fp32_accum/ckpt_00000008/state.bin" grass.sigma
"$TRAIN_GPU" "${args[@]}" --steps 10 --ckpt-every 4 --out "$TMP/straight"
"$TRAIN_GPU" "${args[@]}" --steps 10 --resume "$TMP/straight/ckpt_00000004" --out "$TMP/resumed"
cmp "$TMP/straight/ckpt_00000010/model.safetensors" "$TMP/resumed/ckpt_00000010/model.safetensors" || die "GPU Grass resume: weights differ"
echo "ok: GPU Grass 4 + resume + 6 (refreshes at 6 and 9) is bit-identical to 10 straight"
