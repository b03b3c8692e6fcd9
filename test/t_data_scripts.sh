# dev/data's dataset scripts (C4, TinyStories, FineWeb-Edu) end to end without a network: a stand-in for the
# `datasets` package (test/fake_datasets) streams synthetic documents, and test/data_scripts.py checks the
# splits streamed and that the shards decode to exactly those documents, in order (details there).
source test/lib.sh
need_data llama2_tokenizer.model
need_python_module sentencepiece
make -s tokenize
"$PYTHON" test/data_scripts.py "$DATA/llama2_tokenizer.model" "$TMP"
