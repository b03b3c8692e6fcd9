#!/usr/bin/env bash
# t_tokenizer_errors.sh: every bad input to `tokenize` (missing or corrupt model, unreadable input, an output
# directory that cannot be made, unknown, malformed or contradictory options, bad ids for --decode) exits 1
# with one "error:" line that names what is wrong.
source test/lib.sh
PY=$PYTHON
need_data llama2_tokenizer.model tinyshakespeare.txt
need_python_module sentencepiece
make -s tokenize
dir=$TMP
"$PY" test/tokenizer_cli.py errors ./tokenize "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt" "$dir/work"
