# dev/bench/scaling_model.py: the predicted table is complete (every preset, variant and point, no NaN), its
# numbers are consistent (efficiency in (0, 1], 1 on one GPU; ZeRO-1 sharding may pass 1 only by the optimizer time
# it divides; exposed comm <= comm; Grass all-reduces fewer bytes than AdamW), two predictions equal a computation
# here from the printed bytes and the profile, and a profile whose phases do not add up is refused.
source test/lib.sh
[ -x ./train_llama_cpu ] || die "train_llama_cpu was not built"
"$PYTHON" dev/bench/scaling_model.py > "$TMP/out"
grep -qi 'nan\|inf ' "$TMP/out" && die "NaN or inf in the output"
grep -q 'EXTRAPOLATED' "$TMP/out" || die "the extrapolated rows are not said to be"
grep -q 'Grass reaches 2x AdamW' "$TMP/out" || die "no paragraph beside the paper's 2x"

# The inputs table: preset optimizer source bytes dense compressed embedding refresh forward backward optimizer
awk -F' *[|] *' '$2 ~ /^(1b|7b|13b)$/ && NF == 14 {print $2, $3, $5, $6, $7, $8, $9, $10, $11, $12}' "$TMP/out" > "$TMP/in"
[ "$(wc -l < "$TMP/in")" -eq 6 ] || die "the inputs table does not hold 3 presets x 2 optimizers"
# The prediction table: preset variant point step tokens efficiency comm exposed refresh bound ratio
awk -F' *[|] *' '$2 ~ /^(1b|7b|13b)$/ && NF == 13 {print $2 "|" $3 "|" $4 "|" $5 "|" $6 "|" $7 "|" $8 "|" $9 "|" $10 "|" $11 "|" $12}' \
  "$TMP/out" > "$TMP/pred"
for preset in 1b 7b 13b; do
  a=$(awk -v p=$preset '$1 == p && $2 == "adamw" {print $3}' "$TMP/in")
  g=$(awk -v p=$preset '$1 == p && $2 == "grass" {print $3}' "$TMP/in")
  [ "$g" -lt "$a" ] || die "$preset: Grass all-reduces $g bytes, not fewer than AdamW's $a"
  for variant in adamw adamw-sharded grass; do
    for point in "1 GPU" "8 GPUs, NVLink" {2,4,8,16}" x 8 GPUs, 400 Gb/s" {2,4,8,16}" x 8 GPUs, 100 Gb/s"; do
      [ "$(awk -F'|' -v p=$preset -v v=$variant -v x="$point" '$1 == p && $2 == v && $3 == x' "$TMP/pred" | wc -l)" -eq 1 ] ||
        die "$preset $variant '$point': not exactly one row"
    done
  done
done
[ "$(wc -l < "$TMP/pred")" -eq 90 ] || die "the prediction table has $(wc -l < "$TMP/pred") rows, not 90"
awk -F'|' 'NR == FNR {f[$1 " " $2] = $8 + $9; s[$1 " " $2] = $8 + $9 + $10; next}
  {
    opt = ($2 == "grass") ? "grass" : "adamw"
    for (i = 4; i <= 10; i++) if ($i == "" || $i !~ /^[0-9.]+$/) { print "bad field " i ": " $0; bad = 1 }
    if ($2 == "grass" && $11 !~ /^[0-9.]+x$/) { print "no Grass / AdamW: " $0; bad = 1 }
    top = ($2 == "adamw-sharded") ? s[$1 " " opt] / f[$1 " " opt] : 1   # all of the optimizer divided away, no comm
    if (!($6 > 0 && $6 <= top + 0.0005)) { print "efficiency out of (0, " top "]: " $0; bad = 1 }
    if ($3 == "1 GPU" && ($6 != "1.000" || $7 != "0.00")) { print "1 GPU row: " $0; bad = 1 }
    if ($8 > $7 + 0.005) { print "exposed comm above comm: " $0; bad = 1 }
    if ($10 < $4 - 0.05) { print "no-overlap bound below the step: " $0; bad = 1 }
  }
  END { exit bad }' <(tr ' ' '|' < "$TMP/in") \
  "$TMP/pred" || die "inconsistent rows above"

# Two predictions by hand, from the printed bytes and the profile's phases with the defaults (NVLink 370 GB/s and
# 10 us, NIC 12.5 GB/s and 20 us, 8 GPUs a node, refresh every 200 steps): Grass at 1b on 16 nodes (hierarchical
# all-reduce, the embedding's tail, the amortised refresh) and sharded AdamW at 1b on one node (reduce-scatter
# overlapped, optimizer / 8, all-gather of the bf16 weights after it: half the bytes of AdamW's fp32 gradients).
read -r _ _ gbytes _ _ gemb grefresh gf gb go <<< "$(grep '^1b grass ' "$TMP/in")"
read -r _ _ abytes _ _ aemb _ af ab ao <<< "$(grep '^1b adamw ' "$TMP/in")"
want=$(awk -v b=$gbytes -v e=$gemb -v r=$grefresh -v f=$gf -v w=$gb -v o=$go \
           -v B=$abytes -v E=$aemb -v F=$af -v W=$ab -v O=$ao 'function ar(x) {   # ms, 8 GPUs x 16 nodes
    return 1e3 * (2 * (7 / 8 * x / 370e9 + 7 * 10e-6) + 2 * (15 / 16 * x / 8 / 12.5e9 + 15 * 20e-6)) }
  function half(x) { return 1e3 * (7 / 8 * x / 370e9 + 7 * 10e-6) }   # reduce-scatter or all-gather, one node
  BEGIN { over = ar(b - e); g = f + (w > over ? w : over) + ar(e) + o + ar(r) / 200
          over = half(B - E); s = F + (W > over ? W : over) + half(E) + O / 8 + half(B / 2)
          printf "%.1f %.1f\n", g, s }')
got="$(awk -F'|' '$1 == "1b" && $2 == "grass" && $3 == "16 x 8 GPUs, 100 Gb/s" {print $4}' "$TMP/pred") $(
  awk -F'|' '$1 == "1b" && $2 == "adamw-sharded" && $3 == "8 GPUs, NVLink" {print $4}' "$TMP/pred")"
[ "$got" = "$want" ] || die "predicted step ms '$got', computed here '$want' (Grass 16 x 8 at 100 Gb/s, sharded 8 NVLink)"
echo "ok: 90 rows; 1b Grass on 16 x 8 GPUs at 100 Gb/s and sharded AdamW on 8 GPUs: $want ms as computed here"

# A profile whose phases do not add up to its step is refused.
sed 's/^adamw 46.6 /adamw 40.0 /' dev/bench/scaling_profile.txt > "$TMP/bad_profile.txt"
expect_error "the phases add up to" "$PYTHON" dev/bench/scaling_model.py --profile "$TMP/bad_profile.txt"
