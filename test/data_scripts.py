"""
data_scripts.py: runs dev/data's dataset scripts (c4.py, tinystories.py, fineweb_edu.py) on the stand-in
`datasets` of test/fake_datasets, and checks what they write: which dataset, config and splits they stream,
then shards whose documents (each starting with BOS) decode, with the sentencepiece library, to exactly the
streamed validation and training documents, in order, without overlap (a dataset without a validation split
gives its first --val-docs training documents to validation and trains on the rest), --max-docs respected.

usage: data_scripts.py MODEL.model WORKDIR
"""
import array
import glob
import os
import struct
import subprocess
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "fake_datasets"))
from datasets import document  # noqa: E402  (the stand-in's documents, to compare with)

STREAMED = 30  # documents in every fake split
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def read_docs(out, split, sp):
    """The documents of out/split_*.bin: the token runs that start with BOS, decoded."""
    tokens = []
    for path in sorted(glob.glob(os.path.join(out, split + "_*.bin"))):
        raw = open(path, "rb").read()
        magic, version, count = struct.unpack("<3i", raw[:12])
        check((magic, version) == (20240520, 1) and len(raw) == 1024 + 2 * count, "%s: header and size" % path)
        tokens += array.array("H", raw[1024:]).tolist()
    docs, cur = [], None
    for t in tokens:
        if t == sp.bos_id():
            if cur is not None:
                docs.append(cur)
            cur = []
        elif cur is None:
            check(False, "%s: the first token is BOS" % split)
            cur = [t]
        else:
            cur.append(t)
    if cur is not None:
        docs.append(cur)
    return [sp.decode(d) for d in docs]


def run_script(script, model, out, log, extra):
    env = dict(os.environ, PYTHONPATH=os.path.join(HERE, "fake_datasets"), FAKE_DATASETS_LOG=log,
               FAKE_DATASETS_DOCS=str(STREAMED))
    if os.path.exists(log):
        os.remove(log)
    p = subprocess.run([sys.executable, os.path.join(ROOT, "dev", "data", script), "--model", model, "--out", out,
                        "--threads", "2"] + extra, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    check(p.returncode == 0, "%s: exit 0" % " ".join([script] + extra))
    if p.returncode != 0:
        print(p.stdout.decode(errors="replace"))
    return open(log).read().splitlines() if os.path.exists(log) else []


def main():
    model, work = sys.argv[1], sys.argv[2]
    sp = spm.SentencePieceProcessor(model_file=model)
    # script, dataset, config, validation split (None: the head of train), --val-docs, --max-docs
    cases = [
        ("c4.py", "allenai/c4", "en", "validation", 12, 10),
        ("tinystories.py", "roneneldan/TinyStories", None, "validation", None, None),
        ("fineweb_edu.py", "HuggingFaceFW/fineweb-edu", "sample-10BT", None, 8, 15),
    ]
    for script, dataset, config, val_split, val_docs, max_docs in cases:
        out = os.path.join(work, script[:-3])
        extra = (["--val-docs", str(val_docs)] if val_docs else []) + (["--max-docs", str(max_docs)] if max_docs else [])
        calls = run_script(script, model, out, os.path.join(work, script + ".log"), extra)
        want_calls = ["%s %s %s streaming=True" % (dataset, config, s) for s in ["train"] + ([val_split] if val_split else [])]
        check(sorted(calls) == sorted(want_calls), "%s streams %s (got %s)" % (script, want_calls, calls))
        n_val = val_docs if val_docs is not None else STREAMED
        first_train = 0 if val_split else n_val
        n_train = min(max_docs if max_docs is not None else STREAMED, STREAMED - first_train)
        want_val = [document(dataset, val_split or "train", i) for i in range(n_val)]
        want_train = [document(dataset, "train", first_train + i) for i in range(n_train)]
        got_val, got_train = read_docs(out, "val", sp), read_docs(out, "train", sp)
        check(got_val == want_val, "%s: %d validation documents, decoded to the streamed text (got %d)" % (script, n_val, len(got_val)))
        check(got_train == want_train, "%s: %d training documents from train document %d on (got %d)" % (
            script, n_train, first_train, len(got_train)))
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all dataset scripts write the streamed documents")


if __name__ == "__main__":
    main()
