#!/usr/bin/env bash
# t_tokenizer_variants.sh: the C tokenizer against the sentencepiece library on rewritten copies of the
# LLaMA-2 model that exercise what LLaMA does not use: remove_extra_whitespaces, no dummy prefix, no
# whitespace escaping, USER_DEFINED and UNUSED pieces, equal scores, no byte fallback, a 72000-piece vocabulary.
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-/usr/bin/python3}"
DATA="${GRASS_DATA:-$(cd .. && pwd)/shared/data}"
[ -f "$DATA/llama2_tokenizer.model" ] || { echo "SKIPPED: $DATA/llama2_tokenizer.model not found (set GRASS_DATA)"; exit 77; }
"$PY" -c 'import sentencepiece' 2>/dev/null || { echo "SKIPPED: $PY cannot import sentencepiece"; exit 77; }
make -s tokenize
mkdir -p test/tmp
dir=$(mktemp -d test/tmp/tokenizer_variants.XXXXXX)   # per run, so concurrent runs do not collide
trap 'rm -rf "$dir"' EXIT
for v in extra-ws no-prefix no-escape user-unused ties no-bytefallback big-vocab; do
  "$PY" test/tokenizer_model.py "$DATA/llama2_tokenizer.model" "$dir/$v.model" "$v"
  quick=""; [ "$v" = big-vocab ] && quick=--quick   # 40000 user-defined pieces make long texts slow
  "$PY" test/tokenizer_compare.py ./tokenize "$dir/$v.model" $quick
done
