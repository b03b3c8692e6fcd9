# The command line: --help lists every option of the CPU trainer with its default and exits 0; --dry-run
# prints the memory plan by category with a total that is their sum, for every preset, without allocating.
source test/lib.sh
./train_llama_cpu --help > "$TMP/help"
for opt in --model --dim --layers --heads --kv-heads --ffn --vocab --max-seq --train-data --val-data --tokenizer \
           --batch --seq --total-batch --steps --lr --warmup --min-lr-ratio --weight-decay --grad-clip --beta1 \
           --beta2 --eps --optimizer --seed --eval-every --eval-batches --sample-every --sample-tokens --out \
           --ckpt-every --resume --init --eval-only --dry-run --help; do
  grep -q -- "^  $opt " "$TMP/help" || die "--help does not list $opt"
done
grep -q -- "--recompute N" "$TMP/help" && die "--help of the CPU trainer lists the GPU-only --recompute"
for preset in test tiny 60m 130m 350m 1b 7b 13b; do
  ./train_llama_cpu --model $preset --dry-run --batch 1 --seq 128 > "$TMP/plan_$preset"
  # the total must be the sum of the categories
  awk '/GiB/ && !/total/ {s += $(NF-1)} /total/ {t = $(NF-1)} END {d = s - t; if (d < 0) d = -d; exit !(t > 0 && d < 0.01)}' \
    "$TMP/plan_$preset" || { cat "$TMP/plan_$preset"; die "plan total is not the sum of its parts for $preset"; }
done
cat "$TMP/plan_60m"
# 60m: 58,073,600 parameters (embedding and lm_head 2 x 32000 x 512, 8 layers of 4 x 512^2 + 3 x 512 x 1376
# plus two norms, the final norm), computed here from the sizes, not taken from the program
params=$(( 2*32000*512 + 8*(4*512*512 + 3*512*1376 + 2*512) + 512 ))
grep -q "; $params parameters" "$TMP/plan_60m" || die "60m parameter count is not $params"
echo "ok: help lists every option; dry-run plans add up; 60m has $params parameters"
