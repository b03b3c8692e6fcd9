#!/usr/bin/env python3
"""state_tool.py: reads and edits the files of a grass.c checkpoint for the fault tests (plain Python, no numpy).

  state_tool.py set STATE.bin SECTION INDEX TYPE VALUE   set element INDEX of a section (TYPE i64, f64, i32, f32)
  state_tool.py finite CKPT_DIR                          exit 1 naming the first non-finite value in model.safetensors
                                                         or in a float section of state.bin
  state_tool.py get STATE.bin SECTION INDEX TYPE         print one element

state.bin (checkpoint.h): "GRASSTAT", uint32 version, uint32 section count, then per section a 32-byte name, a
uint64 byte count and the bytes, then "GRASSEND".
"""
import json
import math
import os
import struct
import sys

TYPES = {"i64": "q", "f64": "d", "i32": "i", "f32": "f"}


def sections(path):
    """{name: (offset of its bytes, byte count)} of a state.bin."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"GRASSTAT", f"{path}: not a trainer state"
    _, n = struct.unpack_from("<II", data, 8)
    at, out = 16, {}
    for _ in range(n):
        name = data[at:at + 32].split(b"\0")[0].decode()
        (nb,) = struct.unpack_from("<Q", data, at + 32)
        out[name] = (at + 40, nb)
        at += 40 + nb
    return out


def element(path, section, index, typ):
    off, nb = sections(path)[section]
    size = struct.calcsize(TYPES[typ])
    assert (index + 1) * size <= nb, f"{section} has {nb // size} elements of {typ}"
    return off + index * size


def floats(raw, dtype):
    if dtype == "F32":
        return struct.unpack(f"<{len(raw) // 4}f", raw)
    if dtype == "BF16":
        halves = struct.unpack(f"<{len(raw) // 2}H", raw)
        return [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in halves]
    return []


def check_finite(ckpt):
    with open(os.path.join(ckpt, "model.safetensors"), "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        body = f.read()
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        bad = [v for v in floats(body[a:b], t["dtype"]) if not math.isfinite(v)]
        if bad:
            sys.exit(f"{ckpt}: tensor {name} holds {len(bad)} non-finite values")
    path = os.path.join(ckpt, "state.bin")
    with open(path, "rb") as f:
        data = f.read()
    for name, (off, nb) in sections(path).items():
        if name.endswith(".bf16"):
            values = floats(data[off:off + nb], "BF16")
        elif name in ("adamw.m", "adamw.v", "grass.m", "grass.v", "grass.rho"):
            values = floats(data[off:off + nb], "F32")
        else:
            continue
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            sys.exit(f"{path}: section {name} holds {len(bad)} non-finite values")
    print(f"{ckpt}: every value finite")


def main():
    cmd = sys.argv[1]
    if cmd == "set":
        path, section, index, typ, value = sys.argv[2:7]
        at = element(path, section, int(index), typ)
        v = float(value) if typ in ("f32", "f64") else int(value)
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(struct.pack("<" + TYPES[typ], v))
    elif cmd == "get":
        path, section, index, typ = sys.argv[2:6]
        at = element(path, section, int(index), typ)
        with open(path, "rb") as f:
            f.seek(at)
            print(struct.unpack("<" + TYPES[typ], f.read(struct.calcsize(TYPES[typ])))[0])
    elif cmd == "finite":
        check_finite(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
