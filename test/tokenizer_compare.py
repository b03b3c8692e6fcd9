"""
tokenizer_compare.py: checks that the C tokenizer (through the `tokenize` tool) encodes and decodes exactly
as the `sentencepiece` Python library on a list of hard cases, on TinyShakespeare as one text and line by
line, and on random id sequences. Prints one line per failing case and exits 1 on any difference.

usage: tokenizer_compare.py TOKENIZE MODEL [SHAKESPEARE_TXT] [--quick]
(MODEL may be a rewritten copy of the LLaMA model, see tokenizer_model.py; --quick skips the big texts)
"""
import os
import random
import subprocess
import sys
import tempfile


def run(args, data):
    p = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


def cases():
    """Named byte strings: the cases the encoder must get exactly right (test/tokenizer_bpe_compare.py uses
    them too, which is why sentencepiece is imported only where it is used)."""
    c = {
        "empty": b"",
        "space": b" ",
        "spaces": b"   ",
        "newline": b"\n",
        "newlines": b"\n\n\n",
        "hello": b"Hello world",
        "leading spaces": b"   leading and trailing   ",
        "space runs": b"a" + b" " * 37 + b"b" + b" " * 200 + b"c",
        "newline runs": b"first\n\n\n\n\nsecond\r\n\r\nthird\n" + b"\n" * 100,
        "mixed whitespace": b" \t\n \x0b\x0c\r \t\tx\t \n",
        "tabs": b"\tdef f(x):\n\t\treturn x\n",
        "cjk": "日本語のテキストと中文文本，还有한국어 텍스트。".encode(),
        "emoji": "emoji 😀👍🏽👨‍👩‍👧‍👦 🇯🇵 flags and ZWJ".encode(),
        "combining": "e\u0301 a\u0308 n\u0303 \u1e9b\u0323 Zalgo: Z\u0351\u036b\u0343a\u0310l\u0352g\u035co".encode(),
        "nfc vs nfd": "caf\u00e9 vs cafe\u0301".encode(),
        "rtl": "العربية עברית mixed with English and ١٢٣ digits".encode(),
        "rtl marks": "\u202eabc\u202c \u200f\u200e".encode(),
        "control chars": bytes(range(1, 32)) + b" \x7f",
        "nul": b"a\x00b\x00\x00c",
        "c1 controls": "\u0080\u0085\u009f".encode(),
        "unknown chars": "\U0001d54f \U0001f9ec \u2603 \u0f00 \U00010348".encode(),
        "replacement char": "\ufffd literal".encode(),
        "space symbol literal": "\u2581 x\u2581\u2581y \u2581".encode(),
        "special piece text": b"<s> </s> <unk> <0x41> <pad>",
        "digits": b"3.14159265358979 1,000,000 2024-05-20",
        "code": b"for (int i = 0; i < n; i++) { x[i] += y[i] * 2; }\n",
        "invalid lone continuation": b"abc\x80def",
        "invalid lead": b"\xff\xfe\xfd",
        "invalid truncated": b"ok \xe4\xbd",
        "invalid truncated end": b"end \xf0\x9f\x98",
        "invalid overlong": b"\xc0\xaf \xe0\x80\xaf \xc1\xbf",
        "invalid surrogate": b"\xed\xa0\x80\xed\xbf\xbf",
        "invalid above max": b"\xf4\x90\x80\x80 \xf5\x80\x80\x80 \xf8\x88\x80\x80\x80",
        "invalid mixed": "ünïcödé".encode() + b"\xc3" + "ok".encode() + b"\xa9\xa9 \xe2\x96",
        "latin1 text": "Caf\u00e9 na\u00efve r\u00e9sum\u00e9".encode("latin-1"),
        "long word 100KB": b"supercalifragilistic" * 5000,
        "long single char run": b"a" * 100000,
        "long space run": b" " * 20000 + b"x",
        "long newline run": b"\n" * 20000,
        "long unicode run": ("\u00e9" * 30000).encode(),
        "long cjk": ("中文" * 20000).encode(),
    }
    rng = random.Random(1234)
    for i in range(20):   # random bytes, mostly text-like
        alphabet = [b"a", b"e", b"th", b" ", b"  ", b"\n", b"\xc3\xa9", b"\xe4\xb8\xad", b"\xf0\x9f\x98\x80",
                    b"\xff", b"\x80", b"\xe4", b".", b"\t", "\u2581".encode(), b"<0x0A>"]
        c["random %d" % i] = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
    words = [b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(300)]
    c["random long text of repeated words"] = b"".join(rng.choice(words) for _ in range(20000))
    for i in range(5):
        c["random raw bytes %d" % i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 500)))
    return c


def decode_cases(sp, rng):
    """Id sequences that encode never produces: leading spaces, control and unk pieces, broken bytes."""
    n = sp.get_piece_size()
    space = [i for i in range(n) if sp.id_to_piece(i).startswith("\u2581")]
    byte = [i for i in range(n) if sp.is_byte(i)]
    special = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    out = [[], special[:1], byte[:1]]
    for _ in range(150):
        k = rng.randint(1, 12)
        pools = [p for p in (space, byte, special, list(range(n))) if p]
        out.append([rng.choice(rng.choice(pools)) for _ in range(k)])
    return out


def main():
    import sentencepiece as spm
    args = [a for a in sys.argv[1:] if a != "--quick"]
    quick = "--quick" in sys.argv
    tokenize, model = args[0], args[1]
    text_path = args[2] if len(args) > 2 else None
    sp = spm.SentencePieceProcessor(model_file=model)
    rng = random.Random(5)
    failures = 0
    checked = 0

    def report(name, what, want, got):
        nonlocal failures
        failures += 1
        w, g = str(want), str(got)
        print("FAIL %s: %s differs\n  sentencepiece: %s\n  grass:         %s" % (name, what, w[:300], g[:300]))

    def check_text(name, data):
        nonlocal checked
        want = sp.encode(data)
        got = [int(x) for x in run([tokenize, "--model", model, "--encode"], data).split()]
        checked += 1
        if got != want:
            first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
            report(name, "encoding (first difference at token %d)" % first, want[first:first + 20], got[first:first + 20])
        check_ids(name, want)

    def check_ids(name, ids):
        nonlocal checked
        want = sp.decode(ids).encode("utf-8")
        got = run([tokenize, "--model", model, "--decode"], " ".join(map(str, ids)).encode())
        checked += 1
        if got != want:
            report(name, "decoding of %d ids" % len(ids), want[:200], got[:200])

    all_cases = cases()
    for name, data in all_cases.items():
        if quick and len(data) > 10000:
            continue
        check_text(name, data)
    for k, ids in enumerate(decode_cases(sp, rng)):
        check_ids("decode sequence %d %s" % (k, ids), ids)

    if text_path and not quick:
        text = open(text_path, "rb").read()
        check_text("tinyshakespeare as one text", text)
        # line by line, through shards: NUL-separated documents, each starting with BOS
        lines = [l for l in text.split(b"\n") if l]
        with tempfile.TemporaryDirectory() as tmp:
            run([tokenize, "--model", model, "--out", tmp, "--val-fraction", "0", "-"], b"\0".join(lines))
            raw = open(os.path.join(tmp, "train_000000.bin"), "rb").read()
        import array
        header = array.array("i", raw[:1024])
        tokens = array.array("H", raw[1024:]).tolist()
        if header[0] != 20240520 or header[1] != 1 or header[2] != len(tokens):
            report("shakespeare lines", "shard header", [20240520, 1, len(tokens)], list(header[:3]))
        want = []
        for l in lines:
            want += sp.encode(l, add_bos=True)
        checked += len(lines)
        if tokens != want:
            docs_got = " ".join(map(str, tokens)).split(" %d " % sp.bos_id())
            docs_want = " ".join(map(str, want)).split(" %d " % sp.bos_id())
            bad = [i for i in range(min(len(docs_got), len(docs_want))) if docs_got[i] != docs_want[i]]
            report("tinyshakespeare line by line", "encoding of %d lines (%d differ, first line %r)"
                   % (len(lines), len(bad), lines[bad[0]] if bad else None), len(want), len(tokens))
        check_ids("tinyshakespeare line ids decoded at once", want)

    print("%d checks, %d failures (%s)" % (checked, failures, model))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
