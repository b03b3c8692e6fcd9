#!/usr/bin/env bash
# tinyshakespeare.sh: TinyShakespeare -> data/tinyshakespeare/train_000000.bin and val_000000.bin (the last
# 10% of the text, cut at a line) with the LLaMA tokenizer and ./tokenize.
# usage: dev/data/tinyshakespeare.sh [PATH_TO_TXT]
#   PATH_TO_TXT: a local copy of the text; without it the text is downloaded with curl.
#   $TOKENIZER_MODEL: the tokenizer; default ../shared/data/llama2_tokenizer.model beside the checkout if it
#   exists, else data/llama2_tokenizer.model, downloaded once from a public copy of LLaMA's tokenizer.model.
#   data/tokenizer.model is left as a link to it, for the trainers' --tokenizer.
set -euo pipefail
txt="${1:-}"
[ -z "$txt" ] || txt="$(realpath "$txt")"
model="${TOKENIZER_MODEL:-}"
[ -z "$model" ] || model="$(realpath "$model")"
cd "$(dirname "$0")/../.."
out=data/tinyshakespeare
mkdir -p "$out"
if [ -z "$txt" ]; then
  txt="$out/input.txt"
  [ -f "$txt" ] || curl -fsSL -o "$txt" https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
fi
if [ -z "$model" ]; then
  model=../shared/data/llama2_tokenizer.model
  if [ ! -f "$model" ]; then
    model=data/llama2_tokenizer.model
    [ -f "$model" ] || curl -fsSL -o "$model" https://huggingface.co/hf-internal-testing/llama-tokenizer/resolve/main/tokenizer.model
  fi
fi
ln -sf "$(realpath "$model")" data/tokenizer.model
make -s tokenize
./tokenize --model "$model" --out "$out" --overwrite --val-fraction 0.1 "$txt"  # a rerun makes the shards afresh
