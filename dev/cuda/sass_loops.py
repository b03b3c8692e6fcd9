#!/usr/bin/env python3
"""dev/cuda/sass_loops.py: the instruction mix of the main loop of tensor-core kernels, read from the SASS of a
built binary, with no GPU: for each kernel whose mangled name matches the pattern, the loop (a backward branch) with
the most mma instructions (HMMA; the smallest such loop on a tie), its static instruction count, instructions per
mma, and its commonest opcodes. A loop whose instructions other than mma are several times its mma count is bound
by instruction issue, not by the tensor cores: that is what the figures in kernels/attention.cuh come from.

    python3 dev/cuda/sass_loops.py dev/cuda/bin/attention 'mma_kernelILi64E'

Needs cuobjdump (CUDA toolkit; or `pip install nvidia-cuda-cuobjdump`, which puts it in nvidia/cu13/bin).
Static counts: a branch inside the loop (a masked tile) counts both ways, and an unrolled copy loop counts once
per copy.
"""
import collections
import re
import shutil
import subprocess
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: sass_loops.py BINARY KERNEL_REGEX")
    binary, pattern = sys.argv[1], sys.argv[2]
    if not shutil.which("cuobjdump"):
        sys.exit("sass_loops.py: cuobjdump not found (CUDA toolkit, or pip install nvidia-cuda-cuobjdump)")
    sass = subprocess.run(["cuobjdump", "-sass", binary], capture_output=True, text=True, check=True).stdout
    instruction = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P[0-9T] )?([A-Z][A-Z0-9]*)([^;]*);")
    found = 0
    print(f"{'kernel':72s} {'instr':>6s} {'mma':>4s} {'per mma':>7s}  commonest")
    for function in re.split(r"\n\s+Function : ", sass)[1:]:
        name = function.split("\n", 1)[0].strip()
        if not re.search(pattern, name):
            continue
        found += 1
        code = [(int(m.group(1), 16), m.group(2), m.group(3)) for m in instruction.finditer(function)]
        best = None  # (mma count, -span, start, end)
        for address, op, operands in code:
            target = re.search(r"0x([0-9a-f]+)", operands) if op == "BRA" else None
            if target and int(target.group(1), 16) < address:
                start = int(target.group(1), 16)
                mma = sum(1 for a, o, _ in code if start <= a <= address and o == "HMMA")
                key = (mma, start - address, start, address)
                if mma and (best is None or key > best):
                    best = key
        if best is None:
            print(f"{name[:72]:72s} no loop with mma")
            continue
        body = collections.Counter(o for a, o, _ in code if best[2] <= a <= best[3])
        total = sum(body.values())
        common = " ".join(f"{o} {n}" for o, n in body.most_common(10))
        print(f"{name[:72]:72s} {total:6d} {body['HMMA']:4d} {total / body['HMMA']:7.1f}  {common}")
    if not found:
        sys.exit(f"sass_loops.py: no kernel in {binary} matches {pattern}")


if __name__ == "__main__":
    main()
