"""PyTorch reference of the grass.c LLaMA model (docs/design.md §2) and of its AdamW training step, fp32.

Written from plain torch modules, not transformers, so every operation is in view; test/t_reference_vs_hf.sh
checks it against HF LlamaForCausalLM. Besides the LLaMA-2 layout it has the Llama-3 family's options as
transformers 4.45 computes them: tied embeddings (one V x d matrix as embedding and lm_head) and RoPE scaling
of type `linear` or `llama3`. As a script it writes, into --out, a HF checkpoint of the initial
weights (config.json, model.safetensors) and debug_state.safetensors (tokens, logits, loss, every gradient,
and the losses and gradient norms of a few optimizer steps on one batch), the oracle for the C trainer.
Importable: LlamaConfig, LlamaRef, AdamW, lr_at, clip_grad_norm (the Grass reference builds on these).
Works with torch 1.13.
"""
import argparse
import json
import math
import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class LlamaConfig:
    dim: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 172
    vocab: int = 512
    max_seq: int = 64
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    tie_word_embeddings: bool = False  # lm_head.weight is model.embed_tokens.weight
    rope_scaling: str = "none"         # none, linear or llama3; the parameters below apply only then
    rope_factor: float = 8.0           # linear and llama3: low frequencies are divided by it
    rope_low_freq_factor: float = 1.0  # llama3: wavelengths above original/low are divided by rope_factor,
    rope_high_freq_factor: float = 4.0  # those below original/high kept, those between interpolated
    rope_original_max_seq: int = 8192  # llama3: the context length the model was trained for before scaling

    def __post_init__(self):
        assert self.rope_scaling in ("none", "linear", "llama3"), f"unknown rope_scaling {self.rope_scaling}"
        if self.rope_scaling == "llama3":  # the interpolation divides by their difference
            assert self.rope_high_freq_factor > self.rope_low_freq_factor, "--rope-high-freq-factor <= low"

    def rope_scaling_hf(self):
        """config.json's rope_scaling as transformers reads it, or None without scaling."""
        if self.rope_scaling == "linear":
            return {"rope_type": "linear", "factor": self.rope_factor}
        if self.rope_scaling == "llama3":
            return {"rope_type": "llama3", "factor": self.rope_factor,
                    "low_freq_factor": self.rope_low_freq_factor, "high_freq_factor": self.rope_high_freq_factor,
                    "original_max_position_embeddings": self.rope_original_max_seq}
        return None

    def fields_in_use(self):
        """The fields that describe this model: the LLaMA-2 ones, plus tie and the scaling parameters in use
        (so a LLaMA-2 config is described exactly as before they existed)."""
        keep = ["dim", "layers", "heads", "kv_heads", "ffn", "vocab", "max_seq", "rope_theta", "norm_eps"]
        if self.tie_word_embeddings:
            keep.append("tie_word_embeddings")
        if self.rope_scaling != "none":
            keep += ["rope_scaling", "rope_factor"]
        if self.rope_scaling == "llama3":
            keep += ["rope_low_freq_factor", "rope_high_freq_factor", "rope_original_max_seq"]
        return {k: getattr(self, k) for k in keep}

    def hf_config(self):
        """The HF LlamaConfig fields of config.json (the C trainer writes the same ones)."""
        c = {
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": self.dim, "intermediate_size": self.ffn,
            "num_attention_heads": self.heads, "num_key_value_heads": self.kv_heads,
            "num_hidden_layers": self.layers, "vocab_size": self.vocab,
            "max_position_embeddings": self.max_seq, "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta, "hidden_act": "silu", "tie_word_embeddings": self.tie_word_embeddings,
            "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
        }
        if self.rope_scaling != "none":
            c["rope_scaling"] = self.rope_scaling_hf()
        return c


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_inv_freq(c):
    """The head_dim/2 inverse frequencies, fp32, with transformers' operations in its order (bit-identical).

    linear: all divided by rope_factor. llama3 (Llama-3.1), by wavelength 2 pi / f, with L the
    rope_original_max_seq: above L/low divided by rope_factor; below L/high unchanged; between, with
    s = (L/wavelength - low)/(high - low), (1 - s) f/factor + s f.
    """
    head_dim = c.dim // c.heads
    inv_freq = 1.0 / c.rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    if c.rope_scaling == "linear":
        inv_freq = inv_freq / c.rope_factor
    elif c.rope_scaling == "llama3":
        L, low, high = c.rope_original_max_seq, c.rope_low_freq_factor, c.rope_high_freq_factor
        wavelength = 2 * math.pi / inv_freq
        divided = torch.where(wavelength > L / low, inv_freq / c.rope_factor, inv_freq)
        s = (L / wavelength - low) / (high - low)
        between = (1 - s) * divided / c.rope_factor + s * divided
        in_between = (wavelength >= L / high) & (wavelength <= L / low)
        inv_freq = torch.where(in_between, between, divided)
    return inv_freq


def rope_cos_sin(T, inv_freq):
    """cos, sin of shape [T, head_dim] for positions 0..T-1; frequency i is shared by lanes i and i+head_dim/2.
    The angles are fp32(t * inv_freq); transformers scales cos and sin by 1 for these RoPE types."""
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """HF rotate_half layout: lane i pairs with lane i + head_dim/2 (not interleaved pairs)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        assert c.dim % c.heads == 0 and c.heads % c.kv_heads == 0 and (c.dim // c.heads) % 2 == 0
        self.heads, self.kv_heads, self.head_dim = c.heads, c.kv_heads, c.dim // c.heads
        self.q_proj = nn.Linear(c.dim, c.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c.dim, c.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c.dim, c.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(c.heads * self.head_dim, c.dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)  # B, heads, T, hd
        k = self.k_proj(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        group = self.heads // self.kv_heads  # query head h reads kv head h // group
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        p = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        y = (p @ v).transpose(1, 2).reshape(B, T, self.heads * self.head_dim)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.dim, c.ffn, bias=False)
        self.up_proj = nn.Linear(c.dim, c.ffn, bias=False)
        self.down_proj = nn.Linear(c.ffn, c.dim, bias=False)

    def forward(self, y):
        return self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c.dim, c.norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.dim, c.norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaRef(nn.Module):
    """Module names mirror HF, so state_dict() keys are the HF tensor names (model.layers.0.mlp.up_proj.weight).
    Tied, lm_head.weight is the embedding's Parameter: named_parameters() lists it once, as
    model.embed_tokens.weight, and autograd sums the gradients of both uses into it."""

    def __init__(self, c, seed=None):
        super().__init__()
        self.config = c
        self.model = nn.ModuleDict({
            "embed_tokens": nn.Embedding(c.vocab, c.dim),
            "layers": nn.ModuleList([Block(c) for _ in range(c.layers)]),
            "norm": RMSNorm(c.dim, c.norm_eps),
        })
        self.lm_head = nn.Linear(c.dim, c.vocab, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model["embed_tokens"].weight
        if seed is not None:
            self.init_weights(seed)

    @torch.no_grad()
    def init_weights(self, seed):
        """torch.manual_seed(seed), then in named_parameters() order: 2-D weights N(0, 0.02), norm weights 1."""
        torch.manual_seed(seed)
        for _, p in self.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02)
            else:
                p.fill_(1.0)

    def forward(self, idx, targets=None):
        """idx, targets: [B, T] int64. Returns logits [B, T, V] and the mean cross-entropy (None without targets)."""
        c = self.config
        cos, sin = rope_cos_sin(idx.shape[1], rope_inv_freq(c))
        x = self.model["embed_tokens"](idx)
        for block in self.model["layers"]:
            x = block(x, cos, sin)
        logits = self.lm_head(self.model["norm"](x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, c.vocab), targets.reshape(-1))
        return logits, loss


def lr_at(step, lr, warmup, steps, min_lr_ratio):
    """Learning rate of 0-based step: linear warmup to lr over `warmup` steps, then cosine to lr*min_lr_ratio."""
    if step < warmup:
        return lr * (step + 1) / warmup
    lr_min = lr * min_lr_ratio
    progress = (step - warmup) / max(1, steps - warmup)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def clip_grad_norm(params, grad_clip):
    """Global L2 norm over all gradients (returned, before clipping); scales them by grad_clip/(norm+1e-6) if < 1."""
    norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params))
    if grad_clip > 0:
        coef = grad_clip / (norm + 1e-6)
        if coef < 1.0:
            for p in params:
                p.grad.mul_(coef)
    return norm


class AdamW:
    """torch.optim.AdamW arithmetic, with decoupled weight decay only on 2-D tensors (not the norm weights).

    step t (1-based): p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
    """

    def __init__(self, params, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.0):
        self.params = list(params)
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, lr, t):
        b1, b2 = self.beta1, self.beta2
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            if p.dim() == 2 and self.weight_decay != 0:
                p.mul_(1.0 - lr * self.weight_decay)
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            denom = (v.sqrt() / math.sqrt(1.0 - b2 ** t)).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / (1.0 - b1 ** t))


def torch_adamw(params, a):
    """torch.optim.AdamW with the same decay rule, used only to cross-check AdamW above (--torch-adamw)."""
    params = list(params)
    groups = [{"params": [p for p in params if p.dim() == 2], "weight_decay": a.weight_decay},
              {"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)

    class Wrapped:
        def step(self, lr, t):
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
    return Wrapped()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory")
    for name, default in vars(LlamaConfig()).items():
        if isinstance(default, bool):
            ap.add_argument("--" + name.replace("_", "-"), action="store_true")
        elif name == "rope_scaling":
            ap.add_argument("--rope-scaling", choices=["none", "linear", "llama3"], default=default)
        else:
            ap.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    for name, typ, default in [("batch", int, 2), ("seq", int, 16), ("steps", int, 10), ("lr", float, 1e-2),
                               ("warmup", int, 2), ("min-lr-ratio", float, 0.1), ("weight-decay", float, 0.1),
                               ("grad-clip", float, 1.0), ("beta1", float, 0.9), ("beta2", float, 0.95),
                               ("eps", float, 1e-8), ("seed", int, 1)]:
        ap.add_argument("--" + name, type=typ, default=default)
    ap.add_argument("--torch-adamw", action="store_true", help="step with torch.optim.AdamW (cross-check)")
    ap.add_argument("--optimizer", choices=["adamw", "grass"], default="adamw")
    ap.add_argument("--grass-rank", type=int, default=16)
    ap.add_argument("--grass-interval", type=int, default=3)
    ap.add_argument("--grass-select", default="multinorm")
    ap.add_argument("--grass-alpha", type=float, default=0.25)
    ap.add_argument("--grass-side", choices=["auto", "rows", "cols"], default="auto")
    a = ap.parse_args()
    from safetensors.torch import save_file

    cfg = LlamaConfig(**{k: getattr(a, k) for k in vars(LlamaConfig())})
    assert a.seq <= cfg.max_seq, "--seq exceeds --max-seq"
    model = LlamaRef(cfg, seed=a.seed)
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg.hf_config(), f, indent=2)
    save_file({n: p.detach().clone() for n, p in zip(names, params)},
              os.path.join(a.out, "model.safetensors"), metadata={"format": "pt"})

    # One fixed batch: tokens uniform in [0, V) from their own generator seeded with --seed.
    B, T = a.batch, a.seq
    tokens = torch.randint(0, cfg.vocab, (B * T + 1,), generator=torch.Generator().manual_seed(a.seed))
    x, y = tokens[:-1].view(B, T), tokens[1:].view(B, T)

    logits, loss = model(x, y)
    loss.backward()
    state = {"tokens": tokens.to(torch.int32), "logits": logits.detach().clone(),
             "loss": loss.detach().reshape(1).clone()}
    state.update({"grad." + n: p.grad.clone() for n, p in zip(names, params)})

    if a.optimizer == "grass":
        from grass_ref import Grass
        opt = Grass(model.named_parameters(), lambda ps: AdamW(ps, a.beta1, a.beta2, a.eps, a.weight_decay),
                    a.grass_rank, a.grass_interval, a.grass_select, a.grass_alpha, a.grass_side, a.seed,
                    a.beta1, a.beta2, a.eps, a.weight_decay)
    else:
        opt = torch_adamw(params, a) if a.torch_adamw else AdamW(params, a.beta1, a.beta2, a.eps, a.weight_decay)
    losses, norms = [], []
    for s in range(a.steps):
        for p in params:
            p.grad = None
        _, loss = model(x, y)
        loss.backward()
        losses.append(loss.item())
        lr = lr_at(s, a.lr, a.warmup, a.steps, a.min_lr_ratio)
        if a.optimizer == "grass":
            norms.append(opt.step(s, lr, a.grad_clip))
        else:
            norms.append(clip_grad_norm(params, a.grad_clip))
            opt.step(lr, s + 1)
    state["losses"] = torch.tensor(losses, dtype=torch.float32)
    state["norms"] = torch.tensor(norms, dtype=torch.float32)
    if a.optimizer == "grass":  # the selection in force after the last step
        for name, (sigma, rho) in opt.sel.items():
            state["grass.sigma." + name] = sigma.to(torch.int32)
            state["grass.rho." + name] = rho.clone()

    meta = {k: str(getattr(a, k)) for k in ["batch", "seq", "steps", "lr", "warmup", "min_lr_ratio",
                                             "weight_decay", "grad_clip", "beta1", "beta2", "eps", "seed",
                                             "optimizer", "grass_rank", "grass_interval", "grass_select",
                                             "grass_alpha", "grass_side"]}
    meta.update({k: str(v) for k, v in cfg.fields_in_use().items()})
    save_file(state, os.path.join(a.out, "debug_state.safetensors"), metadata=meta)
    print(f"initial loss {state['loss'].item():.6f} (ln V = {math.log(cfg.vocab):.6f})")
    print("losses " + " ".join(f"{v:.6f}" for v in losses))
    print("norms  " + " ".join(f"{v:.6f}" for v in norms))


if __name__ == "__main__":
    main()
