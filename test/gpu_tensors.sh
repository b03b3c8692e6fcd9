# The GPU model against the CPU trainer on one batch, tensor by tensor (test/test_tensors.cu, in the manner of
# llm.c's test_gpt2.cu): from the CPU trainer's weights (test/tensors_cpu.c writes them and its tensors), the
# logits, the loss, every parameter's gradient (the padding of the stored ffn 172 -> 176 exactly zero), and under
# Grass the refresh's selection (indices and scales), the compressed gradients it takes, and the next step's
# compressed gradients from the selection. Bounds beside the checks in test/test_tensors.cu: fp32 the CPU
# trainer's own against PyTorch (1e-5 forward, 1e-4 gradients; indices identical); bf16 from its 8-bit mantissa
# (2e-2 forward, 5e-2 gradients). The cases: both builds with AdamW at recompute 0, 1 and 2; every selector (fp32),
# both sides forced (the padded ffn as the other dimension E), and MHA (q, k, v compressed in one batched product);
# bf16 with topr, the selector whose indices bf16 can be checked on (ties within its error); the Llama-3 options
# (below). No product may run with unaligned rows (gpu_aligned). Then a perturbed weight must be reported.
source test/lib.sh
source test/lib_gpu.sh
[ -x "$TENSORS_GPU" ] && [ -x "$TENSORS_GPU_FP32" ] || skip "test_tensors was not built (make gpu-tests, part of make test-gpu)"
model=(--model test --batch 2 --seq 64)
grass=(--optimizer grass --grass-rank 12 --grass-interval 3)  # rank 12: the gathered columns padded to 16
cases=0
check() {  # BINARY NAME RECOMPUTE OPTIONS...: the CPU trainer's tensors for the options, the GPU build's against them
  local bin=$1 name=$2 recompute=$3; shift 3
  test/bin/tensors_cpu "${model[@]}" "$@" --out "$TMP/$name" > /dev/null
  if ! (gpu_aligned "$bin" "${model[@]}" "$@" --recompute "$recompute" --out "$TMP/$name" > "$TMP/$name.txt"); then
    cat "$TMP/$name.txt"
    die "$name: the GPU model differs from the CPU trainer"
  fi
  awk -v name="$name" '$1 == "ok" {n++; r = $(NF - 2) / ($NF > 0 ? $NF : 1); if ($NF > 0 && r > w) w = r}
    END {printf "ok: %s: %d tensors within their bounds (the closest at %.0f%% of its bound)\n", name, n, 100 * w}' "$TMP/$name.txt"
  cases=$((cases + 1))
}
for r in 0 1 2; do
  check "$TENSORS_GPU_FP32" fp32_adamw_r$r $r
  check "$TENSORS_GPU" bf16_adamw_r$r $r
done
for sel in topr multinorm multinorm-nr uniform uniform-nr; do
  check "$TENSORS_GPU_FP32" fp32_$sel 1 "${grass[@]}" --grass-select $sel
done
for side in rows cols; do
  check "$TENSORS_GPU_FP32" fp32_multinorm_$side 1 "${grass[@]}" --grass-select multinorm --grass-side $side
  check "$TENSORS_GPU" bf16_topr_$side 1 "${grass[@]}" --grass-side $side
done
check "$TENSORS_GPU_FP32" fp32_multinorm_mha 2 "${grass[@]}" --grass-select multinorm --kv-heads 4
check "$TENSORS_GPU" bf16_topr 0 "${grass[@]}"
check "$TENSORS_GPU" bf16_topr_mha 2 "${grass[@]}" --kv-heads 4

# The Llama-3 options. Tied embeddings: one V x d matrix is the embedding and the lm_head, its gradient the sum of
# the lm_head's product and the embedding backward (every row gets the former, the batch's tokens also the latter).
# llama3 RoPE scaling at theta 5e5 with original_max_position_embeddings 48 < seq 64: of the 8 frequencies of head
# dim 16 (wavelengths 6.3, 32, 167 ...) one is kept (below 48 / high 4), one blended (between), six divided by the
# factor 8 (above 48 / low 1). Linear scaling (factor 2) with an untied lm_head. Both builds at every recompute
# level (1 with 2 micro-batches), Grass in both builds; steps of 2 micro-batches (TEST_TENSORS_MICRO: the same batch
# twice, each with half the loss), whose tied gradient must accumulate over both uses and both micro-batches.
llama3_config "$TMP/tied_llama3.json" true 500000.0 \
  '{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 48}'
llama3_config "$TMP/linear2.json" false 10000.0 '{"rope_type": "linear", "factor": 2.0}'
for r in 0 2; do
  check "$TENSORS_GPU_FP32" fp32_tied_llama3_r$r $r --model "$TMP/tied_llama3.json"
  check "$TENSORS_GPU" bf16_tied_llama3_r$r $r --model "$TMP/tied_llama3.json"
done
TEST_TENSORS_MICRO=2 check "$TENSORS_GPU_FP32" fp32_tied_llama3_micro2 1 --model "$TMP/tied_llama3.json"
TEST_TENSORS_MICRO=2 check "$TENSORS_GPU" bf16_tied_llama3_micro2 1 --model "$TMP/tied_llama3.json"
TEST_TENSORS_MICRO=2 check "$TENSORS_GPU_FP32" fp32_tied_llama3_multinorm_micro2 1 "${grass[@]}" --grass-select multinorm \
  --model "$TMP/tied_llama3.json"
TEST_TENSORS_MICRO=2 check "$TENSORS_GPU" bf16_tied_llama3_topr_micro2 2 "${grass[@]}" --model "$TMP/tied_llama3.json"
check "$TENSORS_GPU_FP32" fp32_linear2 1 --model "$TMP/linear2.json"
check "$TENSORS_GPU" bf16_linear2_topr 0 "${grass[@]}" --model "$TMP/linear2.json"

# The test sees a wrong weight: 1 added to one entry of layer 1's down_proj (entries ~0.02) must fail the logits
# and the gradients of layer 1's gate and up (which it scales) in both builds.
for build in fp32_adamw_r1 bf16_adamw_r1; do
  bin=$TENSORS_GPU; [ ${build%%_*} = fp32 ] && bin=$TENSORS_GPU_FP32
  rc=0
  TEST_TENSORS_PERTURB=model.layers.1.mlp.down_proj.weight "$bin" "${model[@]}" --out "$TMP/$build" > "$TMP/perturbed.txt" || rc=$?
  [ $rc = 1 ] || die "$build: a perturbed weight gave exit $rc, not 1"
  for t in logits grad.model.layers.1.mlp.gate_proj.weight grad.model.layers.1.mlp.up_proj.weight; do
    grep -q "^FAIL $t " "$TMP/perturbed.txt" || die "$build: a perturbed weight did not fail $t"
  done
  echo "ok: $build: a perturbed weight is reported: exit 1, $(grep -c '^FAIL ' "$TMP/perturbed.txt") tensors FAIL"
done
echo "ok: $cases cases of the GPU model within their bounds of the CPU trainer, tensor by tensor"
