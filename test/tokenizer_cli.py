"""
tokenizer_cli.py: tests of the `tokenize` tool. `shards`: the shards it writes (header, counts, documents
in input order each starting with BOS, the validation cut, shard sizes, uint32 shards for big vocabularies,
the same bytes for 1 and 4 threads, stale shards removed, invalid UTF-8, --encode/--decode, --help), all
checked against the `sentencepiece` library. `errors`: every bad input gives exit 1 and one `error:` line.

usage: tokenizer_cli.py shards|errors TOKENIZE MODEL SHAKESPEARE_TXT WORKDIR
"""
import array
import os
import shutil
import struct
import subprocess
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def run(args, stdin=b""):
    p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def read_shard(path):
    raw = open(path, "rb").read()
    magic, version, count = struct.unpack("<3i", raw[:12])
    wide = magic == 20240801
    ok = (magic, version) in ((20240520, 1), (20240801, 7)) and len(raw) == 1024 + (4 if wide else 2) * count
    check(ok, "%s: header (magic %d, version %d, count %d) matches the file size %d" % (
        os.path.basename(path), magic, version, count, len(raw)))
    return array.array("I" if wide else "H", raw[1024:]).tolist(), wide


def read_split(out, split):
    """All tokens of DIR/split_*.bin in order, and the token count of each shard."""
    tokens, counts, wide = [], [], False
    names = sorted(n for n in os.listdir(out) if n.startswith(split + "_") and n.endswith(".bin"))
    check(names == ["%s_%06d.bin" % (split, i) for i in range(len(names))], "%s shards are numbered 0.. without gaps" % split)
    for n in names:
        t, wide = read_shard(os.path.join(out, n))
        tokens += t
        counts.append(len(t))
    return tokens, counts, wide


def walk(path):
    """Input files in the order the tool reads them: sorted by name at each level, dot-names skipped."""
    if not os.path.isdir(path):
        return [path]
    files = []
    for name in sorted(os.listdir(path)):
        if not name.startswith("."):
            files += walk(os.path.join(path, name))
    return files


def expected(sp, blobs, val_fraction):
    """Train and val token streams by the documented rule: NUL-separated documents, empty ones skipped, the
    last val_fraction of the bytes to validation, a document holding the cut split after the first newline
    at or after it."""
    total = sum(len(b) for b in blobs)
    cut = total - int(val_fraction * total + 0.5)
    train, val, pos = [], [], 0
    for b in blobs:
        a = 0
        for doc in b.split(b"\0"):
            start, end = pos + a, pos + a + len(doc)
            parts = []
            if end <= cut:
                parts = [(doc, train)]
            elif start >= cut:
                parts = [(doc, val)]
            else:
                nl = doc.find(b"\n", cut - start)
                s = nl + 1 if nl >= 0 else len(doc)
                parts = [(doc[:s], train), (doc[s:], val)]
            for text, dest in parts:
                if text:
                    dest += [sp.bos_id()] + sp.encode(text)
            a += len(doc) + 1
        pos += len(b)
    return train, val


def tokenize_dir(tokenize, model, out, inputs, extra=(), stdin=b""):
    rc, _, err = run([tokenize, "--model", model, "--out", out] + list(extra) + inputs, stdin)
    check(rc == 0, "tokenize %s exits 0 (%s)" % (" ".join(list(extra) + [os.path.basename(i) for i in inputs]),
                                                 err.strip().splitlines()[-1] if err.strip() else ""))
    return err


def test_shards(tokenize, model, text_path, work):
    sp = spm.SentencePieceProcessor(model_file=model)
    text = open(text_path, "rb").read()
    bos = sp.bos_id()

    # a tree of inputs: sorted walk, dot-files skipped, empty files and empty documents skipped, NUL separators
    tree = os.path.join(work, "tree")
    os.makedirs(os.path.join(tree, "a"))
    files = {"b.txt": b"The second file.\n", "a/z.txt": "z: caf\u00e9 \u4e2d\u6587 \U0001F600\n".encode(),
             "a/y.txt": b"y comes before z\n\nwith a blank line", "empty.txt": b"", ".hidden.txt": b"never read",
             "multi.txt": b"doc one\0doc two\0\0 doc three with spaces  \0"}
    for name, data in files.items():
        open(os.path.join(tree, name), "wb").write(data)
    stdin = b"stdin doc A\0stdin doc B\n"
    order = walk(tree)
    check([os.path.relpath(f, tree) for f in order] == ["a/y.txt", "a/z.txt", "b.txt", "empty.txt", "multi.txt"],
          "directory walk order and dot-file skipping (helper)")
    blobs = [open(f, "rb").read() for f in order] + [stdin]
    for frac in ("0", "0.3"):
        out = os.path.join(work, "tree_out_" + frac)
        tokenize_dir(tokenize, model, out, [tree, "-"], ["--val-fraction", frac], stdin)
        train, val = expected(sp, blobs, float(frac))
        got_train, _, _ = read_split(out, "train")
        got_val, counts, _ = read_split(out, "val")
        check(got_train == train, "tree, val-fraction %s: train tokens = BOS + sentencepiece per document, in order" % frac)
        check(got_val == val, "tree, val-fraction %s: val tokens by the byte cut (%d tokens)" % (frac, len(val)))
        if frac == "0":
            check(counts == [], "val-fraction 0 writes no val shard")

    # TinyShakespeare: one document, split at a line; several shards of exactly --shard-tokens
    out = os.path.join(work, "shakespeare")
    err = tokenize_dir(tokenize, model, out, [text_path], ["--val-fraction", "0.1", "--shard-tokens", "50000"])
    check("MB/s" in err and "tokens/s" in err, "progress line with MB/s and tokens/s on stderr")
    train, val = expected(sp, [text], 0.1)
    got_train, counts, _ = read_split(out, "train")
    got_val, _, _ = read_split(out, "val")
    check(got_train == train and got_val == val, "tinyshakespeare: train and val match sentencepiece")
    check(len(counts) > 1 and all(c == 50000 for c in counts[:-1]) and 0 < counts[-1] <= 50000,
          "tinyshakespeare: %d train shards of 50000 tokens, the last %d" % (len(counts), counts[-1] if counts else 0))
    frac = len(got_val) / max(1, len(got_val) + len(got_train))
    check(0.08 < frac < 0.12 and got_val[:1] == [bos], "tinyshakespeare: val is %.3f of the tokens and starts with BOS" % frac)
    cut = len(text) - int(0.1 * len(text) + 0.5)
    split_at = text.index(b"\n", cut) + 1
    _, dec_train, _ = run([tokenize, "--model", model, "--decode"], " ".join(map(str, got_train)).encode())
    _, dec_val, _ = run([tokenize, "--model", model, "--decode"], " ".join(map(str, got_val)).encode())
    check(dec_train == text[:split_at] and dec_val == text[split_at:], "tinyshakespeare: shards decode back to the text")

    # a rerun over the shards of an earlier one is refused without --overwrite; with it the earlier shards are
    # replaced (the stale ones numbered past the new ones go), other files stay, nothing is left beside DIR
    open(os.path.join(out, "notes.txt"), "wb").write(b"kept")
    rc, _, err = run([tokenize, "--model", model, "--out", out, text_path])
    check(rc == 1 and "--overwrite" in err, "a rerun over earlier shards without --overwrite is refused")
    tokenize_dir(tokenize, model, out, [text_path], ["--overwrite"])
    check(sorted(os.listdir(out)) == ["notes.txt", "train_000000.bin", "val_000000.bin"],
          "--overwrite replaces the earlier shards and keeps other files")
    check(not [n for n in os.listdir(work) if ".tokenize-" in n], "no temporary directory is left beside the output")

    # 1 thread and 4 threads write the same bytes
    many = os.path.join(work, "many")
    os.makedirs(many)
    lines = text.split(b"\n")
    for i in range(40):
        open(os.path.join(many, "part%02d.txt" % i), "wb").write(b"\n".join(lines[i * 900:(i + 1) * 900 + 37 * i]))
    outs = []
    for th in ("1", "4"):
        outs.append(os.path.join(work, "threads" + th))
        tokenize_dir(tokenize, model, outs[-1], [many], ["--threads", th, "--shard-tokens", "30000"])
    names = sorted(os.listdir(outs[0]))
    same = names == sorted(os.listdir(outs[1])) and all(
        open(os.path.join(outs[0], n), "rb").read() == open(os.path.join(outs[1], n), "rb").read() for n in names)
    check(same and len(names) > 3, "--threads 1 and --threads 4 write identical shards (%d files)" % len(names))

    # stdin streamed (--val-fraction 0 or 1) in chunks: documents across chunk boundaries and one document
    # larger than a chunk (16 MB) give the same shards as the same bytes from a file; a val run and a train
    # run share one directory
    stream_in = os.path.join(work, "stream.txt")
    small = b"\0".join(l for l in lines if l)
    open(stream_in, "wb").write(small + b"\0" + text * 16 + b"\0" + small)
    out_file, out_pipe = os.path.join(work, "from_file"), os.path.join(work, "from_pipe")
    tokenize_dir(tokenize, model, out_file, [stream_in], ["--val-fraction", "0"])
    tokenize_dir(tokenize, model, out_pipe, ["-"], ["--val-fraction", "1"], small)
    tokenize_dir(tokenize, model, out_pipe, ["-"], ["--val-fraction", "0"], open(stream_in, "rb").read())
    same = open(os.path.join(out_file, "train_000000.bin"), "rb").read() == open(os.path.join(out_pipe, "train_000000.bin"), "rb").read()
    check(same, "stdin streamed in chunks gives the shards of the same file")
    got_val, _, _ = read_split(out_pipe, "val")
    want_val = []
    for l in small.split(b"\0"):
        want_val += [bos] + sp.encode(l)
    check(got_val == want_val, "a --val-fraction 0 run keeps the val shards of a --val-fraction 1 run")

    # invalid UTF-8: a warning naming the file, encoded as sentencepiece does
    bad = os.path.join(work, "bad_utf8.txt")
    data = b"valid text \xff\xfe then \xe4\xbd truncated and \xc0\xaf overlong\n"
    open(bad, "wb").write(data)
    out = os.path.join(work, "bad_out")
    err = tokenize_dir(tokenize, model, out, [bad], ["--val-fraction", "0"])
    check("warning:" in err and "invalid UTF-8" in err and bad in err, "invalid UTF-8 gives a warning naming the file")
    got, _, _ = read_split(out, "train")
    check(got == [bos] + sp.encode(data), "invalid UTF-8 is encoded as sentencepiece does")

    # a vocabulary over 65535 pieces: uint32 shards
    big = os.path.join(work, "big.model")
    subprocess.run([sys.executable, os.path.join(HERE, "tokenizer_model.py"), model, big, "big-vocab"], check=True)
    spb = spm.SentencePieceProcessor(model_file=big)
    doc = os.path.join(work, "big.txt")
    data = "ids past 65535: \u260339999 \u260330000\u26031\n".encode()
    open(doc, "wb").write(data)
    out = os.path.join(work, "big_out")
    tokenize_dir(tokenize, big, out, [doc], ["--val-fraction", "0"])
    got, _, wide = read_split(out, "train")
    want = [spb.bos_id()] + spb.encode(data)
    check(wide and got == want and max(got) > 65535, "vocabulary of %d: uint32 shards (magic 20240801) match sentencepiece" % spb.vocab_size())

    # --encode and --decode
    sample = "Hello  world\n\tfrom grass.c \U0001F600 \u4e2d\u6587".encode()
    rc, ids, _ = run([tokenize, "--model", model, "--encode"], sample)
    check(rc == 0 and ids.decode() == " ".join(map(str, sp.encode(sample))) + "\n", "--encode prints the ids on one line")
    rc, back, _ = run([tokenize, "--model", model, "--decode"], ids)
    check(rc == 0 and back == sample, "--decode gives the text back")

    # --help lists every option and the defaults
    rc, usage, _ = run([tokenize, "--help"])
    opts = ["--model", "--out", "--overwrite", "--val-fraction", "--shard-tokens", "--threads", "--encode", "--decode", "--help"]
    check(rc == 0 and all(o.encode() in usage for o in opts) and b"default 0.1" in usage and b"default 100000000" in usage,
          "--help lists every option with its default")


def test_errors(tokenize, model, text_path, work):
    corrupt, not_bpe = os.path.join(work, "corrupt.model"), os.path.join(work, "unigram.model")
    for path, variant in ((corrupt, "corrupt"), (not_bpe, "not-bpe")):
        subprocess.run([sys.executable, os.path.join(HERE, "tokenizer_model.py"), model, path, variant], check=True)
    empty_dir = os.path.join(work, "empty_dir")
    os.makedirs(empty_dir)
    open(os.path.join(empty_dir, "empty.txt"), "wb").close()
    a_file = os.path.join(work, "a_file")
    open(a_file, "wb").write(b"x")
    out = os.path.join(work, "out")
    t = text_path
    cases = [
        ("missing model file", ["--model", "/nonexistent/tok.model", "--out", out, t], "/nonexistent/tok.model"),
        ("truncated model file", ["--model", corrupt, "--out", out, t], corrupt),
        ("text file as model", ["--model", t, "--out", out, t], t),
        ("unigram model", ["--model", not_bpe, "--out", out, t], "BPE"),
        ("empty model file", ["--model", a_file, "--encode"], a_file),
        ("missing input", ["--model", model, "--out", out, "/nonexistent/input.txt"], "/nonexistent/input.txt"),
        ("inputs without text", ["--model", model, "--out", out, empty_dir], "no text"),
        ("output dir under a file", ["--model", model, "--out", os.path.join(a_file, "sub"), t], a_file),
        ("output dir is a file", ["--model", model, "--out", a_file, t], a_file),
        ("unknown option", ["--model", model, "--out", out, "--frobnicate", t], "--frobnicate"),
        ("option without value", ["--model", model, "--out"], "--out"),
        ("malformed --val-fraction", ["--model", model, "--out", out, "--val-fraction", "abc", t], "--val-fraction"),
        ("--val-fraction above 1", ["--model", model, "--out", out, "--val-fraction", "1.5", t], "--val-fraction"),
        ("--shard-tokens 0", ["--model", model, "--out", out, "--shard-tokens", "0", t], "--shard-tokens"),
        ("--shard-tokens too big", ["--model", model, "--out", out, "--shard-tokens", "3000000000", t], "--shard-tokens"),
        ("malformed --threads", ["--model", model, "--out", out, "--threads", "2x", t], "--threads"),
        ("no --model", ["--out", out, t], "--model"),
        ("no --out", ["--model", model, t], "--out"),
        ("no INPUT", ["--model", model, "--out", out], "INPUT"),
        ("stdin twice", ["--model", model, "--out", out, "-", "-"], "stdin"),
        ("--encode with --decode", ["--model", model, "--encode", "--decode"], "--decode"),
        ("--encode with --out", ["--model", model, "--encode", "--out", out], "--encode"),
        ("--decode of a non-number", ["--model", model, "--decode"], "\"abc\"", b"1 2 abc"),
        ("--decode of an id out of range", ["--model", model, "--decode"], "99999", b"15043 99999"),
        ("--decode of a negative id", ["--model", model, "--decode"], "-5", b"-5"),
    ]
    for case in cases:
        name, args, needle = case[:3]
        rc, _, err = run([tokenize] + args, case[3] if len(case) > 3 else b"")
        lines = err.strip().splitlines()
        ok = rc == 1 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
        check(ok, "%s: exit %d, %s" % (name, rc, lines[-1] if lines else "(no message)"))
    check(not os.path.exists(os.path.join(out, "train_000000.bin")), "failed runs wrote no shards")


def main():
    mode, tokenize, model, text_path, work = sys.argv[1:6]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    (test_shards if mode == "shards" else test_errors)(tokenize, model, text_path, work)
    print("%s: %d failures" % (mode, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
