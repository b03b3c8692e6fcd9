# dev/gpu/run.sh's command line and stage planning, without running a stage that needs a GPU: --help, bad
# arguments (exit 2, one error line), no GPU (exit 1, saying so), and with a stand-in nvidia-smi: stages this
# machine cannot run and stages the --budget cannot fit are skipped, each with its reason in the summary and in
# results.md, and nothing is appended to dev/bench/RESULTS.md without --record.
source test/lib.sh
bash -n dev/gpu/run.sh || die "dev/gpu/run.sh: syntax"
dev/gpu/run.sh --help > "$TMP/help" || die "--help: non-zero exit"
for want in --budget --record --out multigpu "make test-gpu"; do grep -qF -- "$want" "$TMP/help" || die "--help lacks '$want'"; done
echo "ok: --help"
bad() {  # bad WANT ARGS...: exit 2 and one line on stderr containing WANT
  local rc=0
  dev/gpu/run.sh "${@:2}" > /dev/null 2> "$TMP/err" || rc=$?
  [ $rc = 2 ] && [ "$(wc -l < "$TMP/err")" = 1 ] && grep -qF -- "$1" "$TMP/err" || die "run.sh ${*:2}: exit $rc, $(cat "$TMP/err")"
}
bad "unknown option '--bogus'" --bogus
bad "unknown stage 'nosuch'" nosuch
bad "--budget takes a positive number" --budget 0
bad "--budget takes a positive number" --budget soon
bad "-j takes a positive number" -j x
echo "ok: bad arguments"

# no GPU: nvidia-smi absent or listing none
mkdir -p "$TMP/nogpu" "$TMP/fake"
printf '#!/bin/sh\nexit 9\n' > "$TMP/nogpu/nvidia-smi" && chmod +x "$TMP/nogpu/nvidia-smi"
rc=0; PATH="$PWD/$TMP/nogpu:$PATH" dev/gpu/run.sh --out "$TMP/o0" > /dev/null 2> "$TMP/err" || rc=$?
[ $rc = 1 ] && grep -q '^error: no NVIDIA GPU here' "$TMP/err" || die "no GPU: exit $rc, $(cat "$TMP/err")"
[ ! -e "$TMP/o0" ] || die "no GPU: the output directory was made"
echo "ok: no GPU: $(cat "$TMP/err")"

# one 24 GiB GPU as nvidia-smi would list it: 13b (a 40 GiB card) and multigpu cannot run; env needs 5 s and
# a budget of 0.05 minutes (3 s) has less
cat > "$TMP/fake/nvidia-smi" << 'EOF'
#!/bin/sh
case "$*" in
  -L) echo "GPU 0: Stand-in GPU (UUID: GPU-0)" ;;
  *nounits*) echo 24576 ;;
  *) echo "Stand-in GPU, 24576 MiB, 1.0, 8.9" ;;
esac
EOF
chmod +x "$TMP/fake/nvidia-smi"
cp dev/bench/RESULTS.md "$TMP/RESULTS.before"
PATH="$PWD/$TMP/fake:$PATH" dev/gpu/run.sh --budget 0.05 --out "$TMP/o1" 13b multigpu env > "$TMP/out1" 2>&1 ||
  { cat "$TMP/out1"; die "stages skipped: non-zero exit"; }
for want in "13b: skipped (the GPU has 24576 MiB" "multigpu: skipped (one GPU)" "env: skipped (" "it needs at least 5 s)"; do
  grep -qF "$want" "$TMP/o1/summary.txt" || { cat "$TMP/o1/summary.txt"; die "summary lacks '$want'"; }
done
grep -q '^### .*1 x Stand-in GPU (24576 MiB' "$TMP/o1/results.md" && grep -q '^- multigpu: skipped' "$TMP/o1/results.md" ||
  { cat "$TMP/o1/results.md"; die "results.md: no dated heading or no list of the stages"; }
cmp -s dev/bench/RESULTS.md "$TMP/RESULTS.before" || die "RESULTS.md changed without --record"
echo "ok: stages skipped with their reasons; results.md written, RESULTS.md untouched"
