"""Checks a checkpoint directory as a Hugging Face transformers user would use it: tokenizer and generation.

usage: hf_generate.py CKPT_DIR --prompt IDS [--expect IDS | --expect-file PATH] [--max-new-tokens N]
                      [--ignore-eos] [--no-tokenizer]
Loads CKPT_DIR with AutoModelForCausalLM (fp32, eager attention; a bf16 checkpoint is widened) and, unless
--no-tokenizer, AutoTokenizer, which must load. Then greedy generation (model.generate with do_sample=False)
from the prompt ids. With --expect or --expect-file the new tokens must be exactly those ids, else it says
where they first differ and exits 1; without, it prints them, e.g. to produce the expected ids. This is the
reverse check of a C trainer's checkpoint and its own greedy sampling: transformers continues a prompt with the
same tokens. Works with torch 1.13 and transformers 4.45.
"""
import argparse
import sys

import torch


def id_list(text):
    """Token ids separated by commas and/or whitespace."""
    ids = [int(v) for v in text.replace(",", " ").split()]
    if not ids:
        raise argparse.ArgumentTypeError("no token ids")
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt_dir", help="a Hugging Face checkpoint directory (config.json, safetensors, tokenizer)")
    ap.add_argument("--prompt", type=id_list, required=True, help="prompt token ids, e.g. 1,450,3681")
    expect = ap.add_mutually_exclusive_group()
    expect.add_argument("--expect", type=id_list, help="the expected new token ids, e.g. 322,278")
    expect.add_argument("--expect-file", help="a file holding the expected new token ids (commas or whitespace)")
    ap.add_argument("--max-new-tokens", type=int, default=None,
                    help="tokens to generate (default: as many as expected; required without --expect*)")
    ap.add_argument("--ignore-eos", action="store_true",
                    help="generate all max-new-tokens even past an eos id (by default generation stops at eos)")
    ap.add_argument("--no-tokenizer", action="store_true",
                    help="do not load a tokenizer (for a directory without one)")
    a = ap.parse_args()

    want = a.expect
    if a.expect_file:
        with open(a.expect_file) as f:
            want = id_list(f.read())
    n = a.max_new_tokens if a.max_new_tokens is not None else (len(want) if want else None)
    if n is None or n < 1:
        ap.error("--max-new-tokens N (N >= 1) is needed without --expect or --expect-file")

    from transformers import AutoModelForCausalLM, AutoTokenizer
    tokenizer = None
    if not a.no_tokenizer:
        try:
            tokenizer = AutoTokenizer.from_pretrained(a.ckpt_dir)
        except Exception as e:  # any failure to load is the finding; say which
            print(f"FAIL: AutoTokenizer.from_pretrained({a.ckpt_dir}) failed: {type(e).__name__}: {e}")
            return 1
        print(f"tokenizer: {type(tokenizer).__name__}, {len(tokenizer)} tokens, "
              f"bos {tokenizer.bos_token_id}, eos {tokenizer.eos_token_id}")

    model = AutoModelForCausalLM.from_pretrained(a.ckpt_dir, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    gc = model.generation_config
    if a.ignore_eos:
        gc.eos_token_id = None
    eos = gc.eos_token_id if isinstance(gc.eos_token_id, list) else [gc.eos_token_id]
    pad = next((i for i in eos if i is not None), 0)  # only to silence the warning: one sequence, no padding
    vocab = model.config.vocab_size
    bad = [i for i in a.prompt + (want or []) if not 0 <= i < vocab]
    if bad:
        print(f"FAIL: token ids {bad} are outside the vocabulary [0, {vocab})")
        return 1

    prompt = torch.tensor([a.prompt], dtype=torch.long)
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n, do_sample=False,
                             num_beams=1, pad_token_id=pad)
    got = out[0, prompt.shape[1]:].tolist()
    print(f"prompt {','.join(map(str, a.prompt))}")
    print(f"generated {','.join(map(str, got))}")
    if tokenizer is not None:
        print(f"text {tokenizer.decode(got)!r}")
    if want is None:
        return 0
    if got != want:
        at = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
        print(f"FAIL: greedy generation differs from the expected ids at new token {at}: "
              f"got {got[at:at + 8]}{'...' if len(got) > at + 8 else ''}, "
              f"expected {want[at:at + 8]}{'...' if len(want) > at + 8 else ''} "
              f"(lengths {len(got)} and {len(want)})")
        return 1
    print(f"PASS: {len(got)} new tokens as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
