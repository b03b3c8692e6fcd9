"""
tokenizer_model.py: writes variants of a SentencePiece .model file, so the C tokenizer can be compared with
the `sentencepiece` library on settings the LLaMA model does not use. Reads and writes the protobuf with a
few lines of wire-format code (Debian's sentencepiece has no protobuf module).

usage: tokenizer_model.py IN.model OUT.model VARIANT
variants:
  extra-ws        normalizer remove_extra_whitespaces = true
  no-prefix       normalizer add_dummy_prefix = false
  no-escape       normalizer escape_whitespaces = false
  user-unused     some pieces become USER_DEFINED, some frequent merged pieces UNUSED
  ties            scores rounded to multiples of 1000 (many equal scores: leftmost pair first)
  no-bytefallback byte_fallback = false, the <0xXX> pieces become CONTROL
  big-vocab       40000 user-defined pieces "\u2603N" appended (vocabulary over 65535: uint32 shards)
  corrupt         the file cut in the middle of a piece
  not-bpe         model_type = UNIGRAM
"""
import struct
import sys

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def varint(b, i):
    v, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, i
        shift += 7


def put_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def parse(b):
    """A message as a list of [field, wire, value] (value: int, or bytes for wire types 1, 2, 5)."""
    fields, i = [], 0
    while i < len(b):
        key, i = varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(b, i)
        elif wire == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        else:
            raise ValueError("wire type %d" % wire)
        fields.append([field, wire, v])
    return fields


def serialize(fields):
    out = bytearray()
    for field, wire, v in fields:
        out += put_varint(field << 3 | wire)
        if wire == 0:
            out += put_varint(v)
        elif wire == 2:
            out += put_varint(len(v)) + v
        else:
            out += v
    return bytes(out)


def set_field(fields, field, value):
    """Sets a varint field of a message, adding it when absent."""
    for f in fields:
        if f[0] == field:
            f[2] = value
            return
    fields.append([field, 0, value])


def edit_sub(top, field, fn):
    for f in top:
        if f[0] == field:
            sub = parse(f[2])
            fn(sub)
            f[2] = serialize(sub)
            return
    sub = []
    fn(sub)
    top.append([field, 2, serialize(sub)])


def piece_info(f):
    sub = parse(f[2])
    text = next((v for k, w, v in sub if k == 1), b"").decode()
    score = next((struct.unpack("<f", v)[0] for k, w, v in sub if k == 2), 0.0)
    typ = next((v for k, w, v in sub if k == 3), NORMAL)
    return sub, text, score, typ


def main():
    src, dst, variant = sys.argv[1:4]
    data = open(src, "rb").read()
    top = parse(data)
    pieces = [f for f in top if f[0] == 1]
    if variant == "extra-ws":
        edit_sub(top, 3, lambda s: set_field(s, 4, 1))
    elif variant == "no-prefix":
        edit_sub(top, 3, lambda s: set_field(s, 3, 0))
    elif variant == "no-escape":
        edit_sub(top, 3, lambda s: set_field(s, 5, 0))
    elif variant == "not-bpe":
        edit_sub(top, 2, lambda s: set_field(s, 3, 1))
    elif variant == "corrupt":
        open(dst, "wb").write(data[:len(data) // 2])
        return
    elif variant in ("user-unused", "ties", "no-bytefallback"):
        user = {"ing", "\u2581the", "<br>", "\u2581\u2581"}
        unused = {"er", "\u2581a", "\u2581th", "in", "\u2581of", "en", "\u2581t", "or", "\u2581s", "ou"}
        for f in pieces:
            sub, text, score, typ = piece_info(f)
            if variant == "user-unused" and typ == NORMAL and text in user:
                set_field(sub, 3, USER_DEFINED)
            elif variant == "user-unused" and typ == NORMAL and text in unused:
                set_field(sub, 3, UNUSED)
            elif variant == "ties" and typ == NORMAL:
                sub = [x for x in sub if x[0] != 2] + [[2, 5, struct.pack("<f", round(score / 1000) * 1000.0)]]
            elif variant == "no-bytefallback" and typ == BYTE:
                set_field(sub, 3, CONTROL)
            f[2] = serialize(sub)
        if variant == "user-unused":   # a user-defined piece that is not in the vocabulary yet
            top.insert(top.index(pieces[-1]) + 1, [1, 2, serialize([[1, 2, "<br>".encode()], [2, 5, struct.pack("<f", 0.0)], [3, 0, USER_DEFINED]])])
        if variant == "no-bytefallback":
            edit_sub(top, 2, lambda s: set_field(s, 35, 0))
    elif variant == "big-vocab":
        i = top.index(pieces[-1]) + 1
        top[i:i] = [[1, 2, serialize([[1, 2, ("\u2603%d" % k).encode()], [2, 5, struct.pack("<f", 0.0)],
                                      [3, 0, USER_DEFINED]])] for k in range(40000)]
    else:
        sys.exit("unknown variant " + variant)
    open(dst, "wb").write(serialize(top))


if __name__ == "__main__":
    main()
