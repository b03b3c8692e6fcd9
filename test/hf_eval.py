"""The validation loss transformers gives a model on a token shard, batch for batch as the trainers evaluate it.

usage: hf_eval.py MODEL_DIR SHARD.bin --batch B --seq T --batches N [--expect LOSS --bound REL]
Loads MODEL_DIR with LlamaForCausalLM in fp32 (eager attention) and averages the mean cross-entropy of the shard's
first N windows of B*T+1 tokens (inputs the first B*T as [B, T], targets shifted by one), as `--eval-only` with
`--val-data SHARD --batch B --seq T --eval-batches N` does on one rank (dataloader.h). Prints the loss; with --expect
(the trainer's val_loss) exits 1 when they differ by more than --bound relative.
"""
import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

HEADER_INTS = 256  # llm.c shard header: magic, version, token count, then zeros
MAGIC_DTYPE = {20240520: np.uint16, 20240801: np.uint32}


def shard_tokens(path):
    header = np.fromfile(path, dtype=np.int32, count=HEADER_INTS)
    dtype = MAGIC_DTYPE[int(header[0])]
    return np.fromfile(path, dtype=dtype, offset=4 * HEADER_INTS, count=int(header[2])).astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("shard")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--batches", type=int, required=True)
    ap.add_argument("--expect", type=float, help="the trainer's val_loss")
    ap.add_argument("--bound", type=float, default=1e-5, help="largest relative difference from --expect")
    a = ap.parse_args()
    model = LlamaForCausalLM.from_pretrained(a.model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    toks = shard_tokens(a.shard)
    n = a.batch * a.seq
    assert len(toks) >= a.batches * n + 1, f"{a.shard} holds {len(toks)} tokens, fewer than {a.batches} windows"
    total = 0.0
    with torch.no_grad():
        for i in range(a.batches):
            w = torch.from_numpy(toks[i * n:i * n + n + 1])
            logits = model(input_ids=w[:-1].view(a.batch, a.seq)).logits
            total += F.cross_entropy(logits.reshape(n, -1), w[1:]).item()
    loss = total / a.batches
    print(f"transformers val_loss {loss:.6f}")
    if a.expect is None:
        return
    rel = abs(loss - a.expect) / loss
    print(f"trainer val_loss {a.expect:.6f}: relative difference {rel:.3e} (bound {a.bound:g})")
    sys.exit(0 if rel <= a.bound else 1)


if __name__ == "__main__":
    main()
