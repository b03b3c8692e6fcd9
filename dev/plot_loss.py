"""
plot_loss.py: loss curves of one or more runs to a PNG, from their OUT/log.jsonl (docs/design.md §8).
  python3 dev/plot_loss.py OUT_DIR [OUT_DIR ...] [-o out/loss.png] [--smooth 20]
Training loss (raw, faint, and a moving average) and validation loss (points) against the step, one colour
per run. A resumed run may log a step twice; the later line wins. Needs matplotlib (python3-matplotlib).
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(path):
    """{step: loss} for training and validation, the later line winning. Lines of skipped steps, and losses
    recorded as null (not finite), are left out."""
    train, val = {}, {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                sys.exit(f"error: {path}:{n} is not a JSON line")
            if rec.get("val_loss") is not None:
                val[rec["step"]] = rec["val_loss"]
            elif rec.get("loss") is not None:
                train[rec["step"]] = rec["loss"]
    return train, val


def moving_average(values, k):
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= k:
            acc -= values[i - k]
        out.append(acc / min(i + 1, k))
    return out


def main():
    ap = argparse.ArgumentParser(description="plot the loss curves of grass.c runs")
    ap.add_argument("runs", nargs="+", help="output directories (holding log.jsonl) or log.jsonl files")
    ap.add_argument("-o", "--output", default=os.path.join("out", "loss.png"),
                    help="the PNG to write (default: out/loss.png, beside the runs' usual --out directories)")
    ap.add_argument("--smooth", type=int, default=20, help="moving-average window of the training loss")
    a = ap.parse_args()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, run in enumerate(a.runs):
        path = os.path.join(run, "log.jsonl") if os.path.isdir(run) else run
        if not os.path.isfile(path):
            sys.exit(f"error: {path} not found (give a run's --out directory or its log.jsonl)")
        train, val = read_log(path)
        if not train and not val:
            sys.exit(f"error: {path} holds no loss lines")
        color = f"C{i % 10}"
        name = os.path.basename(os.path.normpath(run if os.path.isdir(run) else os.path.dirname(run) or run))
        if train:
            steps = sorted(train)
            losses = [train[s] for s in steps]
            ax.plot(steps, losses, color=color, alpha=0.2, linewidth=0.8)
            ax.plot(steps, moving_average(losses, max(1, a.smooth)), color=color, label=f"{name} train")
        if val:
            steps = sorted(val)
            ax.plot(steps, [val[s] for s in steps], "o--", color=color, markersize=4, label=f"{name} val")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if os.path.dirname(a.output):
        os.makedirs(os.path.dirname(a.output), exist_ok=True)
    fig.savefig(a.output, dpi=120)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
