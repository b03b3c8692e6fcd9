"""
make_seeds.py: writes the seed corpora of the fuzz harnesses, dev/fuzz/corpus/NAME/, a few small valid and
nearly valid files each: token shards, safetensors files, a sharded model directory (cut at the harness's
separator), config.json files, tiny hand-made SentencePiece BPE models and tiny tokenizer.json byte-level BPE
models of Llama-3's form (some followed, after the separator, by a tokenizer_config.json). Plain Python 3, no
packages.

usage: python3 dev/fuzz/make_seeds.py   (from the repository root)
"""
import json
import os
import struct

SEP = b"\n--next-file--\n"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(name, seed, data):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, seed), "wb").write(data)


def shard(tokens, wide=False, count=None):
    header = [20240801 if wide else 20240520, 7 if wide else 1, len(tokens) if count is None else count] + [0] * 253
    return struct.pack("<256i", *header) + struct.pack("<%d%s" % (len(tokens), "I" if wide else "H"), *tokens)


def safetensors(tensors, meta=None, pad=True):
    """tensors: (name, dtype, shape, raw bytes); the header's offsets follow the order given."""
    h, off, data = {}, 0, b""
    if meta:
        h["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    b = json.dumps(h, separators=(",", ":")).encode()
    if pad:
        b += b" " * (-len(b) % 8)
    return struct.pack("<Q", len(b)) + b + data


def f32(n, start=0.0):
    return struct.pack("<%df" % n, *[start + 0.25 * i for i in range(n)])


def bf16(n):
    return b"".join(struct.pack("<f", 0.5 + i / 8)[2:] for i in range(n))


def varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    return key + varint(len(payload)) + payload


def sp_model(pieces, byte_fallback=True, trainer_extra=b"", normalizer=None):
    """pieces: (text, score, type) with the types of sentencepiece_model.proto (1 normal, 2 unknown, 3 control,
    4 user-defined, 5 unused, 6 byte)."""
    out = b""
    for text, score, typ in pieces:
        out += field(1, 2, field(1, 2, text.encode()) + field(2, 5, score) + field(3, 0, typ))
    out += field(2, 2, field(3, 0, 2) + field(35, 0, int(byte_fallback)) + trainer_extra)
    norm = normalizer if normalizer is not None else field(1, 2, b"identity") + field(3, 0, 1) + field(4, 0, 0)
    out += field(3, 2, norm)
    return out


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def bpe_json(pairs=False, ignore_merges=True, flags=False):
    """A tokenizer.json of Llama-3's form: the 256 bytes in the ByteLevel alphabet, a few merges, added tokens."""
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    chars, extra = [], 0
    for b in range(256):
        chars.append(chr(b) if b in keep else chr(0x100 + extra))
        extra += b not in keep
    vocab = {c: i for i, c in enumerate(chars)}
    merges = []
    for a, b in [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("\u0120", "w"), ("o", "r"), ("\u0120w", "or"),
                 ("\u0120", "\u0120"), ("\u010a", "\u010a"), ("1", "2"), ("'", "s"), ("\u00c3", "\u00a9")]:
        merges.append([a, b] if pairs else "%s %s" % (a, b))
        vocab.setdefault(a + b, len(vocab))
    n = len(vocab)

    def added(i, content, special=True, lstrip=False, rstrip=False, normalized=False):
        return {"id": i, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": rstrip,
                "normalized": normalized, "special": special}
    tokens = [added(n, "<|begin_of_text|>"), added(n + 1, "<|end_of_text|>")]
    if flags:
        tokens += [added(n + 2, "<|eot_id|>", lstrip=True, rstrip=True), added(n + 3, "hello world", special=False, normalized=True)]
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": tokens, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                                      {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n],
                                                                 "tokens": ["<|begin_of_text|>"]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": vocab, "merges": merges},
    }, ensure_ascii=False).encode()


def main():
    # token shards: 4 bytes of batch shape, then the shard files
    toks = [(i * 37) % 500 for i in range(300)]
    put("shard", "u16", bytes([1, 7, 0, 0]) + shard(toks))
    put("shard", "u32", bytes([2, 3, 1, 0x80]) + shard([t * 131 for t in toks], wide=True))
    put("shard", "two_shuffled", bytes([0, 5, 130, 0]) + shard(toks[:120]) + SEP + shard(toks[50:]))
    put("shard", "count_wrong", bytes([1, 1, 0, 0]) + shard(toks, count=299))
    put("shard", "token_out_of_vocab", bytes([0, 0, 0, 0]) + shard(toks[:20] + [600] + toks[:20]))

    # safetensors files
    put("safetensors", "mixed", safetensors([
        ("a", "F32", [2, 3], f32(6)), ("b", "BF16", [4], bf16(4)), ("c", "I32", [3], struct.pack("<3i", 1, -2, 3)),
        ("d", "F16", [2, 2], struct.pack("<4H", 0x3C00, 0x0001, 0x7C00, 0x8400)), ("e", "F32", [1, 2, 1, 2], f32(4))],
        meta={"format": "pt"}))
    put("safetensors", "empty", safetensors([]))
    put("safetensors", "scalar_unpadded", safetensors([("s", "F32", [], f32(1))], pad=False))
    bad = safetensors([("a", "F32", [2, 2], f32(4))]).replace(b"[0,16]", b"[0,17]")
    put("safetensors", "offsets_wrong", bad)

    # a sharded model directory of the harness's config: dim 8, 1 layer, heads 2, kv-heads 1, ffn 8, vocab 16
    shapes = [("model.embed_tokens.weight", [16, 8]), ("model.layers.0.input_layernorm.weight", [8]),
              ("model.layers.0.self_attn.q_proj.weight", [8, 8]), ("model.layers.0.self_attn.k_proj.weight", [4, 8]),
              ("model.layers.0.self_attn.v_proj.weight", [4, 8]), ("model.layers.0.self_attn.o_proj.weight", [8, 8]),
              ("model.layers.0.post_attention_layernorm.weight", [8]), ("model.layers.0.mlp.gate_proj.weight", [8, 8]),
              ("model.layers.0.mlp.up_proj.weight", [8, 8]), ("model.layers.0.mlp.down_proj.weight", [8, 8]),
              ("model.norm.weight", [8]), ("lm_head.weight", [16, 8])]
    numel = lambda s: s[0] * (s[1] if len(s) > 1 else 1)
    first, second = shapes[:6], shapes[6:]
    index = {"metadata": {"total_size": 0}, "weight_map": {n: "s1.safetensors" for n, _ in first}}
    index["weight_map"].update({n: "s2.safetensors" for n, _ in second})
    s1 = safetensors([(n, "BF16", s, bf16(numel(s))) for n, s in first])
    s2 = safetensors([(n, "F32", s, f32(numel(s))) for n, s in second])
    put("model_files", "two_shards", json.dumps(index).encode() + SEP + s1 + SEP + s2)
    one = {"weight_map": {n: "s1.safetensors" for n, _ in shapes}}
    put("model_files", "one_shard", json.dumps(one).encode() + SEP + safetensors([(n, "F32", s, f32(numel(s))) for n, s in shapes]))
    put("model_files", "missing_shard", json.dumps(index).encode() + SEP + s1)

    # config.json
    hf = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
          "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 512,
          "max_position_embeddings": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "hidden_act": "silu",
          "tie_word_embeddings": False, "rope_scaling": None, "torch_dtype": "float32"}
    put("config", "hf", json.dumps(hf, indent=2).encode())
    put("config", "minimal", b'{"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, '
                              b'"intermediate_size": 8, "vocab_size": 16}')
    put("config", "escapes", b'{"model_type": "ll\\u0061ma", "hidden_size": 6.4e1, "num_hidden_layers": 2, '
                              b'"num_attention_heads": 4, "intermediate_size": 1e2, "vocab_size": 32000, '
                              b'"rope_theta": 5e5, "rms_norm_eps": 1e-5, "extra": [true, false, null, {"k": "\\ud83d\\ude00"}]}')

    # SentencePiece BPE models
    base = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    words = ["\u2581", "e", "t", "h", "o", "l", "w", "r", "d", "\u2581t", "he", "\u2581the", "ll", "\u2581w", "or",
             "\u2581wor", "ld", "\u2581world", "\u2581h", "el", "\u2581hel", "lo", "\u2581hello", "\u00e9", "q", "u"]
    normal = [(w, -float(i), 1) for i, w in enumerate(words)]
    byte_pieces = [("<0x%02X>" % b, 0.0, 6) for b in range(256)]
    put("tokenizer", "bytes", sp_model(base + byte_pieces + normal))
    put("tokenizer", "no_bytes", sp_model(base + normal, byte_fallback=False))
    put("tokenizer", "user_unused", sp_model(base + normal + [("\u2581quick", 0.0, 4), ("\u2581wor", -3.0, 5)][:1] +
                                             [("ld\u2581", -30.0, 5)], byte_fallback=False,
                                             trainer_extra=field(44, 2, b"??") + field(46, 2, b"<s>")))
    put("tokenizer", "no_prefix", sp_model(base + normal, byte_fallback=False,
                                           normalizer=field(1, 2, b"identity") + field(3, 0, 0) + field(4, 0, 1) + field(5, 0, 0)))

    # tokenizer.json byte-level BPE models; after the separator, the tokenizer_config.json beside it
    put("tokenizer", "json_bpe", bpe_json())
    put("tokenizer", "json_bpe_pairs_flags", bpe_json(pairs=True, ignore_merges=False, flags=True))
    put("tokenizer", "json_bpe_config", bpe_json() + SEP + b'{"bos_token": {"content": "<|begin_of_text|>"}, '
                                                         b'"eos_token": "<|end_of_text|>", "add_bos_token": true}')


if __name__ == "__main__":
    main()
