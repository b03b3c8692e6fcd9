#!/usr/bin/env bash
# t_tokenizer_errors.sh: every bad input to `tokenize` (missing or corrupt model, unreadable input, an output
# directory that cannot be made, unknown, malformed or contradictory options, bad ids for --decode) exits 1
# with one "error:" line that names what is wrong.
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
dir=$(mktemp -d test/tmp/tokenizer_errors.XXXXXX)   # per run, so concurrent runs do not collide
trap 'rm -rf "$dir"' EXIT
"$PY" test/tokenizer_cli.py errors ./tokenize "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt" "$dir/work"
