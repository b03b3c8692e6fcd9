#!/usr/bin/env bash
# t_tokenizer_bpe.sh: the byte-level BPE tokenizer (tokenizer/bpe.h) encodes and decodes Llama-3.2's
# tokenizer.json exactly as the `tokenizers` library does (test/tokenizer_bpe_compare.py: the SentencePiece
# test's cases and many more, TinyShakespeare whole and line by line through `tokenize` shards, rewritten copies
# of the file); malformed and unsupported tokenizer.json files give one error line naming the file; and
# tokenizer/unicode_tables.h is what tokenizer/unicode_gen.py writes. The tokenizer.json comes from PyPI at test
# time (need_llama3_tokenizer, test/lib.sh).
source test/lib.sh
need_data tinyshakespeare.txt
need_python_module tokenizers

# the generated Unicode tables are current (where this Python has the Unicode version they were made with)
have=$("$PYTHON" -c 'import unicodedata; print(unicodedata.unidata_version)')
made=$(sed -n 's/^#define UNICODE_TABLES_VERSION "\(.*\)"/\1/p' tokenizer/unicode_tables.h)
if [ "$have" = "$made" ]; then
  "$PYTHON" tokenizer/unicode_gen.py --check || die "tokenizer/unicode_tables.h is stale: run python3 tokenizer/unicode_gen.py"
else
  echo "not checked: tokenizer/unicode_tables.h is of Unicode $made, $PYTHON has $have"
fi

"$PYTHON" test/tokenizer_bpe_compare.py --errors ./tokenize "$TMP/errors"

need_llama3_tokenizer

"$PYTHON" test/tokenizer_bpe_compare.py test/bin/tokenizer_bpe_run ./tokenize "$LLAMA3_TOKENIZER" "$DATA/tinyshakespeare.txt" "$TMP/work"
