#!/usr/bin/env bash
# t_tokenizer_variants.sh: the C tokenizer against the sentencepiece library on rewritten copies of the
# LLaMA-2 model that exercise what LLaMA does not use: remove_extra_whitespaces, no dummy prefix, no
# whitespace escaping, USER_DEFINED and UNUSED pieces, equal scores, no byte fallback, a 72000-piece vocabulary.
source test/lib.sh
PY=$PYTHON
need_data llama2_tokenizer.model
need_python_module sentencepiece
make -s tokenize
dir=$TMP
for v in extra-ws no-prefix no-escape user-unused ties no-bytefallback big-vocab; do
  "$PY" test/tokenizer_model.py "$DATA/llama2_tokenizer.model" "$dir/$v.model" "$v"
  quick=""; [ "$v" = big-vocab ] && quick=--quick   # 40000 user-defined pieces make long texts slow
  "$PY" test/tokenizer_compare.py ./tokenize "$dir/$v.model" $quick
done
