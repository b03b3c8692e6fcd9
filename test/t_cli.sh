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
for preset in test tiny 60m 130m 350m 1b 7b 13b llama3.2-1b llama3.2-3b llama3.1-8b llama3.1-70b; do
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
# the released Llama-3 sizes, from their published config.json values: vocab 128256, 8 kv heads of head dim 64 (1b)
# or 128, the embedding counted once where it is tied (3.2 1B and 3B): 1.24B, 3.21B, 8.03B, 70.6B as published
llama3_params() {  # DIM LAYERS HEADS FFN TIED
  local d=$1 L=$2 h=$3 f=$4 tied=$5 kv=$((8 * $1 / $3))
  echo $(( (2 - tied)*128256*d + L*(d*d + 2*d*kv + d*d + 3*d*f + 2*d) + d ))
}
for spec in "llama3.2-1b 2048 16 32 8192 1 1.24" "llama3.2-3b 3072 28 24 8192 1 3.21" "llama3.1-8b 4096 32 32 14336 0 8.03" \
            "llama3.1-70b 8192 80 64 28672 0 70.55"; do
  read -r preset d L h f tied billions <<< "$spec"
  n=$(llama3_params $d $L $h $f $tied)
  grep -q "; $n parameters" "$TMP/plan_$preset" || { grep "^model" "$TMP/plan_$preset"; die "$preset: not $n parameters"; }
  awk -v n=$n -v b=$billions 'BEGIN {exit !(n / 1e9 - b < 0.006 && b - n / 1e9 < 0.006)}' || die "$preset: $n is not ${billions}B"
  echo "ok: $preset has $n parameters (${billions}B)"
done
echo "ok: help lists every option; dry-run plans add up; 60m has $params parameters"
