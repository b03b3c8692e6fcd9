# I/O errors are reported, never silent and never fatal without a word: a full disk under log.jsonl (/dev/full),
# a file-size limit (ulimit -f: EFBIG; the trainer ignores SIGXFSZ, which would kill it) and a full file system
# under a checkpoint (a small tmpfs in a private mount namespace) each end the run with one error line naming the
# file and the OS error; the previous complete checkpoint stays intact and resumable, and no partial checkpoint is left.
# --keep-last N keeps only the newest N checkpoints.
source test/lib.sh
T=./train_llama_cpu
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 5000 --vocab 512
base=(--model test --train-data "$TMP/train.bin" --batch 2 --seq 16 --warmup 1 --lr 1e-3)

echo "== a full disk under log.jsonl"
mkdir -p "$TMP/full" && ln -s /dev/full "$TMP/full/log.jsonl"
expect_error "cannot write $TMP/full/log.jsonl: No space left on device" $T "${base[@]}" --steps 2 --out "$TMP/full"

echo "== a file-size limit while a checkpoint is written (the model checkpoint is 0.6 MB, its state.bin 1.3 MB)"
$T "${base[@]}" --steps 2 --ckpt-every 1 --out "$TMP/limit" > /dev/null
cp -r "$TMP/limit/ckpt_00000002" "$TMP/before"
# (MPI's start-up, in an MPI build, keeps its shared-memory files small with PMIx's hash store and no shared-memory btl)
expect_error "cannot write $TMP/limit/ckpt_00000003.tmp/state.bin: File too large" \
  env PMIX_MCA_gds=hash OMPI_MCA_btl=self bash -c 'ulimit -f 1000 && exec "$@"' _ $T "${base[@]}" --steps 4 --ckpt-every 1 --resume auto --out "$TMP/limit"
[ -z "$(ls "$TMP/limit" | grep ckpt_00000003)" ] || die "a partial checkpoint was left: $(ls "$TMP/limit")"
diff -r "$TMP/before" "$TMP/limit/ckpt_00000002" || die "the previous checkpoint changed"
$T "${base[@]}" --steps 4 --ckpt-every 1 --resume auto --out "$TMP/limit" > /dev/null || die "resuming after EFBIG failed"
echo "ok: EFBIG reported, the previous checkpoint intact and resumable"

echo "== a full file system while a checkpoint is written (a 2.6 MB tmpfs: one checkpoint fits, not two)"
command -v unshare > /dev/null || die "unshare (util-linux) is needed for the ENOSPC check"
cat > "$TMP/enospc.sh" << 'INNER'
set -u
dir=$1; shift
mount -t tmpfs -o size=2600k tmpfs "$dir" || { echo "FAIL: cannot mount a tmpfs on $dir"; exit 2; }
rc=0; "$@" --steps 3 --ckpt-every 1 --out "$dir/run" > /dev/null 2> "$dir/../enospc.err" || rc=$?
ls "$dir/run" > "$dir/../enospc.ls"
[ $rc -eq 1 ] || { echo "FAIL: exit $rc, expected 1"; exit 2; }
"$@" --steps 2 --ckpt-every -1 --resume auto --out "$dir/run" > /dev/null || { echo "FAIL: ckpt_00000001 does not resume"; exit 2; }
INNER
mkdir -p "$TMP/small"
unshare -rm bash "$TMP/enospc.sh" "$TMP/small" $T "${base[@]}" || die "the ENOSPC run failed (see above)"
cat "$TMP/enospc.err"
[ "$(wc -l < "$TMP/enospc.err")" -eq 1 ] || die "expected one error line"
grep -q "^error: cannot write $TMP/small/run/ckpt_00000002.tmp/.*: No space left on device" "$TMP/enospc.err" || die "unexpected message"
grep -q ckpt_00000002 "$TMP/enospc.ls" && die "a partial checkpoint was left: $(cat "$TMP/enospc.ls")"
grep -q '^ckpt_00000001$' "$TMP/enospc.ls" || die "the previous checkpoint is gone"
echo "ok: ENOSPC reported, the partial checkpoint removed, the previous one resumable"

echo "== --keep-last 2"
$T "${base[@]}" --steps 6 --ckpt-every 1 --keep-last 2 --out "$TMP/keep" > "$TMP/keep.out"
[ "$(ls "$TMP/keep" | grep ckpt_ | tr '\n' ' ')" = "ckpt_00000005 ckpt_00000006 " ] || die "kept: $(ls "$TMP/keep")"
[ "$(grep -c 'checkpoint: deleted .* (--keep-last 2)' "$TMP/keep.out")" -eq 4 ] || die "expected 4 deletions reported"
echo "ok: --keep-last 2 keeps ckpt_00000005 and ckpt_00000006"
echo "I/O errors reported"
