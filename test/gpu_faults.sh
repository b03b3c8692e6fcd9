# The fault tests' GPU parts on the GPU: test/t_faults_state.sh (a corrupted state.bin refused on the way to the
# device), t_faults_diverge.sh (the device-side finite check before a save, a non-finite loss stopping or skipped)
# and t_faults_signal.sh (SIGTERM saves and exits 75, --resume auto continues bit-exactly), each with the GPU trainer
# of lib_gpu.sh in place of the emulated one they use by default (their CPU parts run again too: a few seconds).
source test/lib.sh
source test/lib_gpu.sh
for t in state diverge signal; do
  FAULTS_GPU=$TRAIN_GPU FAULTS_GPU_FP32=$TRAIN_GPU_FP32 bash test/t_faults_$t.sh > "$TMP/$t.log" 2>&1 ||
    { tail -n 20 "$TMP/$t.log"; die "t_faults_$t.sh with $TRAIN_GPU_FP32 and $TRAIN_GPU"; }
  ! grep -q "not checked" "$TMP/$t.log" || die "t_faults_$t.sh left its GPU part unchecked"
  echo "ok: t_faults_$t.sh with $TRAIN_GPU_FP32 and $TRAIN_GPU"
done
