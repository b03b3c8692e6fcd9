#!/usr/bin/env bash
# reduce_dtype.sh: how much summing the ranks' gradients in bf16 costs against fp32 (--reduce-dtype), the measurement
# that chose the default. The bf16 GPU trainer (AdamW) takes one step on the same sequences as RANKS ranks of
# micro-batch 1, with the gradients summed in fp32 and in bf16, with and without --shard-optimizer, and as 1 rank of
# micro-batch RANKS (summed within the batch). After one step AdamW's first moment is (1 - beta1) times the averaged
# gradient, so each run's adamw.m in state.bin, against the fp32 build's (the gradient without bf16 rounding), gives the
# error of the gradient the optimizer saw: ||m - m_fp32|| / ||m_fp32|| over all of it, and the largest such ratio of one
# tensor. Then STEPS steps of the same runs: their largest loss difference from the 1-rank bf16 run.
#   dev/bench/reduce_dtype.sh            (the CPU emulator's builds, dev/emu/bin: `make emu`; its NCCL models bf16 hops)
#   BIN=./train_llama BIN_FP32=./train_llama_fp32 dev/bench/reduce_dtype.sh    (on a machine with RANKS GPUs)
# Settings by environment variable (defaults in brackets): RANKS [8] STEPS [10] MODEL [test] SEQ [64]
# OUT [out/reduce_dtype] BIN [dev/emu/bin/train_llama] BIN_FP32 [dev/emu/bin/train_llama_fp32]
set -euo pipefail
cd "$(dirname "$0")/../.."
RANKS=${RANKS:-8} STEPS=${STEPS:-10} MODEL=${MODEL:-test} SEQ=${SEQ:-64} OUT=${OUT:-out/reduce_dtype}
BIN=${BIN:-dev/emu/bin/train_llama} BIN_FP32=${BIN_FP32:-dev/emu/bin/train_llama_fp32}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo /usr/bin/python3)}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$OUT" && mkdir -p "$OUT"
"$PYTHON" test/shard_tool.py "$OUT/train.bin" --tokens 200000 --vocab 512 > /dev/null
common=(--model "$MODEL" --ffn 176 --train-data "$OUT/train.bin" --seq "$SEQ" --steps "$STEPS" --warmup 2 --lr 3e-3
        --eval-every 0 --ckpt-every 1 --total-batch $((RANKS * SEQ)))
"$BIN_FP32" "${common[@]}" --batch "$RANKS" --out "$OUT/fp32build" > "$OUT/fp32build.log"
"$BIN" "${common[@]}" --batch "$RANKS" --out "$OUT/one" > "$OUT/one.log"
runs=(one)
for dtype in fp32 bf16; do
  for shard in replicated sharded; do
    flags=(--reduce-dtype "$dtype"); [ $shard = sharded ] && flags+=(--shard-optimizer)
    mpirun -np "$RANKS" "$BIN" "${common[@]}" "${flags[@]}" --batch 1 --out "$OUT/$dtype.$shard" > "$OUT/$dtype.$shard.log"
    runs+=("$dtype.$shard")
  done
done
printf '\n%s (ffn 176), AdamW: %s ranks of 1 x %s tokens, and 1 rank of %s x %s (%s)\n\n' "$MODEL" "$RANKS" "$SEQ" "$RANKS" \
  "$SEQ" "$BIN"
printf '| run | gradients summed in | step-1 gradient error, all | worst tensor | largest loss difference from 1 rank, %s steps |\n' "$STEPS"
printf '|---|---|---|---|---|\n'
for run in "${runs[@]}"; do
  err=$("$PYTHON" - "$OUT/fp32build/ckpt_00000001/state.bin" "$OUT/$run/ckpt_00000001/state.bin" "$OUT/$run/ckpt_00000001/config.json" <<'EOF'
import json, struct, sys
import numpy as np
def section(path, name):
    data = open(path, "rb").read()
    n = struct.unpack_from("<I", data, 12)[0]
    at = 16
    for _ in range(n):
        nm = data[at:at + 32].split(b"\0")[0].decode()
        nb = struct.unpack_from("<Q", data, at + 32)[0]
        if nm == name:
            return np.frombuffer(data[at + 40:at + 40 + nb], dtype=np.float32)
        at += 40 + nb
    raise SystemExit(f"{path}: no section {name}")
ref, got = section(sys.argv[1], "adamw.m"), section(sys.argv[2], "adamw.m")
cfg = json.load(open(sys.argv[3]))
d, f, v, L, h = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
kv = cfg.get("num_key_value_heads", h); hd = d // h
sizes = [v * d] + [d] * L + [h * hd * d] * L + [kv * hd * d] * L * 2 + [d * h * hd] * L + [d] * L + [f * d] * L * 2 + [d * f] * L + [d]
sizes += [] if cfg.get("tie_word_embeddings") else [v * d]
assert sum(sizes) == ref.size, (sum(sizes), ref.size)
worst, at = 0.0, 0
for n in sizes:
    a, b = ref[at:at + n].astype(np.float64), got[at:at + n].astype(np.float64)
    worst = max(worst, np.linalg.norm(b - a) / np.linalg.norm(a))
    at += n
print("%.3e | %.3e" % (np.linalg.norm(got.astype(np.float64) - ref) / np.linalg.norm(ref), worst))
EOF
)
  loss=-
  [ "$run" = one ] || loss=$("$PYTHON" test/log_compare.py compare "$OUT/one/log.jsonl" "$OUT/$run/log.jsonl" --steps "$STEPS" \
    --bound loss=1 | sed -n 's/.*loss \([0-9.e+-]*\) at step.*/\1/p')
  case $run in one) name="1 rank"; sum="(within the batch)";; *) name="$RANKS ranks, ${run#*.}"; sum=${run%.*};; esac
  printf '| %s | %s | %s | %s |\n' "$name" "$sum" "$err" "$loss"
done
