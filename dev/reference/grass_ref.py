"""
grass_ref.py: Grass (docs/design.md §3) in PyTorch, the oracle for the C trainers' Grass. It repeats, number for
number, the project's PRNG (SplitMix64 seeding xoshiro256**, rng.h) and the selection of grass.h, so the same
seed selects the same rows here as in train_llama_cpu, train_llama and on every MPI rank. The compressed
gradient is taken from the full autograd gradient (g = diag(rho) B G), which is what the C code computes
directly without forming G. Works with torch 1.13.
"""
import math
import os
import re

import torch

MASK = (1 << 64) - 1
SELECTORS = ["topr", "multinorm", "multinorm-nr", "uniform", "uniform-nr"]
# kind numbers of llama_config.h (PARAM_WQ ... PARAM_WDOWN), which key the selection streams
PROJECTION_KINDS = {"self_attn.q_proj": 2, "self_attn.k_proj": 3, "self_attn.v_proj": 4, "self_attn.o_proj": 5,
                    "mlp.gate_proj": 7, "mlp.up_proj": 8, "mlp.down_proj": 9}
NUM_PARAM_KINDS = 12


def _rng_stream(name):
    """A stream tag of rng.h (#define NAME 0x...), read from the C source so that it is defined once."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "rng.h")
    with open(path) as f:
        m = re.search(r"^#define\s+" + name + r"\s+(0[xX][0-9a-fA-F]+|\d+)\b", f.read(), re.M)
    if not m:
        raise RuntimeError(f"{path} defines no {name}")
    return int(m.group(1), 0)


RNG_STREAM_GRASS = _rng_stream("RNG_STREAM_GRASS")  # keys the selection streams, as grass.h's grass_rng


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return x, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Rng:
    """rng.h: a xoshiro256** stream keyed by (seed, a, b, c)."""

    def __init__(self, seed, a, b, c):
        x = seed & MASK
        for key in (a, b, c):
            _, z = _splitmix64(x)
            x = z ^ key
        self.s = []
        for _ in range(4):
            x, z = _splitmix64(x)
            self.s.append(z)

    def next(self):
        s = self.s
        result = (_rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * (1.0 / 9007199254740992.0)

    def below(self, n):
        limit = MASK - MASK % n
        while True:
            x = self.next()
            if x < limit:
                return x % n


def grass_rng(seed, refresh, layer, kind):
    return Rng(seed, RNG_STREAM_GRASS, refresh, layer * NUM_PARAM_KINDS + kind)


def f32(x):
    """Rounds a Python float to float32, as the C code's (float) casts do."""
    return float(torch.tensor(x, dtype=torch.float32))


def select(selector, s, r, rng):
    """grass_select: r of D rows from squared norms s (list of floats); returns (sigma, rho) sorted by index."""
    D = len(s)
    total = 0.0
    for v in s:
        total += v
    sigma, rho = [], []
    if selector == "topr":
        order = sorted(range(D), key=lambda i: (-s[i], i))  # largest first, ties to the lower index
        sigma, rho = order[:r], [1.0] * r
    elif selector == "multinorm":
        cdf, acc = [], 0.0
        for i in range(D):
            acc += s[i] if total > 0 else 1.0
            cdf.append(acc)
        for _ in range(r):
            u = rng.uniform() * acc
            lo, hi = 0, D - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if cdf[mid] > u:
                    hi = mid
                else:
                    lo = mid + 1
            q = (s[lo] if total > 0 else 1.0) / acc
            sigma.append(lo)
            rho.append(f32(1.0 / math.sqrt(r * q)))
    elif selector == "multinorm-nr":
        taken = [False] * D
        for j in range(r):
            left, nonzero = 0.0, 0
            for i in range(D):
                if not taken[i]:
                    left += s[i]
                    nonzero += s[i] > 0
            u = rng.uniform() * (left if nonzero else float(D - j))
            acc, pick, last = 0.0, -1, -1
            for i in range(D):
                if taken[i]:
                    continue
                last = i
                acc += s[i] if nonzero else 1.0
                if acc > u and (not nonzero or s[i] > 0):
                    pick = i
                    break
            if pick < 0:
                pick = last
            taken[pick] = True
            sigma.append(pick)
            rho.append(1.0)
    elif selector == "uniform":
        for _ in range(r):
            sigma.append(rng.below(D))
            rho.append(f32(math.sqrt(D / r)))
    elif selector == "uniform-nr":
        perm = list(range(D))
        for j in range(r):
            k = j + rng.below(D - j)
            perm[j], perm[k] = perm[k], perm[j]
            sigma.append(perm[j])
            rho.append(f32(math.sqrt(D / r)))
    else:
        raise ValueError(f"unknown selector {selector}")
    pairs = sorted(zip(sigma, rho), key=lambda p: p[0])  # stable: duplicates keep their draw order
    return [p[0] for p in pairs], [p[1] for p in pairs]


def projection_kind(name):
    """(kind, layer) of a block projection's HF name, or None for the other tensors."""
    for key, kind in PROJECTION_KINDS.items():
        if name.endswith(key + ".weight"):
            return kind, int(name.split(".")[2])
    return None


class Grass:
    """Grass on the block projections, AdamW (the reference's, weight decay on 2-D tensors) on the rest.

    step(s): at s % interval == 0 reselect every projection from its full gradient's row (or column) norms
    and restart its moments; g = diag(rho) B G; clip by the global norm over the full gradients of the other
    tensors and the compressed ones; subspace Adam U = (M/(1-b1^t)) / (sqrt(V/(1-b2^t)) + eps) with t the
    steps since the refresh; W *= 1 - lr*wd; W[sigma] -= lr*alpha*rho*U (duplicates accumulate).
    """

    def __init__(self, named_params, adamw, rank, interval, selector, alpha, side, seed, beta1, beta2, eps, weight_decay):
        self.proj = []   # (name, param, kind, layer, rows, r)
        dense = []
        for name, p in named_params:
            kl = projection_kind(name)
            if kl is None:
                dense.append(p)
                continue
            m, n = p.shape
            rows = side == "rows" or (side == "auto" and m >= n)
            D = m if rows else n
            self.proj.append((name, p, kl[0], kl[1], rows, min(rank, D)))
        self.dense = dense
        self.adamw = adamw(dense)
        self.interval, self.selector, self.alpha, self.seed = interval, selector, alpha, seed
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.sel = {}    # name -> (sigma LongTensor, rho FloatTensor)
        self.m, self.v = {}, {}

    @torch.no_grad()
    def step(self, s, lr, grad_clip):
        """Optimizer step s (0-based) with the gradients in p.grad. Returns the global norm before clipping."""
        refresh = s % self.interval == 0
        t = s % self.interval + 1
        g = {}
        for name, p, kind, layer, rows, r in self.proj:
            G = p.grad
            if refresh:
                norms = (G.double() ** 2).sum(dim=1 if rows else 0).tolist()
                sigma, rho = select(self.selector, norms, r, grass_rng(self.seed, s // self.interval, layer, kind))
                self.sel[name] = (torch.tensor(sigma, dtype=torch.long), torch.tensor(rho, dtype=torch.float32))
                E = G.shape[1] if rows else G.shape[0]
                self.m[name] = torch.zeros(r, E)
                self.v[name] = torch.zeros(r, E)
            sigma, rho = self.sel[name]
            g[name] = rho[:, None] * (G[sigma] if rows else G[:, sigma].t())
        sq = sum(float(p.grad.double().pow(2).sum()) for p in self.dense) + sum(float(x.double().pow(2).sum()) for x in g.values())
        norm = math.sqrt(sq)
        if grad_clip > 0:
            coef = grad_clip / (norm + 1e-6)
            if coef < 1.0:
                for p in self.dense:
                    p.grad.mul_(coef)
                for x in g.values():
                    x.mul_(coef)
        self.adamw.step(lr, s + 1)
        b1, b2 = self.beta1, self.beta2
        for name, p, kind, layer, rows, r in self.proj:
            M, V, x = self.m[name], self.v[name], g[name]
            M.mul_(b1).add_(x, alpha=1.0 - b1)
            V.mul_(b2).addcmul_(x, x, value=1.0 - b2)
            U = (M / (1.0 - b1 ** t)) / ((V / (1.0 - b2 ** t)).sqrt() + self.eps)
            if self.weight_decay != 0:
                p.mul_(1.0 - lr * self.weight_decay)
            sigma, rho = self.sel[name]
            delta = -lr * self.alpha * rho[:, None] * U
            if rows:
                p.index_add_(0, sigma, delta)
            else:
                p.index_add_(1, sigma, delta.t())
        return norm
