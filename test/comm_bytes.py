#!/usr/bin/env python3
"""comm_bytes.py: the bytes a rank's collectives move in one training step, by category, from the model's sizes alone
(docs/design.md §7), for the tests to hold the trainers' log (comm_*_bytes) against:

  grads    the gradients: each full gradient (every tensor under AdamW, those outside the projections under Grass)
           and each Grass compressed gradient (r x E), every tensor padded to a multiple of the ranks that divide it
           (ranks with --shard-optimizer, else 1): sum of ranks x ceil(n / ranks) elements; with --shard-weights (GPU)
           every micro-batch's (the gradients are sharded too): accum times that;
  weights  with --shard-optimizer, every weight tensor the same way; else 0; with --shard-weights (GPU) the gathers
           before use: each layer's L + (2 accum - 1) (L - 2) times in all (forward and backward of every micro-batch,
           less the two layers the backward and the next forward find in place), the tensors outside the blocks once
           with tied embeddings, else every micro-batch (the embedding and the lm_head take turns in one buffer);
  updates  with --shard-optimizer under Grass, every r x E update the same way; else 0;
  refresh  at a Grass refresh step, every projection's full gradient (fp32), unpadded; else 0.

  comm_bytes.py CONFIG_JSON --ranks N [--sharded | --shard-weights --accum A] [--grass-rank R --grass-side auto|rows|cols]
                --grad-bytes B --weight-bytes B [--refresh]
prints "grads W weights X updates Y refresh Z". CONFIG_JSON is a checkpoint's config.json (Hugging Face names).
--grad-bytes: bytes of a gradient element on the wire (4 on the CPU, the --reduce-dtype on the GPU); --weight-bytes:
of a weight element (4 on the CPU, 2 for the GPU's bf16). Grass's updates travel in fp32 (4).
"""
import argparse
import json


def tensors(cfg):
    """(name, rows, cols, is_projection) of every stored tensor."""
    d, f, v, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    h = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", h)
    hd = d // h
    out = [("embed", v, d, False)]
    for _ in range(L):
        out += [("attn_norm", d, 1, False), ("q", h * hd, d, True), ("k", kv * hd, d, True), ("v", kv * hd, d, True),
                ("o", d, h * hd, True), ("mlp_norm", d, 1, False), ("gate", f, d, True), ("up", f, d, True),
                ("down", d, f, True)]
    out.append(("final_norm", d, 1, False))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head", v, d, False))
    return out


def padded(n, ranks):
    return ranks * -(-n // ranks)


def main():
    p = argparse.ArgumentParser(description="bytes of a step's collectives by category")
    p.add_argument("config")
    p.add_argument("--ranks", type=int, required=True)
    p.add_argument("--sharded", action="store_true")
    p.add_argument("--shard-weights", action="store_true")
    p.add_argument("--accum", type=int, default=1, help="micro-batches a step (--shard-weights)")
    p.add_argument("--grass-rank", type=int, default=0, help="Grass's rank (0: AdamW)")
    p.add_argument("--grass-side", default="auto", choices=["auto", "rows", "cols"])
    p.add_argument("--grad-bytes", type=int, required=True)
    p.add_argument("--weight-bytes", type=int, required=True)
    p.add_argument("--refresh", action="store_true", help="a Grass refresh step")
    a = p.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)
    a.sharded = a.sharded or a.shard_weights
    owners = a.ranks if a.sharded else 1
    L = cfg["num_hidden_layers"]
    layer_gathers = L + (2 * a.accum - 1) * max(L - 2, 0)
    grads = weights = updates = refresh = 0
    for name, m, n, proj in tensors(cfg):
        in_block = name not in ("embed", "final_norm", "lm_head")
        outside = 1 if cfg.get("tie_word_embeddings", False) else a.accum
        weights += padded(m * n, owners) * ((layer_gathers / L if in_block else outside) if a.shard_weights else 1)
        if a.grass_rank and proj:
            rows = a.grass_side == "rows" or (a.grass_side == "auto" and m >= n)
            D, E = (m, n) if rows else (n, m)
            rE = min(a.grass_rank, D) * E
            grads += padded(rE, owners)
            updates += padded(rE, owners)
            refresh += m * n
        else:
            grads += padded(m * n, owners)
    several, sharded = a.ranks > 1, a.sharded and a.ranks > 1
    weights = round(weights)
    print("grads %d weights %d updates %d refresh %d" % (
        a.grad_bytes * grads * (a.accum if a.shard_weights else 1) if several else 0, a.weight_bytes * weights if sharded else 0,
        4 * updates if sharded and a.grass_rank else 0, 4 * refresh if several and a.refresh and a.grass_rank else 0))


if __name__ == "__main__":
    main()
