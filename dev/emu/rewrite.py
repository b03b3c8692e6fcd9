#!/usr/bin/env python3
"""dev/emu/rewrite.py: prepares CUDA sources for the CPU emulator (dev/emu/cuda_emu.h).

    rewrite.py SRC_ROOT OUT_DIR FILE...

Copies each FILE (relative to SRC_ROOT) to OUT_DIR with the two pieces of CUDA syntax that a host compiler
cannot take turned into calls to the emulator, and a #line directive so that compiler messages name the
original file and line:
  kernel<<<grid, block[, smem[, stream]]>>>(args);
      -> emu_launch("kernel", (const void *)&kernel or nullptr, dim3(grid), dim3(block), smem, stream, [&] { kernel(args); });
  extern __shared__ [__align__(n)] T name[];
      -> T *name = (T *)emu_dynamic_shared();
Everything else is left as it is. Fails (exit 1, naming the file and line) on a launch it cannot parse.
"""
import os
import re
import sys


def fail(path, text, pos, what):
    line = text.count("\n", 0, pos) + 1
    sys.exit(f"error: {path}:{line}: {what}")


def match_close(text, i, open_ch, close_ch):
    """Index just past the bracket closing the one at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_ch:
            depth += 1
        elif text[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
    return -1


def split_top(s):
    """Splits s at the commas outside any brackets."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def kernel_start(text, end):
    """Start of the kernel expression (name with optional template arguments) that ends at text[end]."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if text[i - 1] == ">":  # template arguments: back to the matching '<'
        depth = 0
        while i > 0:
            i -= 1
            if text[i] == ">":
                depth += 1
            elif text[i] == "<":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    return i


def rewrite_launches(path, text):
    out, pos = [], 0
    while True:
        at = text.find("<<<", pos)
        if at < 0:
            break
        start = kernel_start(text, at)
        kernel = text[start:at].strip()
        if not re.fullmatch(r"[\w:]+(<.*>)?", kernel, re.S):
            fail(path, text, at, f"cannot find the kernel before <<<: {kernel!r}")
        cfg_end = text.find(">>>", at)
        cfg = split_top(text[at + 3 : cfg_end])
        if not 2 <= len(cfg) <= 4:
            fail(path, text, at, "a launch needs 2 to 4 configuration arguments")
        cfg += ["0", "0"][: 4 - len(cfg)]
        args_at = cfg_end + 3
        while text[args_at].isspace():
            args_at += 1
        if text[args_at] != "(":
            fail(path, text, at, "expected the kernel's arguments after >>>")
        args_end = match_close(text, args_at, "(", ")")
        name = re.sub(r"\s+", " ", kernel)
        # the kernel's address keys its shared-memory attribute: only launches with dynamic shared memory need
        # it (and only they can name it: the others may leave template arguments to deduction)
        address = "nullptr" if cfg[2] == "0" else f"(const void *)&{kernel}"
        out.append(text[pos:start])
        out.append(f'emu_launch("{name}", {address}, dim3({cfg[0]}), dim3({cfg[1]}), (size_t)({cfg[2]}), '
                   f"(cudaStream_t)({cfg[3]}), [&] {{ {kernel}{text[args_at:args_end]}; }})")
        pos = args_end
    out.append(text[pos:])
    return "".join(out)


EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w ]*?)\s+(\w+)\s*\[\s*\]\s*;")


def rewrite(path, text):
    text = EXTERN_SHARED.sub(lambda m: f"{m.group(1)} *{m.group(2)} = ({m.group(1)} *)emu_dynamic_shared();", text)
    return rewrite_launches(path, text)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    root, out_dir = sys.argv[1], sys.argv[2]
    for rel in sys.argv[3:]:
        src = os.path.join(root, rel)
        text = open(src).read()
        dst = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        body = f'#line 1 "{os.path.abspath(src)}"\n' + rewrite(src, text)
        if not os.path.exists(dst) or open(dst).read() != body:  # unchanged files keep their time stamps
            with open(dst, "w") as f:
                f.write(body)


if __name__ == "__main__":
    main()
