"""
tokenizer_bench.py: speed of the C `tokenize` tool against the `sentencepiece` Python library on the same
text (TinyShakespeare by default), as one document and line by line. Prints MB/s per core: text bytes over
CPU seconds (user + system, all threads), so the number does not depend on how many cores are free; the C
tool runs with --threads 1 and its time includes loading the model and writing the shard.

usage: python3 dev/bench/tokenizer_bench.py [--model FILE.model] [--text FILE] [--repeat N]
"""
import argparse
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


def main():
    data = os.environ.get("GRASS_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=os.path.join(data, "llama2_tokenizer.model"))
    ap.add_argument("--text", default=os.path.join(data, "tinyshakespeare.txt"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tokenize = os.path.join(ROOT, "tokenize")
    subprocess.run(["make", "-s", "-C", ROOT, "tokenize"], check=True)
    text = open(args.text, "rb").read()
    lines = [l for l in text.split(b"\n") if l]
    mb = len(text) / 1e6

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        lines_file = os.path.join(tmp, "lines.txt")
        open(lines_file, "wb").write(b"\0".join(lines))   # NUL separates documents
        for name, path in (("1 document", args.text), ("%d lines as documents" % len(lines), lines_file)):
            cmd = [tokenize, "--model", args.model, "--out", os.path.join(tmp, "out"), "--overwrite", "--threads", "1", path]
            run = lambda: subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
            cpu, wall = best_of(args.repeat, run, child_cpu)
            rows.append(("grass tokenize (C)", name, cpu, wall))

    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=args.model)
    version = getattr(spm, "__version__", "?")
    cpu, wall = best_of(args.repeat, lambda: sp.encode(text), self_cpu)
    rows.append(("sentencepiece %s (Python)" % version, "1 document", cpu, wall))
    cpu, wall = best_of(args.repeat, lambda: sp.encode(lines), self_cpu)
    rows.append(("sentencepiece %s (Python)" % version, "%d lines as documents" % len(lines), cpu, wall))

    print("%s: %.2f MB, best of %d runs" % (os.path.basename(args.text), mb, args.repeat))
    print("| tokenizer | input | CPU s | MB/s per core | wall MB/s |")
    print("|---|---|---|---|---|")
    for who, what, cpu, wall in rows:
        print("| %s | %s | %.3f | %.1f | %.1f |" % (who, what, cpu, mb / cpu, mb / wall))


if __name__ == "__main__":
    sys.exit(main())
