# The GPU trainer's memory plan needs no GPU: --dry-run prints every category and a total that is their sum
# plus the cuBLASLt workspace, for every preset; the recomputation levels and the precision options shrink
# what they should; --gpu-mem-limit refuses a plan that does not fit. Skipped where train_llama was not built.
source test/lib.sh
[ -x ./train_llama ] || skip "train_llama was not built (no nvcc when make ran)"
get() { awk -v k="$2" '$0 ~ "^  "k" " {for (i = 1; i <= NF; i++) if ($(i+1) == "bytes") {print $i; exit}}' "$1"; }
for preset in test tiny 60m 130m 350m 1b 7b 13b; do
  for opt in adamw grass; do  # Grass with master weights has the most buffers
    ./train_llama --model $preset --dry-run --batch 1 --seq 128 --optimizer $opt > "$TMP/$preset.$opt"
    sum=0; for c in weights master gradients optimizer grass activations workspace; do sum=$((sum + $(get "$TMP/$preset.$opt" "$c"))); done
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
expect_error "--gpu-mem-limit 1.0 GiB: the plan needs" ./train_llama --model 1b --dry-run --gpu-mem-limit 1
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

# --dry-run --ranks N: each rank's plan for a run on N ranks, without starting them. Every rank holds the whole model
# today, so the plan differs from one rank's only by the all-reduce copy of Grass's compressed gradients (bf16, its r x E
# elements at 2 bytes), and the line after it gives the step's split and the bytes each rank all-reduces; a
# --total-batch that the N ranks cannot split is refused.
grass13=(--model 13b --dry-run --batch 1 --seq 256 --recompute 2 --master-weights 0 --optimizer grass --grass-rank 256)
./train_llama "${grass13[@]}" --ranks 8 --total-batch 16384 > "$TMP/13b_8"
[ "$(get "$TMP/13b_8" gradients)" -eq $(( $(get "$TMP/13b" gradients) + 2 * rE )) ] ||
  die "the 8-rank plan's gradients are not one rank's plus the bf16 copy of the compressed gradients"
grep -q "^plan of each of 8 ranks: batch 1 x 256 tokens, 8 micro-batches per step = 16384 tokens per step; all-reduce per step and rank: $(( 2 * dense + 2 * rE )) bytes" "$TMP/13b_8" ||
  { tail -1 "$TMP/13b_8"; die "the 8-rank plan does not say the split and the bytes all-reduced"; }
expect_error "--total-batch 3072 is not a multiple of batch 1 x seq 256 x ranks 8" ./train_llama "${grass13[@]}" --ranks 8 --total-batch 3072
expect_error "--ranks goes with --dry-run only" ./train_llama --model test --ranks 2 --train-data x
echo "ok: --dry-run --ranks 8 plans each rank of 8 (13b Grass: $(tail -1 "$TMP/13b_8"))"
