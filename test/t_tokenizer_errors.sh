#!/usr/bin/env bash
# t_tokenizer_errors.sh: every bad input to `tokenize` (missing or corrupt model, unreadable input, an output
# directory that cannot be made, unknown, malformed or contradictory options, bad ids for --decode) exits 1
# with one "error:" line that names what is wrong; an output holding shards needs --overwrite, and a run
# killed in the middle leaves the earlier output intact.
source test/lib.sh
PY=$PYTHON
make -s tokenize
# first what needs no model: a missing --model names the option, a mistyped option the nearest one
expect_error "--model: cannot open $TMP/none.model: No such file or directory" ./tokenize --model "$TMP/none.model" --encode
expect_error "unknown option --ovewrite (did you mean --overwrite?" ./tokenize --model "$TMP/none.model" --ovewrite
need_data llama2_tokenizer.model tinyshakespeare.txt
need_python_module sentencepiece
dir=$TMP
"$PY" test/tokenizer_cli.py errors ./tokenize "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt" "$dir/work"

# An output that already holds shards of a split written now is refused without --overwrite.
M="$DATA/llama2_tokenizer.model"
./tokenize --model "$M" --out "$dir/prev" --shard-tokens 50000 "$DATA/tinyshakespeare.txt" 2> /dev/null
expect_error "prev already holds shards (train_" ./tokenize --model "$M" --out "$dir/prev" "$DATA/tinyshakespeare.txt"

# A run killed in the middle (--overwrite, its shards partly written) leaves the earlier complete output as it was.
before=$(cd "$dir/prev" && md5sum * | md5sum)
big="$dir/big.txt"
for i in $(seq 48); do cat "$DATA/tinyshakespeare.txt"; printf '\0'; done > "$big"   # 48 documents, 53 MB: over two of the 16 MB chunks a stream is read in
mkfifo "$dir/feed"
{ cat "$big"; exec sleep 120; } > "$dir/feed" &   # the text, then an open pipe: the run cannot finish
feeder=$!
./tokenize --model "$M" --out "$dir/prev" --overwrite --val-fraction 0 --threads 1 --shard-tokens 50000 - \
  < "$dir/feed" 2> /dev/null &
pid=$!
# wait until this run has written a shard (into its directory beside the output, or into the output itself)
for i in $(seq 600); do
  ls "$dir"/.prev.tokenize-*/train_000001.bin > /dev/null 2>&1 && break
  [ "$(cd "$dir/prev" && md5sum * | md5sum)" = "$before" ] || break
  sleep 0.1
done
kill -9 $pid $feeder
wait $pid $feeder 2> /dev/null || true
[ "$(cd "$dir/prev" && md5sum * | md5sum)" = "$before" ] || die "a killed tokenize changed the earlier output in $dir/prev"
echo "ok: a tokenize killed mid-run left the earlier output intact"
