"""
tokenizer_bpe_compare.py: checks that the C byte-level BPE tokenizer (tokenizer/bpe.h, through
test/bin/tokenizer_bpe_run and the `tokenize` tool) encodes and decodes Llama-3's tokenizer.json exactly as the
`tokenizers` library does. Cases: every case of the SentencePiece test (test/tokenizer_compare.py), contractions
in every case, digit runs, white space around line breaks, CRLF, tabs, letters and numbers of many scripts and
every code point below U+40000 in a few contexts, emoji, combining marks, special tokens in the text, invalid
UTF-8, a 100 KB word, TinyShakespeare whole and line by line (through `tokenize` shards); the ids without and
with the BOS (add_special_tokens), decode of those ids and of random id sequences against the library's decode,
and decode(encode(x)) == x for valid UTF-8 without added tokens. Then the same on rewritten copies of the file:
merges as pairs with ignore_merges true, added tokens with lstrip, rstrip, normalized and special changed, no
tokenizer_config.json (BOS from the template). Prints one line per failing case, the agreement counts, and
exits 1 on any difference.

Bytes that are not valid UTF-8 go to the library as Python's bytes.decode("utf-8", errors="replace") gives
them (each maximal invalid subsequence one U+FFFD), which is what the C tokenizer does with them.

`--errors`: every malformed or unsupported tokenizer.json (and tokenizer_config.json) made from a tiny
byte-level model must make `tokenize` exit 1 with one `error:` line naming the file and what is expected.

usage: tokenizer_bpe_compare.py RUNNER TOKENIZE TOKENIZER_DIR SHAKESPEARE_TXT WORKDIR
       tokenizer_bpe_compare.py --errors TOKENIZE WORKDIR
"""
import array
import itertools
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import unicodedata

from tokenizers import Tokenizer, decoders

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_compare  # noqa: E402  (the SentencePiece test's cases)

stats = {"cases": 0, "agree": 0, "tokens": 0}
failures = []


def report(name, what, want, got):
    failures.append(name)
    print("FAIL %s: %s differs\n  tokenizers: %s\n  grass:      %s" % (name, what, str(want)[:300], str(got)[:300]))


def check(name, what, want, got, tokens=0):
    stats["cases"] += 1
    stats["tokens"] += tokens
    if want == got:
        stats["agree"] += 1
    elif isinstance(want, list) and isinstance(got, list):
        first = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
        report(name, "%s (first difference at token %d of %d)" % (what, first, len(want)), want[first:first + 12], got[first:first + 12])
    else:
        report(name, what, want, got)


def run_requests(runner, model, requests, work):
    """requests: (op, payload) with op 'E', 'B' (bytes) or 'D' (ids). Returns the header line and the results."""
    req_path, out_path = os.path.join(work, "requests.bin"), os.path.join(work, "results.bin")
    with open(req_path, "wb") as f:
        for op, payload in requests:
            if op == "D":
                f.write(op.encode() + struct.pack("<I", len(payload)) + struct.pack("<%di" % len(payload), *payload))
            else:
                f.write(op.encode() + struct.pack("<I", len(payload)) + payload)
    p = subprocess.run([runner, model, req_path, out_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if p.returncode != 0:
        raise SystemExit("FAIL: %s %s: exit %d: %s%s" % (runner, model, p.returncode, p.stdout.decode(), p.stderr.decode()))
    raw = open(out_path, "rb").read()
    results, pos = [], 0
    for op, _ in requests:
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if op == "D":   # text; the others: ids or lengths
            results.append(raw[pos:pos + n])
            pos += n
        else:
            results.append(list(struct.unpack_from("<%dI" % n, raw, pos)))
            pos += 4 * n
    return p.stdout.decode(), results


def scripts():
    """Text of many scripts: runs of the assigned letters, marks and numbers of each block named here."""
    blocks = [0x0370, 0x0400, 0x0530, 0x0590, 0x0600, 0x0700, 0x0780, 0x0900, 0x0980, 0x0A00, 0x0B80, 0x0C00,
              0x0C80, 0x0D00, 0x0D80, 0x0E00, 0x0E80, 0x0F00, 0x1000, 0x10A0, 0x1100, 0x1200, 0x13A0, 0x1400,
              0x1680, 0x16A0, 0x1780, 0x1800, 0x1900, 0x1A00, 0x1B00, 0x1E00, 0x1F00, 0x2070, 0x2150, 0x2460,
              0x2C00, 0x2D30, 0x3040, 0x30A0, 0x3100, 0x3130, 0x4E00, 0xA000, 0xA500, 0xA6A0, 0xAC00, 0xFF00,
              0x10000, 0x10300, 0x10330, 0x10400, 0x10570, 0x10900, 0x10F70, 0x11000, 0x12000, 0x12F90, 0x13000,
              0x16A70, 0x16F00, 0x1D400, 0x1E290, 0x1E800, 0x1E900, 0x20000, 0x30000]
    out = {}
    for b in blocks:
        chars = [chr(c) for c in range(b, b + 128) if unicodedata.category(chr(c))[0] in "LMN"][:40]
        words, i = [], 0
        while i < len(chars):   # words of 1 to 5 characters
            words.append("".join(chars[i:i + 1 + len(words) % 5]))
            i += 1 + (len(words) - 1) % 5
        out["script U+%04X" % b] = " ".join(words).encode()
    return out


def code_point_cases():
    """Every code point below U+40000 (surrogates aside) and the tags and variation selectors of plane 14, each
    in contexts where its class (letter, number, white space, other) decides the pieces."""
    cps = [c for c in itertools.chain(range(0x40000), range(0xE0000, 0xE0200)) if not 0xD800 <= c < 0xE000]
    out = {}
    for k in range(0, len(cps), 4096):
        part = cps[k:k + 4096]
        text = "".join("a%s1%s %s!%s%s\n" % ((chr(c),) * 5) for c in part)
        out["code points U+%04X..U+%04X" % (part[0], part[-1])] = text.encode("utf-8")
    return out


def cases(specials):
    c = dict(tokenizer_compare.cases())
    # contractions in every case, in the places the pattern treats differently
    for con in ["s", "t", "re", "ve", "m", "ll", "d"]:
        for v in itertools.product(*[(ch, ch.upper()) for ch in con]):
            v = "".join(v)
            c["contraction '%s" % v] = ("it'%s I'%sx '%s '%s. x'%s'%s\n'%s" % ((v,) * 7)).encode()
    c["contraction folds"] = "x'\u017f x'\u017fa x'\ufb06a x'\u212aa x'\u0130a x\u2019s x'S'T'RE".encode()
    c["contraction at the end"] = b"it'"
    # digit runs of every length, alone and with letters
    digits = "12345678901234567890"
    for n in range(1, 11):
        c["digits %d" % n] = ("%s %s\n" % (digits[:n], digits[n:2 * n])).encode()
        c["digits %d with letters" % n] = ("a%sb %sx y%s %s." % ((digits[:n],) * 4)).encode()
    c["unicode numbers"] = "\u0661\u0662\u0663\u0664 \u00b2\u00b3\u00b9\u00bd \uff11\uff12\uff13\uff14 \u216b\u2160 \u2460\u2461 x\u0967\u0968".encode()
    # white space around line breaks
    for a, b, nl in itertools.product(range(4), range(4), ["\n", "\r\n", "\n\n", "\r"]):
        for tail in ["x", ""]:
            c["spaces %d %r %d %r" % (a, nl, b, tail)] = ("w" + " " * a + nl + " " * b + tail).encode()
    c["crlf"] = b"line one\r\nline two\r\n\r\nend\r\n"
    c["cr alone"] = b"a\rb\r\r\n c \r"
    c["tabs"] = b"\tx\t\ty \t z\t\n\t\tdef\n \t\n\t \tq\t"
    c["unicode spaces"] = "a\u00a0b \u3000c\u2028d\u2029e\u0085f\u2003\u2009g \u00a0 h\u180ei".encode()
    c.update(scripts())
    # letters new in Unicode 14.0 and 15.0 (15.0's are unassigned in Python 3.11's unicodedata 14.0)
    c["unicode 14 and 15"] = ("a\U0001E290b a\u0870b a\U00010570b | a\U0001E4D0b a\U00011F04b a\U000323AFb "
                              "a\U0001E030b \U0001E4D0\U0001E4D1").encode()
    c["emoji more"] = "\U0001f600\U0001f600 x\U0001f44d\U0001f3fd 1\ufe0f\u20e3 \U0001f3f3\ufe0f\u200d\U0001f308 ok\U0001f44d".encode()
    c["combining marks"] = "\u0301start e\u0301 1\u0301 \u0301x a\u0308\u0304b \u05b0\u05b8 \u093f\u0915\u093f".encode()
    # special tokens in the text
    names = sorted(specials)
    c["special tokens"] = ("<|begin_of_text|>Hi<|eot_id|> a<|eot_id|>b <|start_header_id|>user<|end_header_id|>\n\n"
                           "x <|eot_id|> <|eot_id <|<|eot_id|>|> <|reserved_special_token_5|>").encode()
    c["every added token"] = "".join(names).encode()
    c["every added token spaced"] = (" " + " x ".join(names) + "\n").encode()
    c["long word"] = b"a" * 100000
    return c


def rewrite(src_dir, dst_dir, change, config=True):
    """A copy of the tokenizer directory with tokenizer.json changed by change(dict), with or without
    tokenizer_config.json. Returns the path of the new tokenizer.json."""
    os.makedirs(dst_dir, exist_ok=True)
    d = json.load(open(os.path.join(src_dir, "tokenizer.json"), encoding="utf-8"))
    change(d)
    path = os.path.join(dst_dir, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False)
    if config:
        shutil.copy(os.path.join(src_dir, "tokenizer_config.json"), dst_dir)
    return path


def compare_pieces(runner, model, named, lib, work):
    """The pieces of the pre-tokenizer's pattern (what decides the Unicode classes, where the ids may not show
    them), on the cases that are valid UTF-8 without added tokens."""
    texts = [(k, v) for k, v in named.items() if "<|" not in v.decode("utf-8", "replace")]
    texts = [(k, v.decode("utf-8", "replace").encode()) for k, v in texts]
    _, res = run_requests(runner, model, [("P", v) for _, v in texts], work)
    for (name, data), got in zip(texts, res):
        # the library's pieces are in ByteLevel characters, one per byte
        want = [len(p) for p, _ in lib.pre_tokenizer.pre_tokenize_str(data.decode())]
        check("pieces of %s" % name, "pre-tokenizer pieces (byte lengths)", want, got, len(want))


def compare(runner, model, named, lib, label, work, decode_ids=(), roundtrip=True):
    """Encodes every case without and with the BOS, decodes the ids, decodes decode_ids; all against lib."""
    texts = list(named.items())
    requests = []
    for _, data in texts:
        requests += [("E", data), ("B", data)]
    lib_ids = []
    for name, data in texts:
        s = data.decode("utf-8", errors="replace")
        lib_ids.append((lib.encode(s, add_special_tokens=False).ids, lib.encode(s).ids))
    for plain, _ in lib_ids:
        requests.append(("D", plain))
    for ids in decode_ids:
        requests.append(("D", ids))
    header, res = run_requests(runner, model, requests, work)
    print("%s: %s" % (label, header.strip().replace("\n", "; ")))
    n = len(texts)
    specials = [t.content for t in lib.get_added_tokens_decoder().values()]
    for i, (name, data) in enumerate(texts):
        want, want_bos = lib_ids[i]
        got, got_bos = res[2 * i], res[2 * i + 1]
        check("%s %s" % (label, name), "encoding", want, got, len(want))
        check("%s %s (add_special_tokens)" % (label, name), "encoding with the BOS", want_bos, got_bos, len(want_bos))
        check("%s %s decoded" % (label, name), "decoding", lib.decode(want).encode("utf-8"), res[2 * n + i])
        valid = True
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            valid = False
        if roundtrip and valid and not any(sp in data.decode() for sp in specials):
            check("%s %s round trip" % (label, name), "decode(encode(x))", data, res[2 * n + i])
    for k, ids in enumerate(decode_ids):
        check("%s decode sequence %d %s" % (label, k, ids[:8]), "decoding", lib.decode(ids).encode("utf-8"), res[3 * n + k])
    return header


def shakespeare(tokenize, model, lib, text_path, work):
    """TinyShakespeare as one text (--encode) and line by line (documents of a --out run: uint32 shards, each
    document starting with the BOS)."""
    text = open(text_path, "rb").read()
    p = subprocess.run([tokenize, "--model", model, "--encode"], input=text, stdout=subprocess.PIPE, check=True, timeout=300)
    got = [int(x) for x in p.stdout.split()]
    want = lib.encode(text.decode(), add_special_tokens=False).ids
    check("tinyshakespeare as one text", "encoding", want, got, len(want))
    lines = [l for l in text.split(b"\n") if l]
    out = os.path.join(work, "shards")
    subprocess.run([tokenize, "--model", model, "--out", out, "--val-fraction", "0", "-"], input=b"\0".join(lines),
                   check=True, stderr=subprocess.DEVNULL, timeout=300)
    raw = open(os.path.join(out, "train_000000.bin"), "rb").read()
    header = array.array("i", raw[:1024])
    tokens = array.array("I", raw[1024:]).tolist()
    check("tinyshakespeare shard header", "magic, version, count", [20240801, 7, len(tokens)], list(header[:3]))
    want = [t for enc in lib.encode_batch([l.decode() for l in lines]) for t in enc.ids]
    bad = 0
    if tokens != want:
        bos = lib.token_to_id("<|begin_of_text|>")
        split = lambda ids: " ".join(map(str, ids)).split(" %d " % bos)
        g, w = split(tokens), split(want)
        bad = sum(1 for a, b in zip(g, w) if a != b) + abs(len(g) - len(w))
    stats["cases"] += len(lines)
    stats["agree"] += len(lines) - bad
    stats["tokens"] += len(want)
    if bad:
        report("tinyshakespeare line by line", "%d of %d lines" % (bad, len(lines)), len(want), len(tokens))


def byte_chars():
    """The ByteLevel alphabet: the character of each byte."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(0x100 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def tiny_model():
    """A small valid tokenizer.json of Llama-3's form: the 256 bytes, a few merges, two special tokens."""
    vocab = {c: i for i, c in enumerate(byte_chars())}
    merges = []
    for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("\u0120", "w"), ("o", "r"), ("\u0120w", "or")]:
        merges.append("%s %s" % (a, b))
        vocab.setdefault(a + b, len(vocab))
    n = len(vocab)
    special = lambda i, c: {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(n, "<|begin_of_text|>"), special(n + 1, "<|end_of_text|>")],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing", "single": [
            {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [], "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n], "tokens": ["<|begin_of_text|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def errors(tokenize, work):
    """Each bad file: exit 1, one error line naming the file and containing the expected words."""
    os.makedirs(work, exist_ok=True)
    good = tiny_model()

    def variant(change):
        d = json.loads(json.dumps(good))
        change(d)
        return json.dumps(d)

    def set_vocab_id(d, token, i):
        d["model"]["vocab"][token] = i

    def drop_byte(d):   # its id goes to another token
        d["model"]["vocab"]["qq"] = d["model"]["vocab"].pop("A")

    bad = [
        ("truncated JSON", json.dumps(good)[:1000], None, "is not valid JSON"),
        ("no model", '{"version": "1.0"}', None, 'no "model" object'),
        ("model WordPiece", variant(lambda d: d["model"].update(type="WordPiece")), None, "model type WordPiece is not implemented; expected BPE"),
        ("normalizer", variant(lambda d: d.update(normalizer={"type": "NFC"})), None, "normalizer (NFC) is not implemented"),
        ("GPT-2 pre-tokenizer", variant(lambda d: d.update(pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False, "use_regex": True})),
         None, "pre_tokenizer (ByteLevel) is not implemented; expected Llama-3's"),
        ("other regex", variant(lambda d: d["pre_tokenizer"]["pretokenizers"][0]["pattern"].update(Regex="\\s+")), None, "not Llama-3's regex"),
        ("behavior", variant(lambda d: d["pre_tokenizer"]["pretokenizers"][0].update(behavior="Removed")), None, "Isolated"),
        ("prefix space", variant(lambda d: d["pre_tokenizer"]["pretokenizers"][1].update(add_prefix_space=True)), None, "add_prefix_space"),
        ("no decoder", variant(lambda d: d.update(decoder=None)), None, "decoder is not ByteLevel"),
        ("truncation", variant(lambda d: d.update(truncation={"max_length": 5})), None, "truncation and padding are not implemented"),
        ("dropout", variant(lambda d: d["model"].update(dropout=0.1)), None, "dropout is not implemented"),
        ("vocab not an object", variant(lambda d: d["model"].update(vocab=[1, 2])), None, "model.vocab is not a non-empty object"),
        ("id out of range", variant(lambda d: set_vocab_id(d, "he", 100000)), None, "expected a whole number in [0, 263)"),
        ("id not whole", variant(lambda d: set_vocab_id(d, "he", 1.5)), None, "expected a whole number"),
        ("duplicate ids", variant(lambda d: set_vocab_id(d, "he", 3)), None, "both have id 3"),
        ("missing byte", variant(drop_byte), None, "lacks the token of byte 0x41"),
        ("merge of an unknown token", variant(lambda d: d["model"]["merges"].append("x yz")), None, "names a token that is not in the vocabulary"),
        ("merge making an unknown token", variant(lambda d: d["model"]["merges"].append("x y")), None, "makes a token that is not in the vocabulary"),
        ("merge not two tokens", variant(lambda d: d["model"]["merges"].append("a b c")), None, "is not two tokens separated by one space"),
        ("merge of a number", variant(lambda d: d["model"]["merges"].append(7)), None, "neither a string"),
        ("added token id", variant(lambda d: d["added_tokens"][1].update(id=5000)), None, "has id 5000, expected 264"),
        ("added token twice", variant(lambda d: d["added_tokens"].append(dict(d["added_tokens"][0], id=265))), None, "appears twice"),
        ("single_word", variant(lambda d: d["added_tokens"][0].update(single_word=True)), None, "single_word"),
        ("empty added token", variant(lambda d: d["added_tokens"][0].update(content="")), None, "has no content string"),
        ("template suffix", variant(lambda d: d["post_processor"]["single"].append({"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}})),
         None, "adds tokens other than one before the text"),
        ("template unknown token", variant(lambda d: d["post_processor"].update(special_tokens={})), None, "is not in special_tokens"),
        ("post-processor Bert", variant(lambda d: d.update(post_processor={"type": "BertProcessing"})), None, "post_processor (BertProcessing) is not implemented"),
        ("config not JSON", json.dumps(good), "{bos_token", "tokenizer_config.json is not valid JSON"),
        ("config unknown BOS", json.dumps(good), '{"bos_token": "<s>"}', 'bos_token "<s>" is not a token'),
        ("config add_bos_token", json.dumps(good), '{"bos_token": "<|begin_of_text|>", "add_bos_token": "yes"}', "add_bos_token is not true or false"),
    ]
    bad_count = 0
    for k, (name, text, config, want) in enumerate(bad):
        d = os.path.join(work, "case%02d" % k)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        open(path, "w").write(text)
        if config is not None:
            open(os.path.join(d, "tokenizer_config.json"), "w").write(config)
        p = subprocess.run([tokenize, "--model", path, "--encode"], input=b"hello world", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        err = p.stderr.decode(errors="replace")
        named = path if config is None else os.path.join(d, "tokenizer_config.json")
        ok = p.returncode == 1 and err.count("\n") == 1 and err.startswith("error: ") and named in err and want in err
        print(("ok    " if ok else "FAIL  ") + "%s: %s" % (name, err.strip() or "exit %d" % p.returncode))
        bad_count += not ok
    # the tiny model itself loads and encodes, with BOS from the template
    d = os.path.join(work, "good")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "tokenizer.json"), "w").write(json.dumps(good))
    p = subprocess.run([tokenize, "--model", os.path.join(d, "tokenizer.json"), "--encode"], input=b"hello world<|end_of_text|>",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    want = "%d %d %d" % (good["model"]["vocab"]["hello"], good["model"]["vocab"]["\u0120wor"], good["model"]["vocab"]["l"])
    ok = p.returncode == 0 and p.stdout.decode().startswith(want + " ")
    print(("ok    " if ok else "FAIL  ") + "the tiny model encodes: %s" % p.stdout.decode().strip())
    bad_count += not ok
    print("%d of %d error checks failed" % (bad_count, len(bad) + 1))
    sys.exit(1 if bad_count else 0)


def main():
    if sys.argv[1] == "--errors":
        errors(sys.argv[2], sys.argv[3])
    runner, tokenize, tok_dir, text_path, work = sys.argv[1:6]
    os.makedirs(work, exist_ok=True)
    model = os.path.join(tok_dir, "tokenizer.json")
    lib = Tokenizer.from_file(model)
    specials = [t.content for t in lib.get_added_tokens_decoder().values()]
    named = cases(specials)
    named.update(code_point_cases())
    rng = random.Random(7)
    n = lib.get_vocab_size()
    bytes_tokens = [i for t, i in lib.get_vocab().items() if len(t) == 1]   # single bytes
    decode_ids = [[], [128000], [128000, 9906, 128009], [128255, 0]]
    for _ in range(200):
        pools = [bytes_tokens, list(range(128000, n)), range(n)]
        decode_ids.append([rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 12))])

    # merges as pairs (as this library version writes them) and ignore_merges true, no tokenizer_config.json:
    # BOS from the template, no EOS
    saved = os.path.join(work, "saved")
    os.makedirs(saved, exist_ok=True)
    lib.save(os.path.join(saved, "tokenizer.json"))

    def ignore_merges(d):
        if not isinstance(d["model"]["merges"][0], list):
            raise SystemExit("FAIL: tokenizers %s did not write merges as pairs" % sys.modules["tokenizers"].__version__)
        d["model"]["ignore_merges"] = True
    path = rewrite(saved, os.path.join(work, "ignore_merges"), ignore_merges, config=False)
    lib2 = Tokenizer.from_file(path)
    # the vocabulary's tokens that the merges do not rebuild: where ignore_merges changes the ids
    vocab = [t for t, i in lib.get_vocab().items() if i < 128000]
    texts = [decoders.ByteLevel().decode([t]) for t in vocab]
    a = lib.encode_batch(texts, add_special_tokens=False)
    b = lib2.encode_batch(texts, add_special_tokens=False)
    unreachable = [texts[k] for k in range(len(texts)) if a[k].ids != b[k].ids]
    print("ignore_merges true changes the ids of %d of the %d vocabulary tokens" % (len(unreachable), len(vocab)))
    for t in unreachable:
        named["token not rebuilt by merges %r" % t] = t.encode()
    named["tokens not rebuilt by merges"] = "\n".join(unreachable).encode()

    # the file as published: merges as "a b" strings, ignore_merges false; BOS and EOS from tokenizer_config.json
    header = compare(runner, model, named, lib, "llama-3.2", work, decode_ids)
    check("BOS and EOS from tokenizer_config.json", "ids", "bos_id 128000 eos_id 128001", " ".join(header.split()[2:6]))
    shakespeare(tokenize, model, lib, text_path, work)
    compare_pieces(runner, model, named, lib, work)

    small = {k: v for k, v in named.items() if not k.startswith("code points")}
    small["tinyshakespeare"] = open(text_path, "rb").read()
    header = compare(runner, path, small, lib2, "ignore_merges", work)
    check("BOS from the template, no EOS", "ids", "bos_id 128000 eos_id -1", " ".join(header.split()[2:6]))

    # added tokens with other flags: lstrip, rstrip, normalized, not special, and one with a space in it
    def flags(d):
        by = {t["content"]: t for t in d["added_tokens"]}
        by["<|eot_id|>"]["lstrip"] = True
        by["<|start_header_id|>"]["rstrip"] = True
        by["<|end_header_id|>"].update(lstrip=True, rstrip=True)
        by["<|reserved_special_token_5|>"].update(normalized=True, special=False)
        by["<|reserved_special_token_6|>"]["special"] = False
        d["added_tokens"].append({"id": n, "content": "hello world", "single_word": False, "lstrip": False,
                                  "rstrip": True, "normalized": True, "special": False})
        d["added_tokens"].append({"id": n + 1, "content": "<|eot", "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": True, "special": True})
    path = rewrite(tok_dir, os.path.join(work, "flags"), flags)
    lib3 = Tokenizer.from_file(path)
    flagged = {k: v for k, v in small.items() if k.startswith(("special", "every added", "hello", "spaces", "unicode spaces"))}
    flagged["flags"] = ("a <|eot_id|> b \t<|eot_id|>c<|start_header_id|>  \n x <|end_header_id|>\u3000y hello world  z "
                        "<|eot <|eot_id|> <|eothello worldhello world <|reserved_special_token_5|> "
                        "<|reserved_special_token_6|> \u00a0<|eot_id|>").encode()
    flagged["flags at the ends"] = b"  <|eot_id|>  <|end_header_id|>  hello world"
    compare(runner, path, flagged, lib3, "added-token flags", work, [[n, n + 1, 128009], [128007, 128008, 9906]], roundtrip=False)

    print("%d of %d cases agree, %d tokens compared" % (stats["agree"], stats["cases"], stats["tokens"]))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
