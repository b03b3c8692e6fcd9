"""Checks a checkpoint directory against a dump of logits and loss, using HF transformers as the judge.

usage: hf_compare.py CKPT_DIR DUMP.safetensors [--grads]
Loads CKPT_DIR with LlamaForCausalLM (fp32, eager attention), runs it on the dump's tokens (I32 [B*T+1]:
inputs tokens[:B*T] as [B,T], targets tokens[1:]), and compares its logits and mean cross-entropy with the
dump's `logits` (F32 [B,T,V]) and `loss` (F32 [1]). With --grads it also compares every `grad.<hf name>`
tensor of the dump with HF's gradient of that loss; the dump must hold exactly HF's parameters, so for a model
with tie_word_embeddings one grad.model.embed_tokens.weight, the sum over the embedding and lm_head uses
(from_pretrained ties the two and honours rope_scaling as config.json gives them). Prints the errors and
bounds; exits 1 if a bound is exceeded. This is how we show that a checkpoint (from the C trainer or the
PyTorch reference) is the HF model.
"""
import argparse
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import LlamaForCausalLM

# Bounds, fp32 throughout. Every op rounds with relative error ~6e-8 (2^-24), and the C trainer sums in a
# different order than torch (blocked GEMMs, OpenMP reductions), so each dot product of n terms may differ
# by ~sqrt(n) ulps; that passes through L residual blocks, the final norm and the lm_head GEMM. Measured,
# HF fp32 against the same model in fp64: d 64, L 2: logits err 3.5e-7 of max |logit|; d 512, L 8, V 32000,
# T 128 (the 60m shape): 1.4e-6 of max |logit|, 1.5e-5 absolute at logits up to 10.9 (after 20 training
# steps), loss 1.5e-6 relative; gradients (d 256, L 6) 3e-6 of each tensor's max. A C trainer carries an
# error of the same size, so C vs HF may be ~2x that. The bounds leave a 3-10x margin over it and still
# catch real mistakes, which at d 64, L 2 move logits by far more: RoPE theta 5e5 for 1e4
# 2.5e-3, RMSNorm eps 1e-5 for 1e-6 1e-2, interleaved RoPE pairs 1.4e-2, kv head h % n_kv 0.87 (of scale).
LOGITS_ABS = 1e-4    # max |logit - HF logit|, for logits of scale up to ~10
LOGITS_REL = 1e-5    # max |logit - HF logit| / max |HF logit|
LOSS_REL = 1e-5      # |loss - HF loss| / HF loss
# Gradients carry the rounding through the backward pass too (a second pass over every layer): each
# tensor's max difference must stay below 1e-4 of its own max |gradient|.
GRAD_REL = 1e-4


def main():
    ap = argparse.ArgumentParser(description="compare a dump's logits/loss with HF LlamaForCausalLM")
    ap.add_argument("ckpt_dir")
    ap.add_argument("dump")
    ap.add_argument("--grads", action="store_true", help="also compare the dump's grad.* tensors")
    a = ap.parse_args()

    try:
        model = LlamaForCausalLM.from_pretrained(a.ckpt_dir, torch_dtype=torch.float32, attn_implementation="eager")
    except TypeError:  # transformers older than 4.36 has no attn_implementation (and only eager attention)
        model = LlamaForCausalLM.from_pretrained(a.ckpt_dir, torch_dtype=torch.float32)
    dump = load_file(a.dump)
    B, T, V = dump["logits"].shape
    tokens = dump["tokens"].long()
    assert tokens.numel() == B * T + 1, f"tokens has {tokens.numel()} entries, expected B*T+1 = {B * T + 1}"
    assert V == model.config.vocab_size, f"dump vocab {V} != checkpoint vocab {model.config.vocab_size}"
    x, y = tokens[:-1].view(B, T), tokens[1:].view(B, T)

    logits = model(input_ids=x).logits.float()
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))

    ok = True

    def check(what, value, bound):
        nonlocal ok
        good = value <= bound  # also False for NaN
        ok &= good
        print(f"{what:<44s} {value:.3e}  (bound {bound:.0e})  {'ok' if good else 'EXCEEDED'}")

    ref = logits.detach()
    scale = ref.abs().max().item()
    err = (dump["logits"] - ref).abs().max().item()
    print(f"B={B} T={T} V={V}; max |HF logit| {scale:.4f}; loss: dump {dump['loss'].item():.7f}, HF {loss.item():.7f}")
    check("logits max abs err", err, LOGITS_ABS)
    check("logits max err / max |logit|", err / scale, LOGITS_REL)
    loss_err = abs(dump["loss"].item() - loss.item())
    print(f"{'loss abs err':<44s} {loss_err:.3e}")
    check("loss rel err", loss_err / abs(loss.item()), LOSS_REL)

    if a.grads:
        loss.backward()
        hf_names = {name for name, _ in model.named_parameters()}  # a tied matrix once, as its embedding
        dump_names = {k[len("grad."):] for k in dump if k.startswith("grad.")}
        if dump_names != hf_names:
            print(f"dump gradients not in HF: {sorted(dump_names - hf_names)}; "
                  f"HF parameters without one: {sorted(hf_names - dump_names)} "
                  f"(tie_word_embeddings {model.config.tie_word_embeddings})")
            print("FAIL")
            return 1
        rels = {}
        for name, p in model.named_parameters():
            g = dump["grad." + name]
            assert g.shape == p.grad.shape, f"grad.{name}: shape {tuple(g.shape)} != {tuple(p.grad.shape)}"
            rel = ((g - p.grad).abs().max() / p.grad.abs().max()).item()
            rels[name] = rel if rel == rel else float("inf")  # NaN counts as a failure
            if not rels[name] <= GRAD_REL:
                print(f"  grad.{name}: max err / max |grad| {rel:.3e}")
        check(f"grads max err / max |grad| (worst of {len(rels)})", max(rels.values()), GRAD_REL)

    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
