# The GPU benchmark scripts (dev/bench/gpu_bench.sh, grass_gpu_bench.sh) run end to end on the CPU emulator
# (dev/emu) with the tiny preset and a few steps, and print a full table row per run with numbers in every
# column (the PyTorch baseline runs on the CPU here). A check of the scripts, not a measurement.
source test/lib.sh
[ -x dev/emu/bin/train_llama ] || skip "the emulated GPU trainer was not built (no CUDA headers when make ran: see make emu)"
need_python_module transformers
export TRAIN_GPU=dev/emu/bin/train_llama PRESETS=tiny BATCH=2 SEQ=32 STEPS=5
OUT="$TMP/gpu" TORCH_DEVICE=cpu dev/bench/gpu_bench.sh | tee "$TMP/gpu.md"
# | tiny | 2 x 32 | tok/s | MFU% | GiB | PyTorch tok/s | PyTorch GiB (nan on the CPU) | speed-up |
grep -Eq '^\| tiny \| 2 x 32 \| [0-9]+ \| [0-9.]+% \| [0-9.]+ \| [0-9]+ \| nan \| [0-9.]+x \|$' "$TMP/gpu.md" || die "gpu_bench.sh: no complete row"
OUT="$TMP/grass" PRESETS=tiny dev/bench/grass_gpu_bench.sh | tee "$TMP/grass.md"
for opt in adamw grass; do
  # | tiny | opt | tok/s | MFU% | GiB | forward ms | backward ms | optimizer ms | ratio |
  grep -Eq "^\| tiny \| $opt \| [0-9]+ \| [0-9.]+% \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \|$" "$TMP/grass.md" ||
    die "grass_gpu_bench.sh: no complete $opt row"
done
[ -z "$(ls -d "$TMP"/*/*/ckpt_* 2> /dev/null)" ] || die "the benchmarks wrote checkpoints (--ckpt-every -1 means never)"
echo "ok: both benchmark scripts print complete tables"
