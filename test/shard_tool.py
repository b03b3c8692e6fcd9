"""
shard_tool.py: writes token shards in llm.c's format for tests, including deliberately broken ones.
  shard_tool.py OUT.bin --tokens N --vocab V [--seed S] [--uint32] [--magic M] [--version X]
                [--header-count C] [--truncate BYTES] [--bad-token ID [--bad-at P,P,...]]
Random tokens uniform in [0, V); --bad-token puts ID at position N // 2, or at the --bad-at positions.
"""
import argparse
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--tokens", type=int, required=True)
p.add_argument("--vocab", type=int, required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--uint32", action="store_true")
p.add_argument("--magic", type=int)
p.add_argument("--version", type=int)
p.add_argument("--header-count", type=int)
p.add_argument("--truncate", type=int, default=0, help="drop this many bytes from the end")
p.add_argument("--bad-token", type=int)
p.add_argument("--bad-at", help="comma-separated positions for --bad-token")
a = p.parse_args()

rng = np.random.default_rng(a.seed)
toks = rng.integers(0, a.vocab, size=a.tokens)
if a.bad_token is not None:
    for pos in ([int(x) for x in a.bad_at.split(",")] if a.bad_at else [a.tokens // 2]):
        toks[pos] = a.bad_token
header = np.zeros(256, dtype=np.int32)
header[0] = a.magic if a.magic is not None else (20240801 if a.uint32 else 20240520)
header[1] = a.version if a.version is not None else (7 if a.uint32 else 1)
header[2] = a.header_count if a.header_count is not None else a.tokens
data = header.tobytes() + toks.astype(np.uint32 if a.uint32 else np.uint16).tobytes()
with open(a.out, "wb") as f:
    f.write(data[: len(data) - a.truncate])
