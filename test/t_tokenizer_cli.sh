#!/usr/bin/env bash
# t_tokenizer_cli.sh: the shards `tokenize` writes: headers and counts, BOS-separated documents in input
# order, the validation cut, shard sizes, uint32 shards, identical output for 1 and 4 threads, stale shards
# removed, invalid UTF-8, --encode/--decode and --help; checked against the sentencepiece library.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-/usr/bin/python3}"
DATA="${GRASS_DATA:-$(cd .. && pwd)/shared/data}"
for f in llama2_tokenizer.model tinyshakespeare.txt; do
  [ -f "$DATA/$f" ] || { echo "SKIPPED: $DATA/$f not found (set GRASS_DATA)"; exit 77; }
done
"$PY" -c 'import sentencepiece' 2>/dev/null || { echo "SKIPPED: $PY cannot import sentencepiece"; exit 77; }
make -s tokenize
mkdir -p test/tmp
dir=$(mktemp -d test/tmp/tokenizer_cli.XXXXXX)   # per run, so concurrent runs do not collide
trap 'rm -rf "$dir"' EXIT
"$PY" test/tokenizer_cli.py shards ./tokenize "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt" "$dir/work"
