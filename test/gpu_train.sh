# The GPU trainer against the CPU trainer (docs/design.md §12), from the same initial weights on the same data:
#  - the fp32 build: 10 AdamW steps' losses and gradient norms within 1e-4 relative (fp32 with other
#    summation orders and cuBLAS's blocking: ~1e-6 per step, grown by Adam's normalisation of near-zero
#    gradients; the CPU-vs-PyTorch comparison measured 2e-5 for the norms over 8 steps), at recompute 0 and 2;
#  - the fp32 build with 3 micro-batches per step against the CPU trainer with the same;
#  - the test preset's ffn 172 is stored padded to 176: no product runs with unaligned rows (gpu_aligned), and
#    the comparisons and the CPU resume below show that the padding changes nothing;
#  - the bf16 build: losses within 2e-2 relative (bf16 keeps 8 bits: 4e-3 relative per rounding, through a few
#    layers and 10 updates of bf16 weights), with fp32 master weights and with stochastic rounding;
#  - exact resume: 10 + resume + 10 steps equal 20 straight, bit for bit (the kernels are deterministic);
#  - the bf16 build's checkpoint holds its bf16 weights in model.safetensors and the fp32 master weights in state.bin's
#    master.f32, each weight the master's value rounded to bf16;
#  - a checkpoint written by the GPU trainer resumes in the CPU trainer, from the master weights (test/gpu_hf.sh loads
#    one in transformers).
# The logs are compared by test/log_compare.py (every step and field present, relative differences).
# On the CPU emulator (GPU_EMU=1: test/t_emu_train.sh) the runs are shorter, where a GPU runs them in no time:
# 4 steps (2 of warmup, 2 of decay) with evaluations of 2 batches at 0, 2 and 4, and resume 4 + 4 = 8; and
# recompute 2 runs on the GPU only: test/t_emu_tensors.sh compares its forward and backward (the only parts
# recompute changes) with the CPU trainer tensor by tensor in both builds, and the optimizer steps after them
# are the recompute-0 run's.
source test/lib.sh
source test/lib_gpu.sh
if [ "${GPU_EMU:-0}" = 1 ]; then steps=4 eval_every=2 eval_batches=2; else steps=10 eval_every=5 eval_batches=4; fi
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 40000 --vocab 512
"$PYTHON" test/shard_tool.py "$TMP/val.bin" --tokens 8000 --vocab 512 --seed 2
args=(--model test --train-data "$TMP/train.bin" --val-data "$TMP/val.bin" --batch 4 --seq 64 --steps $steps --warmup 2
      --lr 3e-3 --weight-decay 0.1 --eval-every $eval_every --eval-batches $eval_batches)
./train_llama_cpu "${args[@]}" --out "$TMP/cpu"
compare() {  # NAME BOUND [REFERENCE]: the run's losses, norms and validation losses against the CPU trainer's (run $TMP/cpu by default)
  "$PYTHON" test/log_compare.py compare "$TMP/${3:-cpu}/log.jsonl" "$TMP/$1/log.jsonl" --steps $steps --name $1 \
    --bound loss=$2 --bound norm=$2 --bound val_loss=$2 || die "$1 differs from the CPU trainer"
}
gpu_aligned "$TRAIN_GPU_FP32" "${args[@]}" --out "$TMP/fp32" --recompute 0
compare fp32 1e-4
if [ "${GPU_EMU:-0}" != 1 ]; then
  "$TRAIN_GPU_FP32" "${args[@]}" --out "$TMP/fp32_r2" --recompute 2
  compare fp32_r2 1e-4
fi
gpu_aligned "$TRAIN_GPU" "${args[@]}" --out "$TMP/bf16"
compare bf16 2e-2
# where the step time went (CUDA events inside the step): three positive phases within the step's wall time
"$PYTHON" test/log_compare.py phases "$TMP/bf16/log.jsonl" --steps $steps || die "the step's phase times are missing or exceed the step"
# --profile: the same training bit for bit, and a table of GPU time by kind of work, with every kind of AdamW's
# step present, none of Grass's, and a total equal to the phases' (both are CUDA events around the same work)
"$TRAIN_GPU" "${args[@]}" --ckpt-every -1 --out "$TMP/bf16_prof" --profile | tee "$TMP/prof.txt" | grep '^profile:'
diff <(log_untimed "$TMP/bf16/log.jsonl") <(log_untimed "$TMP/bf16_prof/log.jsonl") || die "--profile changed the training"
for kind in "embedding" "rmsnorm" "matmul forward" "rope" "attention forward" "swiglu" "lm_head + loss" \
            "matmul backward (inputs)" "matmul backward (weights)" "attention backward" "gradient norm" "optimizer update"; do
  grep -Eq "^profile: $(sed 's/[()+]/\\&/g' <<< "$kind") +[0-9.]+ ms" "$TMP/prof.txt" || die "--profile: no time for $kind"
done
! grep -q "^profile: grass" "$TMP/prof.txt" || die "--profile: Grass work in an AdamW run"
phases=$("$PYTHON" test/log_compare.py mean "$TMP/bf16_prof/log.jsonl" forward_ms+backward_ms+optimizer_ms --from-step 2)
awk -v p="$phases" '/^profile: total/ {t = $3} END {d = t > p ? t - p : p - t; printf "profile total %.3f ms, phases %.3f ms per step\n", t, p;
  exit !(t > 0 && d <= 0.01 * p + 0.05)}' "$TMP/prof.txt" || die "--profile: the total differs from the step's phases"
"$TRAIN_GPU" "${args[@]}" --out "$TMP/bf16_sr" --master-weights 0 --state-dtype bf16
compare bf16_sr 2e-2
# gradient accumulation: 3 micro-batches per step (no checkpoint: the others write and read them)
./train_llama_cpu "${args[@]}" --total-batch 768 --ckpt-every -1 --out "$TMP/cpu_accum" > /dev/null
"$TRAIN_GPU_FP32" "${args[@]}" --total-batch 768 --ckpt-every -1 --out "$TMP/fp32_accum"
compare fp32_accum 1e-4 cpu_accum

# exact resume on the GPU: steps + resume + steps against 2 x steps straight
ckpt=$(printf 'ckpt_%08d' $steps) last=$(printf 'ckpt_%08d' $((2 * steps)))
"$TRAIN_GPU" "${args[@]}" --steps $((2 * steps)) --ckpt-every $steps --out "$TMP/straight"
"$TRAIN_GPU" "${args[@]}" --steps $((2 * steps)) --resume "$TMP/straight/$ckpt" --out "$TMP/resumed"
strip() { log_untimed "$1" | grep -v "\"step\": \($(seq -s '\|' 0 $steps)\),"; }  # the steps after the resume
diff <(strip "$TMP/straight/log.jsonl") <(strip "$TMP/resumed/log.jsonl") || die "GPU resume differs"
cmp "$TMP/straight/$last/model.safetensors" "$TMP/resumed/$last/model.safetensors" || die "GPU resume: weights differ"
echo "ok: GPU $steps + resume + $steps is bit-identical to $((2 * steps)) straight"

"$PYTHON" - "$TMP/straight/$last" << 'EOF' || die "the bf16 checkpoint's weights are not its master weights rounded to bf16"
import json, struct, sys
sys.path.insert(0, "test")
from state_tool import sections
ckpt = sys.argv[1]
raw = open(f"{ckpt}/model.safetensors", "rb").read()
(n,) = struct.unpack_from("<Q", raw)
header = json.loads(raw[8:8 + n])
header.pop("__metadata__", None)
state = open(f"{ckpt}/state.bin", "rb").read()
at, nbytes = sections(f"{ckpt}/state.bin")["master.f32"]
master = struct.unpack_from(f"<{nbytes // 4}f", state, at)
def bf16(x):  # round to nearest even, as the trainer rounds its master weights
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    return (u + 0x7FFF + ((u >> 16) & 1)) >> 16
i, count = 0, 0
for name, t in header.items():  # the tensors in file order are the master section's order
    assert t["dtype"] == "BF16", f"{name} is {t['dtype']}, not BF16"
    b, e = t["data_offsets"]
    w = struct.unpack_from(f"<{(e - b) // 2}H", raw, 8 + n + b)
    assert all(bf16(master[i + j]) == w[j] for j in range(len(w))), f"{name} is not its master weights rounded"
    i += len(w)
    count += 1
assert i == len(master), f"master.f32 has {len(master)} values, the weights {i}"
print(f"ok: {count} bf16 tensors in model.safetensors are state.bin's fp32 master weights rounded to bf16")
EOF

# the GPU checkpoint in the CPU trainer, which takes the master weights as its parameters
./train_llama_cpu "${args[@]}" --steps $((2 * steps + 1)) --resume "$TMP/straight/$last" --out "$TMP/cpu_resume" | tee "$TMP/cpu_resume.txt"
! grep -q "has no section master.f32" "$TMP/cpu_resume.txt" || die "the CPU trainer did not find the master weights"
echo "ok: the GPU checkpoint resumes in the CPU trainer"
