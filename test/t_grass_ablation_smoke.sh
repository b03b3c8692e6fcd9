# dev/bench/grass_ablation.sh runs end to end (3 steps of the test model on random shards) and prints a row
# per optimizer with a finite validation loss.
source test/lib.sh
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 6000 --vocab 512
"$PYTHON" test/shard_tool.py "$TMP/val.bin" --tokens 3000 --vocab 512 --seed 5
MODEL=test STEPS=3 BATCH=2 SEQ=32 WARMUP=1 INTERVAL=2 EVAL_BATCHES=2 TRAIN="$TMP/train.bin" VAL="$TMP/val.bin" \
  OUT="$TMP/out" dev/bench/grass_ablation.sh | tee "$TMP/table"
[ "$(grep -c '^| \(adamw\|grass\) ' "$TMP/table")" -eq 6 ] || die "expected 6 table rows"
grep '^| \(adamw\|grass\) ' "$TMP/table" | awk -F'|' '{ if (!($3 + 0 > 0)) exit 1 }' || die "a validation loss is missing"
# the projections' optimizer state: Grass's is below AdamW's
grep '^| \(adamw\|grass\) ' "$TMP/table" | awk -F'|' 'NR == 1 {a = $5 + 0} NR > 1 && !($5 + 0 > 0 && $5 + 0 < a) {exit 1}' ||
  die "the projections' optimizer state column is wrong"
