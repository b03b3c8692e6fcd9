"""
hf_tokenize.py: shared by the dataset scripts (tinystories.py, fineweb_edu.py, c4.py). Streams the documents
of a Hugging Face dataset (`datasets`, streaming, nothing stored but the shards) through the `tokenize` tool
into data/NAME/val_*.bin and data/NAME/train_*.bin. Documents go to tokenize's stdin separated by NUL bytes,
first the validation documents (tokenize --val-fraction 1), then the training ones (--val-fraction 0).

The tokenizer model is --model, else $TOKENIZER_MODEL, else ../shared/data/llama2_tokenizer.model beside the
checkout, else data/llama2_tokenizer.model (downloaded once from a public copy of LLaMA's tokenizer.model).
"""
import argparse
import itertools
import os
import subprocess
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_URL = "https://huggingface.co/hf-internal-testing/llama-tokenizer/resolve/main/tokenizer.model"


def tokenizer_model(path):
    candidates = [path, os.environ.get("TOKENIZER_MODEL"),
                  os.path.join(os.path.dirname(ROOT), "shared", "data", "llama2_tokenizer.model")]
    for p in candidates:
        if p:
            if not os.path.isfile(p):
                sys.exit("error: tokenizer model %s not found" % p)
            return p
    local = os.path.join(ROOT, "data", "llama2_tokenizer.model")
    if not os.path.isfile(local):
        os.makedirs(os.path.dirname(local), exist_ok=True)
        print("downloading %s -> %s" % (MODEL_URL, local), file=sys.stderr)
        urllib.request.urlretrieve(MODEL_URL, local + ".part")
        os.replace(local + ".part", local)
    return local


def tokenize_docs(args, model, split, docs):
    """Pipes the documents through tokenize; split "val" or "train" picks --val-fraction 1 or 0."""
    tokenize = os.path.join(ROOT, "tokenize")
    if not os.path.isfile(tokenize):
        subprocess.run(["make", "-C", ROOT, "tokenize"], check=True)
    # --overwrite: rerunning the script makes the split's shards afresh (the other split's are kept)
    cmd = [tokenize, "--model", model, "--out", args.out, "--overwrite", "--val-fraction", "1" if split == "val" else "0",
           "--shard-tokens", str(args.shard_tokens)] + (["--threads", str(args.threads)] if args.threads else []) + ["-"]
    print("%s: %s" % (split, " ".join(cmd)), file=sys.stderr)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    n = 0
    for text in docs:
        p.stdin.write(text.replace("\0", "").encode("utf-8", errors="surrogatepass") + b"\0")
        n += 1
    p.stdin.close()
    if p.wait() != 0:
        sys.exit("error: tokenize failed on the %s documents" % split)
    print("%s: %d documents" % (split, n), file=sys.stderr)


def prepare(name, doc, dataset, config, train_split, val_split, val_docs):
    """Command line of a dataset script. val_split None: the first --val-docs documents of the train split
    are the validation set (and are not trained on)."""
    ap = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "data", name), help="output directory (default data/%s)" % name)
    ap.add_argument("--max-docs", type=int, default=None, help="at most this many training documents (default: all)")
    ap.add_argument("--val-docs", type=int, default=val_docs,
                    help="validation documents (default: %s)" % ("all of the %s split" % val_split if val_docs is None else val_docs))
    ap.add_argument("--model", default=None, help="SentencePiece .model (default: see below)")
    ap.add_argument("--shard-tokens", type=int, default=100_000_000, help="tokens per shard (default 100000000)")
    ap.add_argument("--threads", type=int, default=0, help="tokenize threads (default: every core)")
    args = ap.parse_args()
    model = tokenizer_model(args.model)
    try:
        from datasets import load_dataset
    except ImportError:
        sys.exit("error: this script needs the Hugging Face `datasets` package: pip install datasets")

    def texts(split):
        return (row["text"] for row in load_dataset(dataset, config, split=split, streaming=True))

    train = texts(train_split)
    val = texts(val_split) if val_split else train   # without a val split: the head of the train stream
    tokenize_docs(args, model, "val", itertools.islice(val, args.val_docs))
    tokenize_docs(args, model, "train", itertools.islice(train, args.max_docs))
