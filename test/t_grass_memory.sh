# Gradient and optimizer-state bytes: the plan train_llama_cpu prints (--dry-run, the same one it allocates
# from) equals docs/design.md §3's formulas, computed here independently from the sizes: per projection matrix an
# r x E fp32 compressed gradient, 2 r x E fp32 moments and r int32 indices + r fp32 scales, one full-gradient
# scratch for the largest matrix; AdamW: 3 x 4 bytes per parameter. No m x n gradient for a projection.
source test/lib.sh
check() {  # preset d L H KV ffn V rank
  local preset=$1 d=$2 L=$3 H=$4 KV=$5 f=$6 V=$7 R=$8
  local hd=$((d / H)); local kv=$((KV * hd))
  local dense=$((2 * V * d + (2 * L + 1) * d)) sumrE=0 sumr=0 maxmn=0 total_proj=0
  for mn in "$d $d" "$kv $d" "$kv $d" "$d $d" "$f $d" "$f $d" "$d $f"; do
    set -- $mn; local m=$1 n=$2 D E
    if [ $m -ge $n ]; then D=$m; E=$n; else D=$n; E=$m; fi
    local r=$(( R < D ? R : D ))
    sumrE=$((sumrE + L * r * E)); sumr=$((sumr + L * r)); total_proj=$((total_proj + L * m * n))
    [ $((m * n)) -gt $maxmn ] && maxmn=$((m * n))
  done
  local want_grad=$((4 * (dense + sumrE))) want_opt=$((4 * 2 * dense + 4 * 2 * sumrE + 8 * sumr)) want_scratch=$((4 * maxmn))
  ./train_llama_cpu --model $preset --dry-run --batch 1 --seq 64 --optimizer grass --grass-rank $R > "$TMP/$preset.grass"
  ./train_llama_cpu --model $preset --dry-run --batch 1 --seq 64 > "$TMP/$preset.adamw"
  get() { awk -v k="$2" '$0 ~ "^  "k" " {for (i = 1; i <= NF; i++) if ($(i+1) == "bytes") print $i}' "$1"; }
  [ "$(get "$TMP/$preset.grass" gradients)" = $want_grad ] || die "$preset grass gradients $(get "$TMP/$preset.grass" gradients) != $want_grad"
  [ "$(get "$TMP/$preset.grass" optimizer)" = $want_opt ] || die "$preset grass optimizer state $(get "$TMP/$preset.grass" optimizer) != $want_opt"
  [ "$(get "$TMP/$preset.grass" grass)" = $want_scratch ] || die "$preset grass refresh scratch $(get "$TMP/$preset.grass" grass) != $want_scratch"
  local P=$((dense + total_proj))
  [ "$(get "$TMP/$preset.adamw" gradients)" = $((4 * P)) ] || die "$preset adamw gradients"
  [ "$(get "$TMP/$preset.adamw" optimizer)" = $((8 * P)) ] || die "$preset adamw optimizer state"
  [ "$(get "$TMP/$preset.adamw" grass)" = 0 ] || die "$preset adamw has a grass scratch"
  echo "ok: $preset rank $R: gradients $want_grad B (AdamW $((4 * P))), optimizer state $want_opt B (AdamW $((8 * P))), refresh scratch $want_scratch B"
}
check test 64 2 4 2 172 512 16
check test 64 2 4 2 172 512 100
check 60m 512 8 8 8 1376 32000 128
check 1b 2048 24 32 32 5461 32000 512
check 13b 5120 40 40 40 13824 32000 256
