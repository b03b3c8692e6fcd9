#!/usr/bin/env python3
"""log_compare.py: the checks the trainer tests make on the trainers' log.jsonl, one JSON object per line
(logger.h): training steps {"step": s, "loss": ..., "norm": ..., "ms": ..., ...}, evaluations
{"step": s, "val_loss": ...}. Each line is parsed as JSON, so no check depends on the order of the keys; a log
that is empty, has a line that is not JSON or does not end in a newline (cut short), lacks a step or a field
that is asked for, is refused with an error.

  log_compare.py compare REF RUN --bound FIELD=REL [--bound ...] --steps N [--from-step S] [--name NAME]
      the named fields of RUN against REF, step by step: |run - ref| / |ref| <= REL for every value. Both logs must
      have exactly the training steps 1..N (RUN S..N with --from-step, a run resumed after step S - 1: then only
      those steps and evaluations are compared), each with every field asked for of the training steps, and the
      same evaluation steps (with val_loss) when val_loss is asked for (at least one).
  log_compare.py phases LOG --steps N
      every training step has forward_ms, backward_ms and optimizer_ms, positive, adding up to no more than its
      ms (the step's wall time; 0.1% + 0.01 ms for rounding), and the log has exactly the steps 1..N.
  log_compare.py mean LOG FIELD[+FIELD...] --from-step S
      prints the mean over the training steps from S on of the sum of the fields.
  log_compare.py get LOG FIELD --step S
      prints the field of training step S.
Exit 0 when the check holds, 1 when it does not, 2 for a refused log or bad arguments.
"""
import argparse
import json
import math
import sys


class LogError(Exception):
    pass


def read_log(path):
    """Training records by step, and evaluation records by step."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LogError(f"{path}: {e.strerror}")
    if not data.strip():
        raise LogError(f"{path}: empty log")
    if not data.endswith(b"\n"):
        raise LogError(f"{path}: the last line has no newline: the log was cut short")
    train, val = {}, {}
    for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        try:
            rec = json.loads(line)
        except ValueError:
            raise LogError(f"{path}: line {n} is not JSON: {line[:80]!r}")
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int):
            raise LogError(f"{path}: line {n} has no integer step: {line[:80]!r}")
        step = rec["step"]
        if "loss" in rec:
            table = train
        elif "val_loss" in rec:
            table = val
        else:
            continue  # a skipped step (--skip-nonfinite) or another event
        if step in table:
            raise LogError(f"{path}: step {step} appears twice (line {n})")
        table[step] = rec
    return train, val


def field(path, rec, name):
    if name not in rec:
        raise LogError(f"{path}: step {rec['step']} has no {name}")
    v = rec[name]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise LogError(f"{path}: step {rec['step']}: {name} is {json.dumps(v)}, not a finite number")
    return float(v)


def expect_steps(path, train, n, first=1):
    want = set(range(first, n + 1))
    missing, extra = sorted(want - set(train)), sorted(set(train) - want)
    if missing:
        raise LogError(f"{path}: training step(s) {missing[:10]} missing (expected steps {first}..{n})")
    if extra:
        raise LogError(f"{path}: training step(s) {extra[:10]} outside the expected {first}..{n}")


def compare(args):
    bounds = {}
    for b in args.bound:
        name, _, value = b.partition("=")
        try:
            bounds[name] = float(value)
        except ValueError:
            raise LogError(f"--bound {b}: expected FIELD=NUMBER")
    if not bounds:
        raise LogError("compare: give at least one --bound FIELD=REL")
    ref_train, ref_val = read_log(args.ref)
    run_train, run_val = read_log(args.run)
    expect_steps(args.ref, ref_train, args.steps)
    expect_steps(args.run, run_train, args.steps, args.from_step)
    # a run resumed after step from_step - 1 is compared from there on (it does not evaluate before its first step)
    if args.from_step > 1:
        ref_train = {s: r for s, r in ref_train.items() if s >= args.from_step}
        ref_val = {s: r for s, r in ref_val.items() if s >= args.from_step}
    pairs = {name: [] for name in bounds}  # field: [(step, ref, run)]
    for name in bounds:
        if name == "val_loss":
            if not ref_val:
                raise LogError(f"{args.ref}: no evaluation (val_loss) to compare")
            if set(ref_val) != set(run_val):
                raise LogError(f"evaluations at steps {sorted(ref_val)} in {args.ref} but {sorted(run_val)} in {args.run}")
            tables = (ref_val, run_val)
        else:
            tables = (ref_train, run_train)
        for step in sorted(tables[0]):
            pairs[name].append((step, field(args.ref, tables[0][step], name), field(args.run, tables[1][step], name)))
    ok, parts, count = True, [], 0
    for name, bound in bounds.items():
        worst, at = -1.0, None
        for step, a, b in pairs[name]:
            d = abs(a - b) / abs(a) if a != 0 else (0.0 if b == 0 else math.inf)
            if d > worst:
                worst, at = d, step
        count += len(pairs[name])
        ok &= worst <= bound
        parts.append(f"{name} {worst:.2e} at step {at} (bound {bound:g})")
    print(f"{args.name or args.run}: {count} values, largest relative difference: {', '.join(parts)}"
          f"{'' if ok else ' -- EXCEEDED'}")
    return 0 if ok else 1


def phases(args):
    train, _ = read_log(args.log)
    expect_steps(args.log, train, args.steps)
    bad = []
    for step, rec in sorted(train.items()):
        ms = field(args.log, rec, "ms")
        f, b, o = (field(args.log, rec, k) for k in ("forward_ms", "backward_ms", "optimizer_ms"))
        if not (f > 0 and b > 0 and o > 0 and f + b + o <= ms * 1.001 + 0.01):
            bad.append(step)
    print(f"phases: {len(train) - len(bad)} of {len(train)} steps have forward, backward and optimizer times within the step"
          + (f"; not steps {bad}" if bad else ""))
    return 0 if not bad else 1


def mean(args):
    train, _ = read_log(args.log)
    steps = [s for s in sorted(train) if s >= args.from_step]
    if not steps:
        raise LogError(f"{args.log}: no training step from {args.from_step} on")
    names = args.fields.split("+")
    print(f"{sum(sum(field(args.log, train[s], n) for n in names) for s in steps) / len(steps):.6g}")
    return 0


def get(args):
    train, _ = read_log(args.log)
    if args.step not in train:
        raise LogError(f"{args.log}: no training step {args.step}")
    print(repr(field(args.log, train[args.step], args.field)))  # the shortest text that reads back as the value
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare")
    c.add_argument("ref")
    c.add_argument("run")
    c.add_argument("--bound", action="append", default=[], metavar="FIELD=REL")
    c.add_argument("--steps", type=int, required=True)
    c.add_argument("--from-step", type=int, default=1, help="RUN holds the steps from this one on (a resumed run)")
    c.add_argument("--name")
    c.set_defaults(func=compare)
    ph = sub.add_parser("phases")
    ph.add_argument("log")
    ph.add_argument("--steps", type=int, required=True)
    ph.set_defaults(func=phases)
    m = sub.add_parser("mean")
    m.add_argument("log")
    m.add_argument("fields")
    m.add_argument("--from-step", type=int, required=True)
    m.set_defaults(func=mean)
    g = sub.add_parser("get")
    g.add_argument("log")
    g.add_argument("field")
    g.add_argument("--step", type=int, required=True)
    g.set_defaults(func=get)
    args = p.parse_args()
    try:
        return args.func(args)
    except LogError as e:
        print(f"log_compare: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
