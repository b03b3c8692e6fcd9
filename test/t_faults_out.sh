# One output directory, one owner (checkpoint.h): a second live run into the same --out is refused naming the
# owner's pid (a lock the kernel drops when the owner dies, even by SIGKILL); starting or resuming at a step older
# than checkpoints already in --out is refused naming --discard-newer, which deletes them so that --resume auto
# later continues this run, not the other history.
source test/lib.sh
T=./train_llama_cpu
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 5000 --vocab 512
base=(--model test --train-data "$TMP/train.bin" --batch 2 --seq 16 --warmup 1 --lr 1e-3)

echo "== the lock"
$T "${base[@]}" --steps 100000 --ckpt-every 0 --eval-every 0 --out "$TMP/busy" > /dev/null &
pid=$!
for _ in $(seq 100); do [ -s "$TMP/busy/log.jsonl" ] && break; sleep 0.1; done
expect_error "--out $TMP/busy is in use by another run (pid $pid on " $T "${base[@]}" --steps 2 --out "$TMP/busy"
kill -9 $pid; wait $pid 2> /dev/null || true
$T "${base[@]}" --steps 2 --out "$TMP/busy" --discard-newer > /dev/null || die "the lock outlived its killed owner"
echo "ok: a live run's --out is refused; its lock dies with it"

echo "== branching"
$T "${base[@]}" --steps 4 --ckpt-every 1 --out "$TMP/b" > /dev/null
expect_error "--out $TMP/b holds checkpoints up to step 4, newer than step 2 where this run starts" \
  $T "${base[@]}" --steps 6 --ckpt-every 1 --resume "$TMP/b/ckpt_00000002" --out "$TMP/b"
grep -q -- "--discard-newer" "$TMP/stderr" || die "the error does not name --discard-newer"
expect_error "--out $TMP/b holds checkpoints up to step 4, newer than step 0 where this run starts" $T "${base[@]}" --steps 6 --out "$TMP/b"
cp -r "$TMP/b/ckpt_00000002" "$TMP/ck2"
$T "${base[@]}" --steps 6 --ckpt-every 1 --resume "$TMP/ck2" --out "$TMP/elsewhere" > /dev/null
$T "${base[@]}" --steps 6 --ckpt-every 1 --resume "$TMP/b/ckpt_00000002" --out "$TMP/b" --discard-newer > "$TMP/branch.out"
[ "$(grep -c 'checkpoint: deleted .*, newer than step 2 (--discard-newer)' "$TMP/branch.out")" -eq 2 ] || die "expected 2 deletions reported"
cmp "$TMP/elsewhere/ckpt_00000006/model.safetensors" "$TMP/b/ckpt_00000006/model.safetensors" || die "the branch's weights differ"
$T "${base[@]}" --steps 7 --resume auto --out "$TMP/b" > "$TMP/auto.out"
grep -q "resume: $TMP/b/ckpt_00000006 at step 6" "$TMP/auto.out" || die "--resume auto did not take the branch's newest checkpoint"
echo "ok: branching is refused unless --discard-newer, which leaves one history"
echo "one owner per --out"
