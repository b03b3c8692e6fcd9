#!/usr/bin/env bash
# tinyshakespeare.sh: TinyShakespeare -> data/tinyshakespeare/train_000000.bin and val_000000.bin (the last
# 10% of the text, cut at a line) with the LLaMA tokenizer and ./tokenize.
# usage: dev/data/tinyshakespeare.sh [PATH_TO_TXT]
#   PATH_TO_TXT: a local copy of the text; without it the text is downloaded with curl.
#   $TOKENIZER_MODEL: the tokenizer; default ../shared/data/llama2_tokenizer.model beside the checkout if it
#   exists, else data/llama2_tokenizer.model, downloaded once from a public copy of LLaMA's tokenizer.model.
#   data/tokenizer.model is left as a link to it, for the trainers' --tokenizer.
# Without a network give both as local copies:
#   TOKENIZER_MODEL=/path/to/tokenizer.model dev/data/tinyshakespeare.sh /path/to/input.txt
set -euo pipefail
usage_text="dev/data/tinyshakespeare.sh /path/to/input.txt"
usage_model="TOKENIZER_MODEL=/path/to/tokenizer.model dev/data/tinyshakespeare.sh [PATH/input.txt]"
die() { echo "error: $*" >&2; exit 1; }
# download URL FILE WHAT HOWTO: fetches URL into FILE through FILE.part (an interrupted download leaves no FILE
# that a rerun would take as complete), or fails with one line naming what it was and how to give a local copy.
download() {
  local err
  err=$(curl -fsSL -o "$2.part" "$1" 2>&1) || { rm -f "$2.part"; die "cannot download $3 from $1 (${err:-curl failed}); give a local copy: $4"; }
  mv "$2.part" "$2"
}
# The local copies named, checked before anything is written or downloaded.
txt="${1:-}"
if [ -n "$txt" ]; then
  [ -f "$txt" ] || die "$txt: no such file (the TinyShakespeare text; usage: $usage_text)"
  txt="$(realpath "$txt")"
fi
model="${TOKENIZER_MODEL:-}"
if [ -n "$model" ]; then
  [ -f "$model" ] || die "TOKENIZER_MODEL=$model: no such file (LLaMA's SentencePiece tokenizer.model; usage: $usage_model)"
  model="$(realpath "$model")"
fi
cd "$(dirname "$0")/../.."
out=data/tinyshakespeare
mkdir -p "$out"
if [ -z "$txt" ]; then
  txt="$out/input.txt"
  [ -f "$txt" ] || download https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt "$txt" \
    "the TinyShakespeare text" "$usage_text"
fi
if [ -z "$model" ]; then
  model=../shared/data/llama2_tokenizer.model
  if [ ! -f "$model" ]; then
    model=data/llama2_tokenizer.model
    [ -f "$model" ] || download https://huggingface.co/hf-internal-testing/llama-tokenizer/resolve/main/tokenizer.model "$model" \
      "the LLaMA tokenizer" "$usage_model"
  fi
fi
ln -sf "$(realpath "$model")" data/tokenizer.model  # the tokenizer exists by now: never a dangling link
make -s tokenize
./tokenize --model "$model" --out "$out" --overwrite --val-fraction 0.1 "$txt"  # a rerun makes the shards afresh
