#!/usr/bin/env python3
"""A model of data-parallel training speed for AdamW, ZeRO-1 sharded AdamW and Grass, from 1 GPU to 16 nodes.

It holds the arithmetic that turns two kinds of measured or computed input into predicted step times:
- the bytes each rank all-reduces per step, by category, from the trainers' own memory plans (`--dry-run`);
- one GPU's step time split into forward, backward and optimizer, from a measured profile
  (dev/bench/scaling_profile.txt by default: the H200 measurement of dev/bench/RESULTS.md).
It exists to say, with numbers that trace to those inputs and to stated interconnect defaults, where Grass's smaller
all-reduce turns into throughput and how far that goes toward the Grass paper's "up to 2x throughput on an 8-GPU
system" (Muhamed et al. 2024). It predicts; it measures nothing. Memory is not modelled.

Communication (bus bandwidth as NCCL reports it; latency counted once per collective):
  ring all-reduce of b bytes on n ranks:   2 (n-1)/n b / bw + 2 (n-1) latency
  reduce-scatter or all-gather:              (n-1)/n b / bw +   (n-1) latency
  over several nodes of g GPUs (hierarchical): the node's share over NVLink among its g GPUs, then each GPU's 1/g
  of the bytes over its own NIC among the m nodes, with the same formulas.
Overlap (docs/design.md §7): each tensor is all-reduced on a second stream as soon as the backward has finished it,
the embedding last, so
  step = forward + max(backward, comm of all but the embedding) + comm of the embedding + optimizer
and the bound without overlap is forward + backward + all comm + optimizer.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PRESETS = ["1b", "7b", "13b"]
VARIANTS = ["adamw", "adamw-sharded", "grass"]


def parse_args():
    p = argparse.ArgumentParser(
        description="Predicted data-parallel step time, tokens/s and scaling efficiency of AdamW, ZeRO-1 sharded "
        "AdamW and Grass (1b, 7b, 13b) from the trainers' --dry-run bytes and a measured one-GPU profile.")
    p.add_argument("--profile", default=os.path.join(ROOT, "dev", "bench", "scaling_profile.txt"),
                   help="measured one-GPU profile (format of dev/bench/scaling_profile.txt) [%(default)s]")
    p.add_argument("--nvlink-gbs", type=float, default=370.0,
                   help="NVLink bus bandwidth per GPU within a node, GB/s [%(default)s]")
    p.add_argument("--nvlink-latency-us", type=float, default=10.0,
                   help="latency per ring step within a node, microseconds [%(default)s]")
    p.add_argument("--nic-gbs", type=float, default=50.0,
                   help="inter-node bandwidth of each GPU's NIC, GB/s (400 Gb/s) [%(default)s]")
    p.add_argument("--slow-nic-gbs", type=float, default=12.5,
                   help="the slower inter-node case, GB/s (100 Gb/s) [%(default)s]")
    p.add_argument("--nic-latency-us", type=float, default=20.0,
                   help="latency per ring step between nodes, microseconds [%(default)s]")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs in a node [%(default)s]")
    p.add_argument("--nodes", default="2,4,8,16", help="node counts of the multi-node rows [%(default)s]")
    p.add_argument("--reduce-dtype", default="fp32", choices=["fp32", "bf16"],
                   help="precision of the gradients' sums, the GPU trainer's --reduce-dtype [%(default)s]")
    p.add_argument("--tokens-70b", type=int, default=1048576,
                   help="tokens per step of the 70B rows with --shard-weights [%(default)s]")
    p.add_argument("--grass-interval", type=int, default=200,
                   help="steps between Grass refreshes (the trainer's default) [%(default)s]")
    return p.parse_args()


def read_profile(path):
    """The profile's "key value" lines and one {forward, backward, optimizer} per optimizer (milliseconds)."""
    info, phases = {}, {}
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if words[0] in ("adamw", "grass"):
                fwd, bwd, opt, step = (float(w) for w in words[1:5])
                if abs(fwd + bwd + opt - step) > 0.01 * step:  # the split must account for the measured step
                    sys.exit(f"error: {path}: {words[0]}: the phases add up to {fwd + bwd + opt:.1f} ms, not {step} ms")
                phases[words[0]] = {"forward": fwd, "backward": bwd, "optimizer": opt}
            else:
                info[words[0]] = " ".join(words[1:])
    for key in ("device", "preset", "batch", "seq"):
        if key not in info:
            sys.exit(f"error: {path}: no '{key}' line")
    if set(phases) != {"adamw", "grass"}:
        sys.exit(f"error: {path}: needs one 'adamw' and one 'grass' line")
    return info, phases


def dry_run(binary, preset, opt, batch, seq, extra=()):
    cmd = [os.path.join(ROOT, binary), "--model", preset, "--dry-run", "--ranks", "8", "--batch", str(batch),
           "--seq", str(seq), "--optimizer", opt, *extra]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def plan(preset, opt, batch, seq, reduce_dtype):
    """Sizes and bytes per step and rank of one preset and optimizer, from the trainers' dry runs.

    train_llama_cpu names the categories (in fp32); train_llama, where built, gives the GPU's own gradient bytes (in
    reduce_dtype). A refresh's full projection gradients travel in fp32 on the GPU too (docs/design.md §7), so they
    are taken as the CPU prints them; the weights a sharded run all-gathers are bf16."""
    eb = 4 if reduce_dtype == "fp32" else 2  # bytes of a gradient element on the wire
    cpu = dry_run("train_llama_cpu", preset, opt, batch, seq)
    m = re.search(r"dim (\d+), layers (\d+), .* vocab (\d+), .*; (\d+) parameters", cpu)
    dim, layers, vocab, params = (int(x) for x in m.groups())
    m = re.search(r"all-reduce per step and rank: (\d+) bytes, of which projections (\d+) bytes "
                  r"\(refresh steps: (\d+) bytes\)", cpu)
    cpu_step, cpu_proj, cpu_refresh = (int(x) for x in m.groups())
    if os.access(os.path.join(ROOT, "train_llama"), os.X_OK):
        gpu = dry_run("train_llama", preset, opt, batch, seq, ["--reduce-dtype", reduce_dtype])
        step = int(re.search(r"collectives per step and rank .*?: grads (\d+) bytes", gpu).group(1))
        source = "train_llama"
    else:
        step = cpu_step // 4 * eb
        source = f"train_llama_cpu x {eb} / 4"
    return {"dim": dim, "layers": layers, "vocab": vocab, "params": params, "step": step, "source": source,
            "dense": (cpu_step - cpu_proj) // 4 * eb, "projections": cpu_proj // 4 * eb,
            "refresh": cpu_refresh - cpu_step,  # the extra bytes of a refresh step, fp32
            "embedding": eb * vocab * dim,      # the last tensor reduced
            "weights": 2 * params}              # the bf16 weights a sharded run all-gathers


def flops_per_token(p, seq):
    """The trainer's MFU count (train_llama.cu): 6 per matrix parameter, 6 L T d for causal attention."""
    return 6.0 * (p["params"] - p["vocab"] * p["dim"]) + 6.0 * p["layers"] * seq * p["dim"]


def ring(nbytes, n, bw_gbs, latency_us, halves):
    """Time in ms of a ring collective: halves 2 for an all-reduce, 1 for a reduce-scatter or an all-gather."""
    if n <= 1 or nbytes == 0:
        return 0.0
    return halves * ((n - 1) / n * nbytes / (bw_gbs * 1e9) + (n - 1) * latency_us * 1e-6) * 1e3


def collective(nbytes, point, args, halves):
    """Time in ms of a collective at a point (gpus per node, nodes, NIC GB/s): NVLink within, NICs between."""
    g, nodes, nic = point
    t = ring(nbytes, g, args.nvlink_gbs, args.nvlink_latency_us, halves)
    return t + ring(nbytes / g, nodes, nic, args.nic_latency_us, halves)


def predict(variant, phases, p, point, args):
    """Predicted step of one variant at one point: (step ms, comm ms, exposed comm ms, amortised refresh ms,
    no-overlap bound ms)."""
    g, nodes, _ = point
    n = g * nodes
    fwd, bwd, opt = phases["forward"], phases["backward"], phases["optimizer"]
    halves = 1 if variant == "adamw-sharded" else 2   # the sharded reduce-scatter is half an all-reduce
    tail = collective(p["embedding"], point, args, halves)
    overlappable = collective(p["step"] - p["embedding"], point, args, halves)
    extra = 0.0  # communication that no computation hides
    if variant == "adamw-sharded":
        opt = opt / n                                     # each rank updates its 1/n of the parameters
        extra = collective(p["weights"], point, args, 1)  # the updated bf16 weights, before the next forward
    refresh = 0.0
    if variant == "grass":  # the refresh waits for each full projection gradient, once per interval
        refresh = collective(p["refresh"], point, args, 2) / args.grass_interval
    comm = overlappable + tail + extra + refresh
    step = fwd + max(bwd, overlappable) + tail + opt + extra + refresh
    return step, comm, step - (fwd + bwd + opt), refresh, fwd + bwd + opt + comm


def main():
    args = parse_args()
    info, measured = read_profile(args.profile)
    batch, seq = int(info["batch"]), int(info["seq"])
    tokens = batch * seq  # per GPU and step: every rank runs the profiled micro-batch
    plans = {(pr, opt): plan(pr, opt, batch, seq, args.reduce_dtype) for pr in PRESETS for opt in ("adamw", "grass")}
    base = plans[(info["preset"], "adamw")]

    phases = {}  # (preset, optimizer) -> forward, backward, optimizer ms on one GPU
    for pr in PRESETS:
        flops_ratio = flops_per_token(plans[(pr, "adamw")], seq) / flops_per_token(base, seq)
        param_ratio = plans[(pr, "adamw")]["params"] / base["params"]
        for opt in ("adamw", "grass"):
            m = measured[opt]
            if pr == info["preset"]:
                phases[(pr, opt)] = dict(m)
            else:  # same MFU: forward and backward scale with the FLOPs, the optimizer with the parameters
                phases[(pr, opt)] = {"forward": m["forward"] * flops_ratio, "backward": m["backward"] * flops_ratio,
                                     "optimizer": m["optimizer"] * param_ratio}

    g = args.gpus_per_node
    nodes = [int(x) for x in args.nodes.split(",")]
    points = [("1 GPU", (1, 1, args.nic_gbs)), (f"{g} GPUs, NVLink", (g, 1, args.nic_gbs))]
    for nic in (args.nic_gbs, args.slow_nic_gbs):
        points += [(f"{m} x {g} GPUs, {nic * 8:g} Gb/s", (g, m, nic)) for m in nodes]

    print(f"## Inputs (bytes per step and rank from `--dry-run --batch {batch} --seq {seq}`; "
          f"one-GPU profile: {os.path.relpath(args.profile, ROOT)})\n")
    print(f"Profile: {info['device']}, {info['preset']}, {batch} x {seq} tokens per GPU and step. Rows of other "
          f"presets are EXTRAPOLATED from it: forward and backward scaled by the FLOPs per token (6 x matrix "
          f"parameters + 6 L T d, the trainer's MFU count, i.e. the same MFU), the optimizer by the parameters.\n")
    print("| preset | optimizer | bytes source | all-reduce bytes | of which dense | compressed or projections | "
          "embedding (last) | refresh extra (fp32) | forward ms | backward ms | optimizer ms | compute |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (pr, opt), p in plans.items():
        ph = phases[(pr, opt)]
        print(f"| {pr} | {opt} | {p['source']} | {p['step']} | {p['dense']} | {p['step'] - p['dense']} | "
              f"{p['embedding']} | {p['refresh'] if opt == 'grass' else 0} | {ph['forward']:.2f} | "
              f"{ph['backward']:.2f} | {ph['optimizer']:.2f} | "
              f"{'measured' if pr == info['preset'] else 'extrapolated'} |")

    print(f"\n## Prediction (NVLink {args.nvlink_gbs:g} GB/s bus bandwidth per GPU, {args.nvlink_latency_us:g} us; "
          f"NIC {args.nic_gbs:g} GB/s = {args.nic_gbs * 8:g} Gb/s or {args.slow_nic_gbs:g} GB/s = "
          f"{args.slow_nic_gbs * 8:g} Gb/s per GPU, {args.nic_latency_us:g} us; Grass refresh every "
          f"{args.grass_interval} steps; a prediction, not a measurement)\n")
    print("| preset | optimizer | GPUs | step ms | tokens/s | efficiency | comm ms | exposed comm ms | "
          "refresh comm ms (amortised) | no-overlap ms | Grass / AdamW |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    results = {}
    for pr in PRESETS:
        for variant in VARIANTS:
            opt = "grass" if variant == "grass" else "adamw"
            for label, point in points:
                step, comm, exposed, refresh, bound = predict(variant, phases[(pr, opt)], plans[(pr, opt)], point, args)
                n = point[0] * point[1]
                results[(pr, variant, label)] = n * tokens / step * 1e3
                one = results[(pr, variant, "1 GPU")]
                ratio = (f"{results[(pr, 'grass', label)] / results[(pr, 'adamw', label)]:.2f}x"
                         if variant == "grass" else "")
                print(f"| {pr} | {variant} | {label} | {step:.1f} | {results[(pr, variant, label)]:.0f} | "
                      f"{results[(pr, variant, label)] / (n * one):.3f} | {comm:.2f} | {exposed:.2f} | {refresh:.3f} | "
                      f"{bound:.1f} | {ratio} |")

    print("\n## Beside the paper's \"up to 2x throughput on an 8-GPU system\"\n")
    best = max(((results[(pr, "grass", label)] / results[(pr, "adamw", label)], pr, label)
                for pr in PRESETS for label, _ in points))
    print(f"Highest Grass / AdamW in the table: {best[0]:.2f}x ({best[1]}, {best[2]}). "
          f"At {g} GPUs over NVLink ({args.nvlink_gbs:g} GB/s): " +
          ", ".join(f"{pr} {results[(pr, 'grass', f'{g} GPUs, NVLink')] / results[(pr, 'adamw', f'{g} GPUs, NVLink')]:.2f}x"
                    for pr in PRESETS) + ".")
    # The bus bandwidth within one node of g GPUs at which Grass / AdamW reaches 2: found by bisection, as the
    # ratio grows as the bandwidth falls (AdamW all-reduces more bytes).
    parts = []
    for pr in PRESETS:
        def ratio_at(bw):
            local = argparse.Namespace(**{**vars(args), "nvlink_gbs": bw})
            t = {v: predict(v, phases[(pr, "grass" if v == "grass" else "adamw")],
                            plans[(pr, "grass" if v == "grass" else "adamw")], (g, 1, args.nic_gbs), local)[0]
                 for v in ("adamw", "grass")}
            return t["adamw"] / t["grass"]
        lo, hi = 0.01, args.nvlink_gbs
        if ratio_at(hi) >= 2:
            parts.append(f"{pr}: already at {args.nvlink_gbs:g} GB/s")
            continue
        if ratio_at(lo) < 2:
            parts.append(f"{pr}: not above {lo} GB/s")
            continue
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if ratio_at(mid) >= 2 else (lo, mid)
        parts.append(f"{pr} at {lo:.1f} GB/s or less")
    print(f"On one node of {g} GPUs, Grass reaches 2x AdamW's tokens/s when the bus bandwidth is: " +
          "; ".join(parts) + f" (NVLink here: {args.nvlink_gbs:g} GB/s). The one-GPU ratio, which no interconnect "
          f"changes, is {results[(info['preset'], 'grass', '1 GPU')] / results[(info['preset'], 'adamw', '1 GPU')]:.2f}x "
          f"(measured); the rest of a 2x must come from communication, so 2x needs an interconnect far slower than "
          f"NVLink, where both optimizers are communication-bound and the ratio approaches their bytes' ratio.")
    sharded_weights(args, info, measured, base, seq)



def sharded_weights(args, info, measured, base, seq_base):
    """--shard-weights: 70B Grass on one node of g GPUs, each layer's weights all-gathered (bf16) before its forward
    and its backward, the next layer's gather overlapping this layer's compute, and each layer's gradients
    reduce-scattered (fp32) after its backward on every micro-batch, sharing the link with the gathers (docs/design.md
    §7). Compute at the profile's MFU (forward and backward scaled by FLOPs), the backward with a forward
    recomputation (--recompute 2)."""
    g = args.gpus_per_node
    point = (g, 1, args.nic_gbs)
    m = measured["grass"]
    tokens_base = int(info["batch"]) * seq_base
    print(f"\n## Sharded weights (`--shard-weights`): 70B Grass on one node of {g} GPUs over NVLink "
          f"({args.nvlink_gbs:g} GB/s; a PREDICTION)\n")
    print(f"Compute EXTRAPOLATED from the {info['device']} {info['preset']} profile at its MFU (forward and backward "
          f"scaled by FLOPs, the backward plus a forward for --recompute 2); MFU against 989 TFLOP/s (the bf16 dense "
          f"peak of the H100 SXM and the H200). Each layer is gathered before its forward and its backward, and its "
          f"gradients are reduce-scattered after its backward, every micro-batch; a step of {args.tokens_70b} tokens. "
          f"Communication: the gathers, the reduce-scatters, Grass's updates and the refresh (amortised); exposed: "
          f"the step less the compute. The micro-batches of 1 are the plans that fit 8 x 40 GB.\n")
    print("| preset | micro-batch | micro-batches | step ms | tokens/s | MFU | gathers ms | reduce-scatters ms | "
          "communication's share | hidden by overlap ms | exposed ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for preset, batch, seq in (("llama2-70b", 4, 4096), ("llama3.1-70b", 4, 4096), ("llama2-70b", 1, 4096),
                               ("llama3.1-70b", 1, 2048)):  # the first two on 8 x 80 GB, the others on 8 x 40 GB
        cpu = dry_run("train_llama_cpu", preset, "grass", 1, seq)
        dim, layers, vocab, params = (int(x) for x in re.search(
            r"dim (\d+), layers (\d+), .* vocab (\d+), .*; (\d+) parameters", cpu).groups())
        ref = re.search(r"all-reduce per step and rank: (\d+) bytes, of which projections (\d+) bytes "
                        r"\(refresh steps: (\d+) bytes\)", cpu)
        step_b, proj_b, refresh_b = (int(x) for x in ref.groups())
        p = {"params": params, "vocab": vocab, "dim": dim, "layers": layers}
        per_token = flops_per_token(p, seq)
        scale = per_token * batch * seq / (flops_per_token(base, seq_base) * tokens_base)
        fwd, bwd = m["forward"] * scale, (m["backward"] + m["forward"]) * scale  # one micro-batch on one GPU
        head = 6.0 * vocab * dim / per_token  # the lm_head's share of the FLOPs; the rest is the layers'
        layer_params = (params - 2 * vocab * dim - dim) / layers
        gather = collective(2 * layer_params, point, args, 1)  # one layer's bf16 weights
        # the embedding before each forward (exposed), the lm_head and final norm during the last layer's forward (they
        # take turns in one buffer, so every micro-batch gathers both)
        embed_g = collective(2 * vocab * dim, point, args, 1)
        head_g = collective(2 * (vocab * dim + dim), point, args, 1)
        f_l, b_l = fwd * (1 - head) / layers, bwd * (1 - head) / layers
        accum = max(1, args.tokens_70b // (g * batch * seq))
        # a layer's fp32 gradients (its compressed ones; the norms are negligible), reduce-scattered after its
        # backward; those outside the blocks (embedding, lm_head) counted exposed, every micro-batch
        rs_layer = collective(proj_b / layers, point, args, 1)
        rs_outside = collective(step_b - proj_b, point, args, 1)
        # forward: the embedding's and the first layer's gathers are exposed, then each layer waits for the longer of
        # its compute and the next gather (the last layer's: the head's); the backward finds its first two layers in place (and the next forward its first two), and
        # each of the others waits for the longer of its compute and the link's work (the next layer's gather and the
        # last layer's reduce-scatter)
        fwd_t = embed_g + gather + (layers - 1) * max(f_l, gather) + max(f_l, head_g) + fwd * head
        bwd_t = 2 * b_l + (layers - 2) * max(b_l, gather + rs_layer) + rs_layer + bwd * head
        gathers = accum * (embed_g + head_g + (2 * layers - 2) * gather)
        grads = accum * (layers * rs_layer + rs_outside)
        updates = collective(proj_b, point, args, 1)           # Grass's U (fp32) all-gathered, exposed
        opt = m["optimizer"] * params / base["params"] / g
        refresh = collective(refresh_b - step_b, point, args, 2) / args.grass_interval
        step = accum * (fwd_t + bwd_t + rs_outside) + updates + opt + refresh
        tok_s = g * accum * batch * seq / step * 1e3
        mfu = per_token * tok_s / (g * 989e12)
        comm = gathers + grads + updates + refresh
        exposed = step - accum * (fwd + bwd) - opt
        print(f"| {preset} | {batch} x {seq} | {accum} | {step:.0f} | {tok_s:.0f} | {100 * mfu:.1f}% | {gathers:.0f} | "
              f"{grads:.0f} | {comm / step:.3f} | {comm - exposed:.0f} | {exposed:.0f} |")


if __name__ == "__main__":
    main()
