#!/usr/bin/env bash
# t_tokenizer_sentencepiece.sh: the C tokenizer encodes and decodes exactly as the sentencepiece library on
# the LLaMA-2 model: TinyShakespeare as one text and line by line, CJK, emoji, combining marks, right-to-left
# text, control characters, invalid UTF-8, empty strings, runs of spaces and newlines, a 100 KB word, and
# random id sequences for decode. Any difference fails.
source test/lib.sh
PY=$PYTHON
need_data llama2_tokenizer.model tinyshakespeare.txt
need_python_module sentencepiece
make -s tokenize
"$PY" test/tokenizer_compare.py ./tokenize "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt"
