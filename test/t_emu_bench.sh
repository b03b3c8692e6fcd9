# The GPU benchmark scripts (dev/bench/gpu_bench.sh, grass_gpu_bench.sh) run end to end on the CPU emulator
# (dev/emu) with the tiny preset and a few steps, and print a full table row per run with numbers in every
# column (the PyTorch baseline runs on the CPU here), and the --profile table of Grass against AdamW; a trainer
# that fails gives a failed row and the script goes on. A check of the scripts, not a measurement.
source test/lib.sh
[ -x dev/emu/bin/train_llama ] || skip "the emulated GPU trainer was not built (no CUDA headers when make ran: see make emu)"
need_python_module transformers
export TRAIN_GPU=dev/emu/bin/train_llama PRESETS=tiny BATCH=2 SEQ=32 STEPS=5 PROFILE_STEPS=3
OUT="$TMP/gpu" TORCH_DEVICE=cpu dev/bench/gpu_bench.sh | tee "$TMP/gpu.md"
# | tiny | 2 x 32 | tok/s | MFU% | GiB | PyTorch tok/s | PyTorch GiB (nan on the CPU) | speed-up |
grep -Eq '^\| tiny \| 2 x 32 \| [0-9]+ \| [0-9.]+% \| [0-9.]+ \| [0-9]+ \| nan \| [0-9.]+x \|$' "$TMP/gpu.md" || die "gpu_bench.sh: no complete row"
OUT="$TMP/grass" PRESETS=tiny dev/bench/grass_gpu_bench.sh | tee "$TMP/grass.md"
for opt in adamw grass; do
  # | tiny | opt | tok/s | MFU% | GiB | forward ms | backward ms | optimizer ms | ratio |
  grep -Eq "^\| tiny \| $opt \| [0-9]+ \| [0-9.]+% \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \|$" "$TMP/grass.md" ||
    die "grass_gpu_bench.sh: no complete $opt row"
done
# the profile table: weight-gradient products under AdamW only, compressed gradients under Grass only, a total for both
grep -Eq '^\| matmul backward \(weights\) \| [0-9.]+ \| [0-9.]+% \| - \| - \|$' "$TMP/grass.md" || die "grass_gpu_bench.sh: no AdamW-only weight-gradient row"
grep -Eq '^\| grass compressed gradient \| - \| - \| [0-9.]+ \| [0-9.]+% \|$' "$TMP/grass.md" || die "grass_gpu_bench.sh: no Grass-only compressed-gradient row"
grep -Eq '^\| total \| [0-9.]+ \| 100.0% \| [0-9.]+ \| 100.0% \|$' "$TMP/grass.md" || die "grass_gpu_bench.sh: no profile total"
# OPTIMIZERS=adamw (dev/gpu/run.sh's attention stage): the AdamW row alone
OUT="$TMP/adamw_only" PRESETS=tiny PROFILE_STEPS=0 OPTIMIZERS=adamw dev/bench/grass_gpu_bench.sh > "$TMP/adamw_only.md"
grep -Eq '^\| tiny \| adamw \| [0-9]+ \|' "$TMP/adamw_only.md" && ! grep -q '| grass |' "$TMP/adamw_only.md" ||
  die "grass_gpu_bench.sh with OPTIMIZERS=adamw: not the AdamW row alone"
[ -z "$(ls -d "$TMP"/*/*/ckpt_* 2> /dev/null)" ] || die "the benchmarks wrote checkpoints (--ckpt-every -1 means never)"
# a trainer that fails gives its row as failed, and the scripts go on (the rest of the table is still measured)
OUT="$TMP/fail" TRAIN_GPU=false PRESETS="tiny test" dev/bench/gpu_bench.sh > "$TMP/fail.md" || die "gpu_bench.sh stopped at a failed run"
[ "$(grep -c '^| t[a-z]* | 2 x 32 | train_llama failed' "$TMP/fail.md")" = 2 ] || die "gpu_bench.sh: no failed rows"
OUT="$TMP/gfail" TRAIN_GPU=false PRESETS=tiny PROFILE_STEPS=0 dev/bench/grass_gpu_bench.sh > "$TMP/gfail.md" ||
  die "grass_gpu_bench.sh stopped at a failed run"
[ "$(grep -c '^| tiny | [a-z]* | train_llama failed' "$TMP/gfail.md")" = 2 ] || die "grass_gpu_bench.sh: no failed rows"
echo "ok: both benchmark scripts print complete tables, and a failed row for a trainer that fails"
