#!/usr/bin/env bash
# t_tokenizer_sentencepiece.sh: the C tokenizer encodes and decodes exactly as the sentencepiece library on
# the LLaMA-2 model: TinyShakespeare as one text and line by line, CJK, emoji, combining marks, right-to-left
# text, control characters, invalid UTF-8, empty strings, runs of spaces and newlines, a 100 KB word, and
# random id sequences for decode. Any difference fails.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-/usr/bin/python3}"
DATA="${GRASS_DATA:-$(cd .. && pwd)/shared/data}"
for f in llama2_tokenizer.model tinyshakespeare.txt; do
  [ -f "$DATA/$f" ] || { echo "SKIPPED: $DATA/$f not found (set GRASS_DATA)"; exit 77; }
done
"$PY" -c 'import sentencepiece' 2>/dev/null || { echo "SKIPPED: $PY cannot import sentencepiece"; exit 77; }
make -s tokenize
"$PY" test/tokenizer_compare.py ./tokenize "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt"
