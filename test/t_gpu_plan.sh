# The GPU trainer's memory plan needs no GPU: --dry-run prints every category and a total that is their sum
# plus the cuBLASLt workspace, for every preset; the recomputation levels and the precision options shrink
# what they should; --gpu-mem-limit refuses a plan that does not fit. Skipped where train_llama was not built.
source test/lib.sh
[ -x ./train_llama ] || skip "train_llama was not built (no nvcc when make ran)"
get() { awk -v k="$2" '$0 ~ "^  "k" " {for (i = 1; i <= NF; i++) if ($(i+1) == "bytes") {print $i; exit}}' "$1"; }
for preset in test tiny 60m 130m 350m 1b 7b 13b; do
  for opt in adamw grass; do  # Grass with master weights has the most buffers
    ./train_llama --model $preset --dry-run --batch 1 --seq 128 --optimizer $opt > "$TMP/$preset.$opt"
    sum=0; for c in weights master gradients optimizer grass activations workspace communication; do sum=$((sum + $(get "$TMP/$preset.$opt" "$c"))); done
    [ "$sum" -eq "$(get "$TMP/$preset.$opt" total)" ] || die "$preset $opt: the categories do not add up to the total"
  done
  cp "$TMP/$preset.adamw" "$TMP/$preset"
done
# 60m: bf16 weights and gradients (2 bytes per parameter), fp32 master (4), fp32 moments (8)
P=$(( 2*32000*512 + 8*(4*512*512 + 3*512*1376 + 2*512) + 512 ))
[ "$(get "$TMP/60m" weights)" -eq $((2 * P)) ] || die "60m weights"
[ "$(get "$TMP/60m" master)" -eq $((4 * P)) ] || die "60m master weights"
[ "$(get "$TMP/60m" optimizer)" -eq $((8 * P)) ] || die "60m optimizer state"
./train_llama --model 60m --dry-run --batch 1 --seq 128 --master-weights 0 --state-dtype bf16 > "$TMP/60m_lean"
[ "$(get "$TMP/60m_lean" master)" -eq 0 ] && [ "$(get "$TMP/60m_lean" optimizer)" -eq $((4 * P)) ] || die "60m lean options"
for r in 0 1 2; do ./train_llama --model 350m --dry-run --batch 8 --seq 1024 --recompute $r > "$TMP/r$r"; done
a0=$(get "$TMP/r0" activations); a1=$(get "$TMP/r1" activations); a2=$(get "$TMP/r2" activations)
[ $a0 -gt $a1 ] && [ $a1 -gt $a2 ] || die "recompute levels do not shrink the activations ($a0, $a1, $a2)"
echo "ok: 350m batch 8 x 1024 activations: recompute 0 $a0, 1 $a1, 2 $a2 bytes"
expect_error "--gpu-mem-limit 1 GiB: the plan needs" ./train_llama --model 1b --dry-run --gpu-mem-limit 1
expect_error "--recompute must be 0, 1 or 2" ./train_llama --model test --dry-run --recompute 3
expect_error "--state-dtype must be one of fp32|bf16" ./train_llama --model test --dry-run --state-dtype fp16


# Grass on the GPU: no m x n gradient for a projection (the gradients are the bf16 full gradients of the
# tensors outside the projections plus the fp32 r x E compressed ones), and the 13b preset at rank 256 with
# bf16 weights and no master copy, full recomputation, sequence 256, micro-batch 1 plans under 40 GiB, and
# under 30 GiB with bf16 moments (docs/design.md §13).
dense=$(( 2*32000*5120 + (2*40 + 1)*5120 ))
rE=$(( 40 * 256 * 5120 * 7 ))   # every projection of 13b has E = 5120 at rank 256 (the larger side is selected)
./train_llama --model 13b --dry-run --batch 1 --seq 256 --recompute 2 --master-weights 0 --optimizer grass --grass-rank 256 > "$TMP/13b"
./train_llama --model 13b --dry-run --batch 1 --seq 256 --recompute 2 --master-weights 0 --optimizer grass --grass-rank 256 \
  --state-dtype bf16 > "$TMP/13b_bf16"
[ "$(get "$TMP/13b" gradients)" -eq $((2 * dense + 4 * rE)) ] || die "13b Grass gradients are not the dense bf16 + compressed fp32 ones"
t=$(get "$TMP/13b" total); tb=$(get "$TMP/13b_bf16" total)
[ $t -lt $((40 << 30)) ] || die "13b Grass plan $t bytes is not under 40 GiB"
[ $tb -lt $((30 << 30)) ] || die "13b Grass plan with bf16 moments $tb bytes is not under 30 GiB"
echo "ok: 13b Grass rank 256: $(awk -v b=$t 'BEGIN {printf "%.2f", b / 2^30}') GiB (fp32 moments), $(awk -v b=$tb 'BEGIN {printf "%.2f", b / 2^30}') GiB (bf16 moments)"

# --dry-run --ranks N: each rank's plan for a run on N ranks, without starting them. Without --shard-optimizer every rank
# holds the whole model: the plan is one rank's plus the communication buffers (two buckets of --bucket-mb), and the
# lines after it give the step's split and the bytes of each rank's collectives: the gradients all-reduced in fp32
# (--reduce-dtype), the full ones and Grass's compressed ones (4 bytes each), or in bf16 (2); a --total-batch that the N
# ranks cannot split is refused.
grass13=(--model 13b --dry-run --batch 1 --seq 256 --recompute 2 --master-weights 0 --optimizer grass --grass-rank 256)
./train_llama "${grass13[@]}" --ranks 8 --total-batch 16384 > "$TMP/13b_8"
./train_llama "${grass13[@]}" --ranks 8 --total-batch 16384 --reduce-dtype bf16 > "$TMP/13b_8_bf16"
[ "$(get "$TMP/13b_8" gradients)" -eq "$(get "$TMP/13b" gradients)" ] || die "the 8-rank plan's gradients are not one rank's"
[ "$(get "$TMP/13b_8" communication)" -le $(( 2 * (32 << 20) + (1 << 20) )) ] || die "the 8-rank plan's buckets exceed 2 x --bucket-mb"
grep -q "^plan of each of 8 ranks: batch 1 x 256 tokens, 8 micro-batches per step = 16384 tokens per step$" "$TMP/13b_8" ||
  die "the 8-rank plan does not say the split"
grep -q "^collectives per step and rank (GPU, 8 ranks, gradients in fp32): grads $(( 4 * (dense + rE) )) bytes, weights 0 bytes, updates 0 bytes, refresh $(( 4 * 40 * (3 * 5120 * 5120 + 1 * 5120 * 5120 + 3 * 13824 * 5120) )) bytes (refresh steps)$" "$TMP/13b_8" ||
  { grep collectives "$TMP/13b_8"; die "the 8-rank plan does not give the bytes of the fp32 all-reduces"; }
grep -q "gradients in bf16): grads $(( 2 * (dense + rE) )) bytes" "$TMP/13b_8_bf16" || die "the bf16 sums are not half the bytes"
# With --shard-optimizer each rank keeps 1/N of the moments and master weights (docs/design.md §7): 13b AdamW at sequence
# 4096, micro-batch 1, full recomputation fits 8 x 80 GB (74.5 GiB, --gpu-mem-limit) sharded and not without; 7b AdamW
# fits 8 x 40 GB (37.25 GiB) sharded with bf16 moments; Grass's sharded plan holds 1/8 of its state.
adamw13=(--model 13b --dry-run --batch 1 --seq 4096 --recompute 2 --ranks 8 --total-batch 32768)
./train_llama "${adamw13[@]}" --shard-optimizer --gpu-mem-limit 74.5 > "$TMP/13b_adamw_s" || die "13b AdamW sharded does not fit 8 x 80 GB"
expect_error "--gpu-mem-limit 74.5 GiB: the plan needs" ./train_llama "${adamw13[@]}" --gpu-mem-limit 74.5
P13=13015864320
[ "$(get "$TMP/13b_adamw_s" "optimizer state")" -eq $(( 8 * P13 / 8 )) ] && [ "$(get "$TMP/13b_adamw_s" "master weights")" -eq $(( 4 * P13 / 8 )) ] ||
  die "13b AdamW sharded: moments and master weights are not 1/8 each"
./train_llama --model 7b --dry-run --batch 1 --seq 4096 --recompute 2 --ranks 8 --total-batch 32768 --shard-optimizer \
  --state-dtype bf16 --gpu-mem-limit 37.25 > "$TMP/7b_adamw_s" || die "7b AdamW sharded does not fit 8 x 40 GB"
# --shard-weights: each rank stores 1/8 of the weights plus two layers and the embedding, final norm and lm_head gathered;
# the 70B presets with Grass, bf16 weights without a master copy, bf16 moments and full recomputation at sequence 4096
# fit 8 x 80 GB (74.5 GiB) with micro-batch 4 (Llama-3.1-70B's 128256-token embedding and lm_head gathered whole
# included), and not without it
g70=(--dry-run --optimizer grass --master-weights 0 --state-dtype bf16 --recompute 2 --seq 4096 --ranks 8 --gpu-mem-limit 74.5)
for run in llama2-70b:4 llama3.1-70b:4; do
  p=${run%:*} b=${run#*:}
  ./train_llama --model $p "${g70[@]}" --batch $b --total-batch $((8 * 4096 * b)) --shard-weights > "$TMP/$p" ||
    die "$p with sharded weights does not fit 8 x 80 GB"
  grep -q "weights, gradients and optimizer state sharded" "$TMP/$p" || die "$p: the plan does not say what is sharded"
  expect_error "--gpu-mem-limit 74.5 GiB: the plan needs" ./train_llama --model $p "${g70[@]}" --batch $b --total-batch $((8 * 4096 * b))
done
# With --shard-weights the gradients are sharded too: each rank keeps its 1/8 of the summed gradients (Grass's fp32 g,
# the bf16 full ones of the embedding, lm_head and norms) and holds whole only one layer's (in a window, until their
# reduce-scatter) and those outside the blocks, where the embedding's takes the place of the lm_head's once that is
# reduced. llama2-70b's gradients are exactly that, from its sizes (Grass rank 2048: q, o, gate, up and down give
# 2048 x 8192 each, k and v 2048 x 1024 on the columns side); at micro-batch 1 its plan fits 8 x 40 GB (37.25 GiB).
# llama3.1-70b, whose embedding and lm_head are 4 times larger, fits 8 x 40 GB at sequence 2048, and needs 16 such
# ranks at 4096.
d=8192 L=80 V=32000 kv=1024 r=2048
rE=$(( r * (5 * d + 2 * kv) ))  # a layer's g elements
want=$(( 4 * L * rE / 8 + 2 * (2 * V * d + d + 2 * L * d) / 8 + 4 * rE + 2 * (V * d + d) + 2 * 2 * d ))
[ "$(get "$TMP/llama2-70b" gradients)" -eq $want ] ||
  die "llama2-70b with sharded weights: gradients $(get "$TMP/llama2-70b" gradients) bytes, not 1/8 of the sums plus the windows ($want)"
g40=("${g70[@]/74.5/37.25}" --batch 1 --shard-weights)
./train_llama --model llama2-70b "${g40[@]}" --total-batch 32768 > "$TMP/llama2-70b_40" ||
  die "llama2-70b with sharded weights at micro-batch 1 does not fit 8 x 40 GB"
./train_llama --model llama3.1-70b "${g40[@]}" --seq 2048 --total-batch 16384 > "$TMP/llama3.1-70b_40" ||
  die "llama3.1-70b with sharded weights at sequence 2048 does not fit 8 x 40 GB"
expect_error "--gpu-mem-limit 37.25 GiB: the plan needs" ./train_llama --model llama3.1-70b "${g40[@]}" --total-batch 32768
./train_llama --model llama3.1-70b "${g40[@]}" --ranks 16 --total-batch 65536 > "$TMP/llama3.1-70b_40_16" ||
  die "llama3.1-70b with sharded weights does not fit 16 x 40 GB"
echo "ok: 70B Grass on 8 x 80 GB with sharded weights: llama2-70b $(get "$TMP/llama2-70b" total) bytes, llama3.1-70b $(get "$TMP/llama3.1-70b" total) bytes (micro-batch 4); on 8 x 40 GB: llama2-70b $(get "$TMP/llama2-70b_40" total) bytes (micro-batch 1), llama3.1-70b $(get "$TMP/llama3.1-70b_40" total) (sequence 2048; at 4096 on 16 ranks $(get "$TMP/llama3.1-70b_40_16" total))"
./train_llama "${grass13[@]}" --ranks 8 --total-batch 16384 --shard-optimizer > "$TMP/13b_8s"
[ "$(get "$TMP/13b_8s" "optimizer state")" -lt $(( $(get "$TMP/13b_8" "optimizer state") / 8 + (1 << 20) )) ] ||
  die "13b Grass sharded: the optimizer state is not 1/8"
echo "ok: 13b AdamW on 8 ranks: $(awk -v b="$(get "$TMP/13b_adamw_s" total)" 'BEGIN {printf "%.1f", b / 2^30}') GiB a rank sharded (not without); 7b AdamW $(awk -v b="$(get "$TMP/7b_adamw_s" total)" 'BEGIN {printf "%.1f", b / 2^30}') GiB"
expect_error "--total-batch 3072 is not a multiple of batch 1 x seq 256 x ranks 8" ./train_llama "${grass13[@]}" --ranks 8 --total-batch 3072
expect_error "--ranks goes with --dry-run only" ./train_llama --model test --ranks 2 --train-data x
echo "ok: --dry-run --ranks 8 plans each rank of 8 (13b Grass: $(grep collectives "$TMP/13b_8"))"
