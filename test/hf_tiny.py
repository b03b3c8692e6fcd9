"""Writes a tiny random Hugging Face Llama checkpoint directory, a fixture for the C trainers' tests.

usage: hf_tiny.py OUT_DIR [--dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 512 --max-seq 64 ...]
The directory is what `LlamaForCausalLM(config).save_pretrained(OUT_DIR)` writes (config.json,
generation_config.json, model.safetensors or shards with model.safetensors.index.json), so it has the layout of
a checkpoint downloaded from the Hub: LLaMA-2 or the Llama-3 family (tied embeddings, RoPE scaling `linear` or
`llama3`, several eos ids), fp32 or bf16, whole or sharded. Further options write the variants a strict
loader must refuse: biases, an explicit head_dim other than hidden/heads, another activation, an unused
tensor. The weights are seeded random values large enough that logits differ visibly between tokens and
positions (a loader that swaps two tensors or misreads one gives other logits): matrices and biases
N(0, 0.1), norm weights uniform in [0.5, 1.5]. Works with torch 1.13 and transformers 4.45.
"""
import argparse
import json
import os
import sys

import torch

MATRIX_STD = 0.1      # logits up to about 3 at dim 64, where the usual 0.02 keeps them near 1
NORM_RANGE = (0.5, 1.5)


def token_ids(text):
    """One int or a comma list of ints: an int for one, a list for more (as config.json writes eos_token_id)."""
    ids = [int(v) for v in text.split(",")]
    return ids[0] if len(ids) == 1 else ids


def shard_size(text):
    """save_pretrained's max_shard_size: bytes as an int, or a string with a unit such as 100KB."""
    return int(text) if text.isdigit() else text


def hf_config(a):
    from transformers import LlamaConfig
    rope_scaling = None
    if a.rope_scaling == "linear":
        rope_scaling = {"rope_type": "linear", "factor": a.rope_factor}
    elif a.rope_scaling == "llama3":
        rope_scaling = {"rope_type": "llama3", "factor": a.rope_factor, "low_freq_factor": a.rope_low_freq_factor,
                        "high_freq_factor": a.rope_high_freq_factor,
                        "original_max_position_embeddings": a.rope_original_max_seq}
    return LlamaConfig(
        hidden_size=a.dim, intermediate_size=a.ffn, num_hidden_layers=a.layers, num_attention_heads=a.heads,
        num_key_value_heads=a.kv_heads, vocab_size=a.vocab, max_position_embeddings=a.max_seq,
        rope_theta=a.rope_theta, rms_norm_eps=a.norm_eps, tie_word_embeddings=a.tie, rope_scaling=rope_scaling,
        hidden_act=a.hidden_act, attention_bias=a.attention_bias, mlp_bias=a.mlp_bias, head_dim=a.head_dim,
        bos_token_id=a.bos_token_id, eos_token_id=a.eos_token_id, torch_dtype=a.dtype)


@torch.no_grad()
def randomize(model, seed):
    """Every parameter in named_parameters() order (a tied matrix once) from one generator seeded with seed."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.uniform_(*NORM_RANGE, generator=g)
        else:
            p.normal_(0.0, MATRIX_STD, generator=g)


def add_extra_tensors(out, names, dim, dtype, seed):
    """Adds each name as an unused [dim] tensor to the (last) safetensors file, keeping the file's metadata,
    and to the shard index where there is one, so that only the name is wrong."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    index_path = os.path.join(out, "model.safetensors.index.json")
    index = None
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        file = sorted(set(index["weight_map"].values()))[-1]
    else:
        file = "model.safetensors"
    path = os.path.join(out, file)
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    g = torch.Generator().manual_seed(seed + 1)
    for name in names:
        if name in tensors or (index and name in index["weight_map"]):
            sys.exit(f"error: --extra-tensor {name} is already a tensor of the checkpoint")
        tensors[name] = torch.randn(dim, generator=g).to(dtype)
        if index:
            index["weight_map"][name] = file
            index["metadata"]["total_size"] += tensors[name].numel() * tensors[name].element_size()
    save_file(tensors, path, metadata=metadata)
    if index:
        with open(index_path, "w") as f:
            json.dump(index, f, indent=2, sort_keys=True)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("out", help="output directory (created; files of the same names are overwritten)")
    m = ap.add_argument_group("model")
    m.add_argument("--dim", type=int, default=64, help="hidden_size")
    m.add_argument("--layers", type=int, default=2, help="num_hidden_layers")
    m.add_argument("--heads", type=int, default=4, help="num_attention_heads")
    m.add_argument("--kv-heads", type=int, default=2, help="num_key_value_heads")
    m.add_argument("--ffn", type=int, default=172, help="intermediate_size")
    m.add_argument("--vocab", type=int, default=512, help="vocab_size")
    m.add_argument("--max-seq", type=int, default=64, help="max_position_embeddings")
    m.add_argument("--rope-theta", type=float, default=10000.0)
    m.add_argument("--norm-eps", type=float, default=1e-6, help="rms_norm_eps")
    m.add_argument("--tie", action="store_true", help="tie_word_embeddings: lm_head is the embedding, stored once")
    m.add_argument("--bos-token-id", type=int, default=1)
    m.add_argument("--eos-token-id", type=token_ids, default=2,
                   help="one id, or a comma list (written as a list, as Llama-3 instruct models have)")
    r = ap.add_argument_group("RoPE scaling (config.json's rope_scaling)")
    r.add_argument("--rope-scaling", choices=["none", "linear", "llama3"], default="none")
    r.add_argument("--rope-factor", type=float, default=8.0, help="linear and llama3: factor")
    r.add_argument("--rope-low-freq-factor", type=float, default=1.0, help="llama3: low_freq_factor")
    r.add_argument("--rope-high-freq-factor", type=float, default=4.0, help="llama3: high_freq_factor")
    r.add_argument("--rope-original-max-seq", type=int, default=8192,
                   help="llama3: original_max_position_embeddings")
    f = ap.add_argument_group("files")
    f.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="the tensors' dtype and config.json's torch_dtype")
    f.add_argument("--max-shard-size", type=shard_size, default=None,
                   help="shard the weights (bytes, or e.g. 100KB): model-0000i-of-0000n.safetensors and an index")
    f.add_argument("--seed", type=int, default=1, help="seeds the weights")
    v = ap.add_argument_group("variants a strict loader must refuse")
    v.add_argument("--attention-bias", action="store_true", help="q, k, v, o projections with biases")
    v.add_argument("--mlp-bias", action="store_true", help="gate, up, down projections with biases")
    v.add_argument("--head-dim", type=int, default=None,
                   help="an explicit head_dim (the projections sized by it), e.g. other than dim/heads")
    v.add_argument("--hidden-act", default="silu", help="the MLP activation, a transformers ACT2FN name")
    v.add_argument("--extra-tensor", action="append", default=[], metavar="NAME",
                   help="add an unused tensor of this name to the safetensors file (repeatable)")
    a = ap.parse_args()

    from transformers import LlamaForCausalLM
    from transformers.activations import ACT2FN
    if a.hidden_act not in ACT2FN:
        ap.error(f"--hidden-act {a.hidden_act}: transformers knows {', '.join(sorted(ACT2FN))}")
    dtype = getattr(torch, a.dtype)
    model = LlamaForCausalLM(hf_config(a))
    randomize(model, a.seed)
    model.to(dtype)
    save = {} if a.max_shard_size is None else {"max_shard_size": a.max_shard_size}
    model.save_pretrained(a.out, safe_serialization=True, **save)
    if a.extra_tensor:
        add_extra_tensors(a.out, a.extra_tensor, a.dim, dtype, a.seed)
    files = sorted(os.listdir(a.out))
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: {n} parameters ({a.dtype}), {', '.join(files)}")


if __name__ == "__main__":
    main()
