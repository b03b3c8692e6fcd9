# The GPU trainer over several ranks (docs/design.md §7): 2 ranks sharing one GPU with --comm mpi reproduce 1 rank with
# the whole batch (fp32 build; losses and norms within 1e-5 relative, weights within 1e-4 as in test/t_mpi.sh),
# for AdamW and Grass across a refresh, also with tied embeddings (the shared gradient averaged once); a 2-rank
# checkpoint continues on 1 rank; with the optimizer state sharded (--shard-optimizer) 2, 3 and 4 ranks reproduce 1 rank
# and sharded checkpoints continue on other rank counts. NCCL refuses
# two ranks on one GPU, so on a GPU --comm nccl is only launched with one rank here (its all-reduce needs a machine
# with two GPUs); on the CPU emulator (GPU_EMU=1), whose NCCL works over MPI, the 2-rank comparison runs with
# --comm nccl too: the per-tensor all-reduces during the backward, in the order the trainer queues them.
source test/lib.sh
source test/lib_gpu.sh
command -v mpirun > /dev/null || skip "mpirun not found"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 40000 --vocab 512
# On the CPU emulator (GPU_EMU=1) 4 steps instead of 6: Grass refreshes at steps 1 and 4, so the runs still cross a
# refresh, and step 2, whose bytes are counted below, refreshes nothing.
steps=6; [ "${GPU_EMU:-0}" = 1 ] && steps=4
final=$(printf 'ckpt_%08d' $steps)
base=(--model test --train-data "$TMP/train.bin" --seq 32 --steps $steps --warmup 2 --lr 3e-3 --eps 1e-6 --eval-every 0
      --total-batch 256)
transports=(mpi)
if [ "${GPU_EMU:-0}" = 1 ]; then
  transports+=(nccl)
else
  mpirun -np 1 "$TRAIN_GPU" "${base[@]}" --batch 8 --comm nccl --out "$TMP/nccl1" > "$TMP/nccl1.out"
  echo "ok: 1 rank under mpirun with --comm nccl: $(grep -c '"loss"' "$TMP/nccl1/log.jsonl") steps"
fi
for opt in adamw grass; do
  extra=(); [ $opt = grass ] && extra=(--optimizer grass --grass-rank 12 --grass-interval 3)
  "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" --batch 8 --out "$TMP/$opt.1" > /dev/null
  for comm in "${transports[@]}"; do
    run=$opt.$comm.2
    mpirun -np 2 "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" --batch 4 --comm $comm --ckpt-every 2 --out "$TMP/$run" > "$TMP/$run.out"
    grep -qi "ranks: 2 over $comm" "$TMP/$run.out" || die "$run: the 2-rank run did not see 2 ranks over $comm"
    "$PYTHON" test/log_compare.py compare "$TMP/$opt.1/log.jsonl" "$TMP/$run/log.jsonl" --steps $steps --name "$run: 2 ranks vs 1" \
      --bound loss=1e-5 --bound norm=1e-5 || die "$run: 2 ranks differ from 1"
    test/bin/test_reference diff "$TMP/$opt.1/$final/model.safetensors" "$TMP/$run/$final/model.safetensors" 1e-4
  done
done

# A 2-rank checkpoint resumes on 1 rank (the same tokens per step; a Grass refresh still selects from the same 8
# sequences) and continues as the uninterrupted 1-rank run, within the bounds above: Grass, across the refresh at
# step 4, AdamW moments, Grass state and fp32 master weights all moved through state.bin.
"$TRAIN_GPU_FP32" "${base[@]}" --optimizer grass --grass-rank 12 --grass-interval 3 --batch 8 \
  --resume "$TMP/grass.mpi.2/ckpt_00000002" --out "$TMP/grass.2to1" > /dev/null
"$PYTHON" test/log_compare.py compare "$TMP/grass.1/log.jsonl" "$TMP/grass.2to1/log.jsonl" --steps $steps --from-step 3 \
  --name "grass: 2 ranks resumed on 1" --bound loss=1e-5 --bound norm=1e-5 || die "the 2-rank checkpoint resumed on 1 rank differs"
test/bin/test_reference diff "$TMP/grass.1/$final/model.safetensors" "$TMP/grass.2to1/$final/model.safetensors" 1e-4

# Tied embeddings (with llama3 RoPE scaling; ffn 176, unpadded, so that the bytes below are the model's): the lm_head's
# gradient is the embedding's, complete only once the embedding backward, the backward's last work, has added its use
# to the lm_head's, and averaged then, once. 2 ranks reproduce 1 rank with the whole batch within the bounds above,
# with AdamW (Grass reduces the embedding's full gradient by the same code), over the last transport (the emulator's
# NCCL: the all-reduces overlapped with the backward; MPI on a GPU); and a step all-reduces exactly the CPU trainer's
# bytes (both fp32 here), the tied matrix once. On the emulator, whose streams run in issue order, an early reduce of
# the lm_head's share would still average to the same values: the bytes are what show it. 2 steps: the second's update
# follows from the first's averaged gradients, and its bytes are counted.
llama3_config "$TMP/tied.json" true 500000.0 \
  '{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}' 176
comm=${transports[${#transports[@]} - 1]}
tied=(--model "$TMP/tied.json" --steps 2)
cpu_bytes=$(./train_llama_cpu "${base[@]}" "${tied[@]}" --batch 4 --dry-run |
  sed -n 's/^all-reduce per step and rank: \([0-9]*\) bytes.*/\1/p')
"$TRAIN_GPU_FP32" "${base[@]}" "${tied[@]}" --batch 8 --out "$TMP/tied.1" > /dev/null
run=tied.$comm.2
mpirun -np 2 "$TRAIN_GPU_FP32" "${base[@]}" "${tied[@]}" --batch 4 --comm $comm --out "$TMP/$run" > "$TMP/$run.out"
"$PYTHON" test/log_compare.py compare "$TMP/tied.1/log.jsonl" "$TMP/$run/log.jsonl" --steps 2 \
  --name "$run: 2 ranks vs 1" --bound loss=1e-5 --bound norm=1e-5 || die "$run: 2 ranks differ from 1"
test/bin/test_reference diff "$TMP/tied.1/ckpt_00000002/model.safetensors" "$TMP/$run/ckpt_00000002/model.safetensors" 1e-4
mib=$("$PYTHON" test/log_compare.py get "$TMP/$run/log.jsonl" comm_mib --step 2)
awk -v mib="$mib" -v cpu="$cpu_bytes" -v name="$run" 'BEGIN {b = mib * 1048576; d = b - cpu; if (d < 0) d = -d
  printf "%s: %.0f bytes all-reduced per step and rank, the CPU trainer %d\n", name, b, cpu; exit !(cpu > 0 && d < 1049)}' ||
  die "$run: the all-reduce is not the CPU trainer's bytes (the tied matrix once)"
# The same with sharded weights and gradients and 2 micro-batches a step: each micro-batch's tied gradient is
# reduce-scattered once, after the embedding backward, and the bytes are test/comm_bytes.py's (the tied matrix once).
run=tied.$comm.w2x2
mpirun -np 2 "$TRAIN_GPU_FP32" "${base[@]}" "${tied[@]}" --batch 2 --shard-weights --bucket-mb 0.002 --comm $comm --out "$TMP/$run" \
  > "$TMP/$run.out"
"$PYTHON" test/log_compare.py compare "$TMP/tied.1/log.jsonl" "$TMP/$run/log.jsonl" --steps 2 \
  --name "$run: 2 ranks x 2 micro-batches with sharded weights vs 1" --bound loss=1e-5 --bound norm=1e-5 || die "$run: differs from 1 rank"
test/bin/test_reference diff "$TMP/tied.1/ckpt_00000002/model.safetensors" "$TMP/$run/ckpt_00000002/model.safetensors" 1e-4
want=$("$PYTHON" test/comm_bytes.py "$TMP/$run/ckpt_00000002/config.json" --ranks 2 --shard-weights --accum 2 --grad-bytes 4 --weight-bytes 4)
got=$(for c in grads weights updates refresh; do
  v=$("$PYTHON" test/log_compare.py get "$TMP/$run/log.jsonl" comm_${c}_bytes --step 2); echo -n "$c ${v%.0} "; done)
[ "$got" = "$want " ] || die "$run: step 2's collectives moved $got, the formulas say $want"

# The bf16 build, 2 ranks, for AdamW and Grass, the gradients summed in bf16 (--reduce-dtype bf16): the all-reduces
# carry bf16, the compressed gradients as well as the full ones, so each step sends exactly half the bytes of the CPU
# trainer's fp32 all-reduces (its dry run counts them) and a projection's share is r / D of AdamW's (docs/design.md
# §7); training matches 1 rank within the bf16 bound of test/gpu_train.sh (2e-2 relative, losses). ffn 176 here: the
# test preset's 172 is stored padded on the GPU, whose zero gradients AdamW's all-reduce would carry too (4 rows of 64
# per matrix).
for opt in adamw grass; do
  extra=(--ffn 176); [ $opt = grass ] && extra+=(--optimizer grass --grass-rank 12 --grass-interval 3)
  cpu_bytes=$(./train_llama_cpu "${base[@]}" "${extra[@]}" --batch 4 --dry-run |
    sed -n 's/^all-reduce per step and rank: \([0-9]*\) bytes.*/\1/p')
  "$TRAIN_GPU" "${base[@]}" "${extra[@]}" --batch 8 --out "$TMP/$opt.bf16.1" > /dev/null
  mpirun -np 2 "$TRAIN_GPU" "${base[@]}" "${extra[@]}" --batch 4 --comm mpi --reduce-dtype bf16 --out "$TMP/$opt.bf16.2" \
    > "$TMP/$opt.bf16.2.out"
  # step 2 refreshes nothing (refreshes at steps 1 and 4); comm_mib has 3 decimals: 1049 bytes of rounding
  mib=$("$PYTHON" test/log_compare.py get "$TMP/$opt.bf16.2/log.jsonl" comm_mib --step 2)
  awk -v mib="$mib" -v cpu="$cpu_bytes" -v name=$opt 'BEGIN {b = mib * 1048576; d = b - cpu / 2; if (d < 0) d = -d
    printf "%s bf16: %.0f bytes all-reduced per step and rank, the CPU trainer %d (fp32)\n", name, b, cpu; exit !(cpu > 0 && d < 1049)}' ||
    die "$opt bf16: the all-reduce is not half of the CPU trainer's fp32 bytes"
  "$PYTHON" test/log_compare.py compare "$TMP/$opt.bf16.1/log.jsonl" "$TMP/$opt.bf16.2/log.jsonl" --steps $steps \
    --name "$opt bf16: 2 ranks vs 1" --bound loss=2e-2 || die "$opt bf16: 2 ranks differ from 1"
done

# The optimizer state sharded (--shard-optimizer, ZeRO stage 1), fp32 build, in buckets of 2 KB (tensors split into
# pieces): 2, 3 and 4 ranks with gradient accumulation reproduce 1 rank within the bounds above, for AdamW and Grass
# across a refresh. A Grass refresh selects from the step's first micro-batch on every rank, so each run is held
# against the 1-rank run whose first micro-batch has as many sequences: 2 x 3 and 3 x 2 against 1 x 6, 4 x 1 against
# 1 x 4 (12 sequences a step). The bytes of step 2's collectives by category (gradients reduce-scattered in fp32,
# weights all-gathered, Grass's updates all-gathered) are test/comm_bytes.py's formulas. Then sharded checkpoints
# continue on another number of ranks: 4 -> 2 and 2 -> 3, steps 3 to the end within the bounds above.
shard=(--shard-optimizer --bucket-mb 0.002 --total-batch 384 --ffn 176)
for opt in adamw grass; do
  extra=(); [ $opt = grass ] && extra=(--optimizer grass --grass-rank 12 --grass-interval 3)
  for b in 6 4; do
    "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${shard[@]}" --batch $b --out "$TMP/$opt.s1x$b" > /dev/null
  done
  for run in 2x3 3x2 4x1; do
    n=${run%x*} b=${run#*x} one=$opt.s1x6
    [ $n = 4 ] && one=$opt.s1x4
    mpirun -np $n "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${shard[@]}" --batch $b --comm $comm --ckpt-every 2 \
      --out "$TMP/$opt.s$run" > "$TMP/$opt.s$run.out"
    "$PYTHON" test/log_compare.py compare "$TMP/$one/log.jsonl" "$TMP/$opt.s$run/log.jsonl" --steps $steps \
      --name "$opt sharded: $n ranks x $b vs $one" --bound loss=1e-5 --bound norm=1e-5 || die "$opt: $n sharded ranks differ from 1"
    test/bin/test_reference diff "$TMP/$one/$final/model.safetensors" "$TMP/$opt.s$run/$final/model.safetensors" 1e-4
    grass=(); [ $opt = grass ] && grass=(--grass-rank 12)
    want=$("$PYTHON" test/comm_bytes.py "$TMP/$opt.s$run/$final/config.json" --ranks $n --sharded "${grass[@]}" \
      --grad-bytes 4 --weight-bytes 4)
    got=$(for c in grads weights updates refresh; do
      b=$("$PYTHON" test/log_compare.py get "$TMP/$opt.s$run/log.jsonl" comm_${c}_bytes --step 2); echo -n "$c ${b%.0} "; done)
    [ "$got" = "$want " ] || die "$opt: $n sharded ranks: step 2's collectives moved $got, the formulas say $want"
  done
  echo "ok: $opt sharded on 2, 3 and 4 ranks: as 1 rank; step 2's collectives by category as the formulas ($want)"
  for resume in 4x1:2x2 2x3:3x2; do
    from=${resume%:*} to=${resume#*:}
    mpirun -np ${to%x*} "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${shard[@]}" --batch ${to#*x} --comm $comm \
      --resume "$TMP/$opt.s$from/ckpt_00000002" --out "$TMP/$opt.r$from.$to" > /dev/null
    "$PYTHON" test/log_compare.py compare "$TMP/$opt.s$from/log.jsonl" "$TMP/$opt.r$from.$to/log.jsonl" --steps $steps --from-step 3 \
      --name "$opt sharded: $from resumed as $to" --bound loss=1e-5 --bound norm=1e-5 || die "$opt: $from resumed as $to differs"
    test/bin/test_reference diff "$TMP/$opt.s$from/$final/model.safetensors" "$TMP/$opt.r$from.$to/$final/model.safetensors" 1e-4
  done
done

# The other Grass selectors, 2 ranks x 3 against 1 x 6 across the refresh, over MPI (--comm mpi: the reduce-scatters
# and all-gathers through host memory; the runs above took the last transport, NCCL's on the emulator). TAG, then the
# sharding flags.
other_selectors() {
  local tag=$1 sel; shift
  for sel in multinorm multinorm-nr uniform uniform-nr; do
    local extra=(--optimizer grass --grass-rank 12 --grass-interval 3 --grass-select $sel)
    "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "$@" --batch 6 --out "$TMP/$sel.$tag.1x6" > /dev/null
    mpirun -np 2 "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "$@" --batch 3 --comm mpi --out "$TMP/$sel.$tag.2x3" > /dev/null
    "$PYTHON" test/log_compare.py compare "$TMP/$sel.$tag.1x6/log.jsonl" "$TMP/$sel.$tag.2x3/log.jsonl" --steps $steps \
      --name "grass $sel $tag over MPI: 2 ranks x 3 vs 1 x 6" --bound loss=1e-5 --bound norm=1e-5 || die "$sel $tag: 2 ranks differ from 1"
    test/bin/test_reference diff "$TMP/$sel.$tag.1x6/$final/model.safetensors" "$TMP/$sel.$tag.2x3/$final/model.safetensors" 1e-4
  done
}
other_selectors sharded "${shard[@]}"

# Sharded weights (--shard-weights, ZeRO-3: weights, gradients and optimizer state), fp32 build, 5 layers (so that the
# forward and the backward gather layers the buffers do not hold), weight decay, buckets of 2 KB: 2, 3 and 4 ranks with
# gradient accumulation (each micro-batch's gradients reduce-scattered and summed on their owners) reproduce 1 rank
# within the bounds above, AdamW and Grass across a refresh, recompute 0, 1 and 2 (the layer gathered once serves the
# backward's recomputation); every other selector on 2 ranks over --comm mpi. Step 2's bytes by category equal
# test/comm_bytes.py's formulas (each layer gathered before its forward and its backward, the gradients reduced every
# micro-batch). A
# sharded-weights checkpoint loads in transformers with the trainer's loss (hf_eval.py), and continues unsharded on 1
# rank and sharded on 2 ranks as the uninterrupted run.
sw=(--shard-weights --bucket-mb 0.002 --total-batch 384 --ffn 176 --layers 5 --weight-decay 0.1)
for opt in adamw grass; do
  extra=(); [ $opt = grass ] && extra=(--optimizer grass --grass-rank 12 --grass-interval 3)
  for b in 6 4; do
    "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${sw[@]}" --batch $b --out "$TMP/$opt.w1x$b" > /dev/null
  done
  for run in 2x3:0 3x2:2 4x1:1; do
    rc=${run#*:} run=${run%:*}
    n=${run%x*} b=${run#*x} one=$opt.w1x6
    [ $n = 4 ] && one=$opt.w1x4
    mpirun -np $n "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${sw[@]}" --batch $b --recompute $rc --comm $comm --ckpt-every 2 \
      --out "$TMP/$opt.w$run" > "$TMP/$opt.w$run.out"
    "$PYTHON" test/log_compare.py compare "$TMP/$one/log.jsonl" "$TMP/$opt.w$run/log.jsonl" --steps $steps \
      --name "$opt sharded weights, recompute $rc: $n ranks x $b vs $one" --bound loss=1e-5 --bound norm=1e-5 ||
      die "$opt: $n ranks with sharded weights differ from 1"
    test/bin/test_reference diff "$TMP/$one/$final/model.safetensors" "$TMP/$opt.w$run/$final/model.safetensors" 1e-4
    grass=(); [ $opt = grass ] && grass=(--grass-rank 12)
    want=$("$PYTHON" test/comm_bytes.py "$TMP/$opt.w$run/$final/config.json" --ranks $n --shard-weights --accum $((12 / (n * b))) \
      "${grass[@]}" --grad-bytes 4 --weight-bytes 4)
    got=$(for c in grads weights updates refresh; do
      v=$("$PYTHON" test/log_compare.py get "$TMP/$opt.w$run/log.jsonl" comm_${c}_bytes --step 2); echo -n "$c ${v%.0} "; done)
    [ "$got" = "$want " ] || die "$opt: $n ranks with sharded weights: step 2's collectives moved $got, the formulas say $want"
  done
  echo "ok: $opt with sharded weights on 2, 3 and 4 ranks: as 1 rank; step 2's collectives as the formulas ($want)"
  # the checkpoint written from the ranks' parts, in transformers and resumed
  ckpt="$TMP/$opt.w3x2/ckpt_00000002"
  "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${sw[@]}" --batch 6 --eval-only --init "$ckpt" --val-data "$TMP/train.bin" \
    --eval-batches 2 > "$TMP/$opt.w.eval"
  val=$(sed -n 's/^val_loss //p' "$TMP/$opt.w.eval")
  "$PYTHON" test/hf_eval.py "$ckpt" "$TMP/train.bin" --batch 6 --seq 32 --batches 4 --expect "$val" --bound 1e-5 ||
    die "$opt: the sharded-weights checkpoint's loss in transformers is not the trainer's"
  "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${sw[@]}" --batch 6 --resume "$ckpt" --out "$TMP/$opt.w3to1" > /dev/null
  mpirun -np 2 "$TRAIN_GPU_FP32" "${base[@]}" "${extra[@]}" "${sw[@]}" --batch 3 --comm $comm --resume "$ckpt" --out "$TMP/$opt.w3to2" > /dev/null
  for to in 1 2; do
    "$PYTHON" test/log_compare.py compare "$TMP/$opt.w3x2/log.jsonl" "$TMP/$opt.w3to$to/log.jsonl" --steps $steps --from-step 3 \
      --name "$opt sharded weights: 3 ranks resumed on $to" --bound loss=1e-5 --bound norm=1e-5 || die "$opt: 3 -> $to differs"
    test/bin/test_reference diff "$TMP/$opt.w3x2/$final/model.safetensors" "$TMP/$opt.w3to$to/$final/model.safetensors" 1e-4
  done
done
other_selectors sharded-weights "${sw[@]}"

# Sharded weights with the stored padding (the test preset's ffn 172, stored as 176), in the fp32 and the bf16 build,
# Grass across a refresh: each rank draws only its parts' rows of the initial weights, and the padded rows and columns
# stay zero in the parts; 2 ranks reproduce 1 rank within the bounds above (fp32) and the bf16 bound (2e-2, losses).
# The bf16 run's step-2 checkpoint (a BF16 model.safetensors, of which each rank reads its rows only) resumes on 2
# ranks as the uninterrupted run, within the bounds above (the same ranks, data and arithmetic).
for build in fp32 bf16; do
  bin=$TRAIN_GPU_FP32 bound=(--bound loss=1e-5 --bound norm=1e-5)
  [ $build = bf16 ] && bin=$TRAIN_GPU bound=(--bound loss=2e-2)
  pad=(--optimizer grass --grass-rank 12 --grass-interval 3 --layers 3 --weight-decay 0.1 --shard-weights --bucket-mb 0.002)
  "$bin" "${base[@]}" "${pad[@]}" --batch 8 --out "$TMP/pad.$build.1" > /dev/null
  mpirun -np 2 "$bin" "${base[@]}" "${pad[@]}" --batch 4 --comm $comm --ckpt-every 2 --out "$TMP/pad.$build.2" > /dev/null
  "$PYTHON" test/log_compare.py compare "$TMP/pad.$build.1/log.jsonl" "$TMP/pad.$build.2/log.jsonl" --steps $steps \
    --name "grass $build, padded ffn, sharded weights: 2 ranks vs 1" "${bound[@]}" || die "$build: padded sharded weights differ"
done
test/bin/test_reference diff "$TMP/pad.fp32.1/$final/model.safetensors" "$TMP/pad.fp32.2/$final/model.safetensors" 1e-4
mpirun -np 2 "$TRAIN_GPU" "${base[@]}" "${pad[@]}" --batch 4 --comm $comm --resume "$TMP/pad.bf16.2/ckpt_00000002" \
  --out "$TMP/pad.bf16.r" > /dev/null
"$PYTHON" test/log_compare.py compare "$TMP/pad.bf16.2/log.jsonl" "$TMP/pad.bf16.r/log.jsonl" --steps $steps --from-step 3 \
  --name "grass bf16, padded ffn, sharded weights: resumed on 2 ranks" --bound loss=1e-5 --bound norm=1e-5 ||
  die "the bf16 sharded-weights checkpoint resumed differs"
