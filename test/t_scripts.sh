# The run recipes of scripts/ stay valid as the trainer's options change: each one's command, with --dry-run
# appended, is accepted and its memory plan printed (no GPU needed). scripts/paper_c4.sh for every preset and
# both optimizers: the papers' steps, warmup, lr and tokens per step, and a plan under 40 GiB with its default
# micro-batch; scripts/train_13b_1gpu.sh under its own --gpu-mem-limit 40; scripts/train_8gpu.sh as 8 MPI ranks
# (where mpirun exists). Bad arguments: one error line.
# Skipped where train_llama was not built.
source test/lib.sh
[ -x ./train_llama ] || skip "train_llama was not built (no nvcc when make ran)"
data=$TMP/data  # the recipes only name the shards; --dry-run reads none
gib() { awk '/^  total/ {printf "%.2f", $2 / 2^30}' "$1"; }
for preset in 60m 130m 350m 1b; do
  case $preset in 60m) steps=10000 ;; 130m) steps=20000 ;; 350m) steps=60000 ;; 1b) steps=100000 ;; esac
  for opt in grass adamw; do
    scripts/paper_c4.sh $preset $opt "$data" "$TMP/out" --dry-run > "$TMP/$preset.$opt" 2>&1 || { cat "$TMP/$preset.$opt"; die "paper_c4.sh $preset $opt"; }
    cmd=$(head -n 1 "$TMP/$preset.$opt")
    lr=1e-2; [ $opt = adamw ] && lr=1e-3
    for want in "--model $preset " "--optimizer $opt " "--seq 256 " "--total-batch 131072 " "--steps $steps " \
                "--warmup $((steps / 10)) " "--lr $lr " "--min-lr-ratio 0.1 " "--resume auto "; do
      [[ "$cmd " == *"$want"* ]] || die "paper_c4.sh $preset $opt: the command lacks '$want': $cmd"
    done
    t=$(gib "$TMP/$preset.$opt")
    awk -v t="$t" 'BEGIN {exit !(t > 0 && t < 40)}' || die "paper_c4.sh $preset $opt: plan $t GiB is not under 40 GiB"
    echo "ok: paper_c4.sh $preset $opt: $steps steps, plan $t GiB"
  done
done
scripts/train_13b_1gpu.sh "$data" "$TMP/out" --dry-run > "$TMP/13b" 2>&1 || { cat "$TMP/13b"; die "train_13b_1gpu.sh"; }
echo "ok: train_13b_1gpu.sh: plan $(gib "$TMP/13b") GiB under its --gpu-mem-limit 40"
if command -v mpirun > /dev/null; then  # 8 ranks: the plan (rank 0 prints it) and the batch split across them
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  scripts/train_8gpu.sh "$data" "$TMP/out" --dry-run > "$TMP/8gpu" 2>&1 || { cat "$TMP/8gpu"; die "train_8gpu.sh"; }
  echo "ok: train_8gpu.sh under mpirun -np 8: plan $(gib "$TMP/8gpu") GiB per GPU"
fi
expect_error "usage: scripts/paper_c4.sh" scripts/paper_c4.sh 60m grass
expect_error "preset '7b'" scripts/paper_c4.sh 7b grass "$data" "$TMP/out"
expect_error "optimizer 'sgd'" scripts/paper_c4.sh 60m sgd "$data" "$TMP/out"
GPUS=3 expect_error "GPUS=3 x MICRO=128" scripts/paper_c4.sh 60m grass "$data" "$TMP/out"
