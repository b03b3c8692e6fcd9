# Divergence never reaches disk (train_guard.h, checkpoint.h): a non-finite loss or gradient norm stops the run
# before its update with exit status 3 and one line naming the step and the last good checkpoint (or is skipped,
# up to --skip-nonfinite N times, each skip logged); a weight or moment that overflows in an update is refused at
# the save, which leaves nothing behind; every checkpoint left holds finite values only, and --resume auto goes on
# from the newest. The GPU trainer (emulated, where built; test/gpu_faults.sh: on a GPU) does the same through its
# device-side finite check.
source test/lib.sh
T=./train_llama_cpu
"$PYTHON" test/shard_tool.py "$TMP/train.bin" --tokens 5000 --vocab 512
base=(--model test --train-data "$TMP/train.bin" --batch 2 --seq 16 --warmup 1)

# status EXPECTED CMD...: runs CMD, which must exit with EXPECTED and one error line (saved in $TMP/stderr)
status() {
  local want=$1 rc=0; shift
  timeout 120 "$@" > "$TMP/stdout" 2> "$TMP/stderr" || rc=$?
  [ $rc -eq "$want" ] || { cat "$TMP/stderr"; die "exit $rc, expected $want: $*"; }
  [ "$(grep -c '^error: ' "$TMP/stderr")" -eq "$(( want == 0 ? 0 : 1 ))" ] || { cat "$TMP/stderr"; die "expected one error line: $*"; }
  echo "ok (exit $rc): $(cat "$TMP/stderr")"
}
all_finite() { for c in "$1"/ckpt_*; do "$PYTHON" test/state_tool.py finite "$c" || die "$c holds a non-finite value"; done; }

echo "== a weight that overflows in the update (weight decay x lr = inf): refused at the save, nothing left"
status 3 $T "${base[@]}" --steps 4 --lr 1000 --weight-decay 3e38 --ckpt-every 1 --out "$TMP/wd"
grep -q "step 1: model.embed_tokens.weight: value -\?inf at element 0 (must be finite); training diverged and nothing was saved; the last good checkpoint is none" "$TMP/stderr" || die "unexpected message"
[ -z "$(ls "$TMP/wd" | grep ckpt_)" ] || die "a checkpoint directory was left: $(ls "$TMP/wd")"

echo "== a non-finite loss: the run stops before the update, naming the last good checkpoint"
$T "${base[@]}" --steps 2 --lr 1e-3 --ckpt-every 1 --out "$TMP/lr" > /dev/null
status 3 $T "${base[@]}" --steps 8 --lr 1e38 --ckpt-every 0 --resume auto --out "$TMP/lr"
grep -q "error: step 4: the loss is nan: training diverged; the last good checkpoint is $TMP/lr/ckpt_00000002" "$TMP/stderr" || die "unexpected message"
all_finite "$TMP/lr"
$T "${base[@]}" --steps 4 --lr 1e-3 --resume auto --out "$TMP/lr" > /dev/null || die "--resume auto after the divergence failed"
[ -d "$TMP/lr/ckpt_00000004" ] || die "the resumed run did not finish"
echo "ok: --resume auto continues from the last good checkpoint"

echo "== --skip-nonfinite 2: two steps skipped and logged, then the stop"
$T "${base[@]}" --steps 2 --lr 1e-3 --ckpt-every 1 --out "$TMP/skip" > /dev/null
status 3 $T "${base[@]}" --steps 8 --lr 1e38 --ckpt-every 0 --skip-nonfinite 2 --resume auto --out "$TMP/skip"
grep -q "error: step 6: the loss is nan: training diverged (after the skips --skip-nonfinite allows)" "$TMP/stderr" || die "unexpected message"
[ "$(grep -c 'skipped: the loss is nan, the update is not applied' "$TMP/stdout")" -eq 2 ] || die "expected 2 skip lines"
[ "$(grep -c '"skipped": "the loss"' "$TMP/skip/log.jsonl")" -eq 2 ] || die "log.jsonl lacks the 2 skips"
"$PYTHON" -c "import json, sys; [json.loads(l) for l in open(sys.argv[1])]" "$TMP/skip/log.jsonl" || die "log.jsonl is not valid JSON lines"
all_finite "$TMP/skip"
echo "ok: skipped steps are logged, the log stays valid JSON, every checkpoint is finite"

echo "== the GPU trainer (emulated where built, or FAULTS_GPU_FP32 and FAULTS_GPU)"
for GPU in "${FAULTS_GPU_FP32:-dev/emu/bin/train_llama_fp32}" "${FAULTS_GPU:-dev/emu/bin/train_llama}"; do
  emu_part "$GPU" || continue
  status 3 $GPU "${base[@]}" --steps 4 --lr 1000 --weight-decay 3e38 --ckpt-every 1 --out "$TMP/gpu_wd"
  grep -q "step 1: the weights or the optimizer state hold a non-finite value: training diverged and nothing was saved" "$TMP/stderr" || die "unexpected message"
  [ -z "$(ls "$TMP/gpu_wd" | grep ckpt_)" ] || die "$GPU left a checkpoint directory"
  rm -rf "$TMP/gpu_wd" "$TMP/gpu_lr"
  $GPU "${base[@]}" --steps 2 --lr 1e-3 --ckpt-every 1 --out "$TMP/gpu_lr" > /dev/null
  status 3 $GPU "${base[@]}" --steps 8 --lr 1e38 --ckpt-every 0 --skip-nonfinite 1 --resume auto --out "$TMP/gpu_lr"
  grep -q "error: step [45]: the loss is nan: training diverged (after the skips --skip-nonfinite allows); the last good checkpoint is $TMP/gpu_lr/ckpt_0000000" "$TMP/stderr" || die "unexpected message"
  all_finite "$TMP/gpu_lr"
  rm -rf "$TMP/gpu_lr"
done
echo "divergence never saved"
