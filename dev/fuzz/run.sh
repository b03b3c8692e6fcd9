#!/usr/bin/env bash
# run.sh: runs the built libFuzzer harnesses dev/fuzz/bin/fuzz_NAME (the names given, else every one built)
# for FUZZ_SECONDS each (default 60) on a copy of their seed corpora dev/fuzz/corpus/NAME, and prints one line
# per harness with its executions and time. A crash, a sanitizer report or a hang (over 10 s on one input)
# stops that harness; its input is kept as dev/fuzz/out/NAME/crash-* (or timeout-*, oom-*) and the script
# exits 1 after the rest have run. Run from anywhere; make fuzz builds the harnesses first.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for b in dev/fuzz/bin/fuzz_*; do [ -x "$b" ] && names+=("${b#dev/fuzz/bin/fuzz_}"); done
fi
[ ${#names[@]} -gt 0 ] || { echo "no harnesses built in dev/fuzz/bin (make fuzz-build)"; exit 1; }
failed=0
for name in "${names[@]}"; do
  bin=dev/fuzz/bin/fuzz_$name
  out=dev/fuzz/out/$name
  rm -rf "$out"
  mkdir -p "$out/corpus"
  [ -d "dev/fuzz/corpus/$name" ] && cp -r "dev/fuzz/corpus/$name/." "$out/corpus/"
  # -close_fd_mask=2: the parsers' error lines on stderr (every rejected input prints one) are not shown;
  # libFuzzer's own report still goes to the log. Leaks are not checked: a rejected input jumps out of the
  # parser (fail_hook), and the harness frees what it held.
  ASAN_OPTIONS=detect_leaks=0 "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -detect_leaks=0 -close_fd_mask=2 \
    -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" > "$out/log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -n 1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$out/log" | tail -n 1)
  if [ $rc -eq 0 ]; then
    echo "fuzz_$name: ${runs:-?} executions in ${secs:-?} s, no crash"
  else
    failed=1
    echo "fuzz_$name: FAILED (exit $rc) after ${runs:-?} executions; input kept in $out/:"
    ls "$out" | grep -E '^(crash|timeout|oom|leak|slow-unit)-' | sed "s|^|  $out/|"
    grep -E 'ERROR: |SUMMARY: |runtime error' "$out/log" | head -n 5 | sed 's/^/  /'
  fi
done
exit $failed
