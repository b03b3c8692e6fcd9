#!/usr/bin/env bash
# t_tokenizer_cli.sh: the shards `tokenize` writes: headers and counts, BOS-separated documents in input
# order, the validation cut, shard sizes, uint32 shards, identical output for 1 and 4 threads, stale shards
# removed, invalid UTF-8, --encode/--decode and --help; checked against the sentencepiece library.
source test/lib.sh
PY=$PYTHON
need_data llama2_tokenizer.model tinyshakespeare.txt
need_python_module sentencepiece
make -s tokenize
dir=$TMP
"$PY" test/tokenizer_cli.py shards ./tokenize "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt" "$dir/work"
