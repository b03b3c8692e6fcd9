# dev/data's dataset scripts (C4, TinyStories, FineWeb-Edu) end to end without a network: a stand-in for the
# `datasets` package (test/fake_datasets) streams synthetic documents, and test/data_scripts.py checks the
# splits streamed and that the shards decode to exactly those documents, in order (details there).
# First dev/data/tinyshakespeare.sh without a network (a curl that cannot resolve a host), run from a copy whose
# repository holds nothing else: each missing input is one error line naming how to give a local copy, and no
# data/tokenizer.model link is left pointing at a missing file.
source test/lib.sh
ts=$TMP/checkout/dev/data/tinyshakespeare.sh
offline=$PWD/$TMP/offline  # absolute: the script changes directory before it downloads
mkdir -p "$(dirname "$ts")" "$offline"
cp dev/data/tinyshakespeare.sh "$ts"
printf '#!/bin/sh\necho "curl: (6) Could not resolve host (offline stand-in)" >&2\nexit 6\n' > "$offline/curl"
chmod +x "$offline/curl"
echo "First Citizen:" > "$TMP/input.txt"
PATH="$offline:$PATH" expect_error "give a local copy: dev/data/tinyshakespeare.sh /path/to/input.txt" "$ts"
PATH="$offline:$PATH" expect_error "give a local copy: TOKENIZER_MODEL=/path/to/tokenizer.model" "$ts" "$TMP/input.txt"
grep -qF "Could not resolve host (offline stand-in)" "$TMP/stderr" || die "the download error does not say why: $(cat "$TMP/stderr")"
TOKENIZER_MODEL="$TMP/none.model" expect_error "TOKENIZER_MODEL=$TMP/none.model: no such file" "$ts" "$TMP/input.txt"
expect_error "$TMP/none.txt: no such file" "$ts" "$TMP/none.txt"
[ ! -e "$TMP/checkout/data/tokenizer.model" ] && [ ! -L "$TMP/checkout/data/tokenizer.model" ] ||
  die "tinyshakespeare.sh left data/tokenizer.model without a tokenizer"
need_data llama2_tokenizer.model
need_python_module sentencepiece
make -s tokenize
"$PYTHON" test/data_scripts.py "$DATA/llama2_tokenizer.model" "$TMP"
