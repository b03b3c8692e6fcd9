# dev/plot_loss.py turns runs' log.jsonl into a PNG (including a resumed run's repeated steps, here from resuming
# an older checkpoint with --discard-newer), by default into out/loss.png (a root loss.png is ignored by git), and
# refuses a missing or malformed log with one error line.
source test/lib.sh
/usr/bin/python3 -c "import matplotlib" 2> /dev/null || skip "matplotlib is not installed (apt-get install python3-matplotlib)"
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 6000 --vocab 512
"$PYTHON" test/shard_tool.py "$TMP/val.bin" --tokens 3000 --vocab 512 --seed 4
./train_llama_cpu --model test --train-data "$TMP/train.bin" --val-data "$TMP/val.bin" --batch 2 --seq 32 --steps 6 \
  --warmup 1 --eval-every 3 --eval-batches 2 --ckpt-every 3 --out "$TMP/run" > /dev/null
./train_llama_cpu --model test --train-data "$TMP/train.bin" --val-data "$TMP/val.bin" --batch 2 --seq 32 --steps 6 \
  --warmup 1 --eval-every 3 --eval-batches 2 --resume "$TMP/run/ckpt_00000003" --discard-newer --out "$TMP/run" > /dev/null
/usr/bin/python3 dev/plot_loss.py "$TMP/run" -o "$TMP/loss.png"
[ "$(head -c 8 "$TMP/loss.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || die "the plot is not a PNG"
root=$PWD  # without -o the plot goes to out/loss.png under the current directory, not beside the code
(cd "$TMP" && /usr/bin/python3 "$root/dev/plot_loss.py" run > /dev/null)
[ -f "$TMP/out/loss.png" ] || die "dev/plot_loss.py without -o did not write out/loss.png"
if git rev-parse --git-dir > /dev/null 2>&1; then
  git check-ignore -q loss.png || die ".gitignore does not cover a loss.png written in the repository root"
fi
expect_error "not found" /usr/bin/python3 dev/plot_loss.py "$TMP/nowhere" -o "$TMP/x.png"
echo '{"step": 1, "loss": ' > "$TMP/bad.jsonl"
expect_error "bad.jsonl:1 is not a JSON line" /usr/bin/python3 dev/plot_loss.py "$TMP/bad.jsonl" -o "$TMP/x.png"
