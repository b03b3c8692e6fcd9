#!/usr/bin/env bash
# Runs every test script test/t_*.sh (or those named on the command line) and prints one line per test
# and a final "N passed, N failed, N skipped" line. A test passes with exit 0, is skipped with exit 77 (its
# last output line says why), and fails otherwise, or when it runs longer than TEST_TIMEOUT seconds (default
# 1800: a hung test fails instead of holding up the rest). Exit status is non-zero when any test failed.
set -u
cd "$(dirname "$0")/.."
export PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo /usr/bin/python3 )}"
export GRASS_DATA="${GRASS_DATA:-$(cd .. && pwd)/shared/data}"
mkdir -p test/tmp
limit=${TEST_TIMEOUT:-1800}
pass=0; fail=0; skip=0; failed=()
tests=("$@"); [ ${#tests[@]} -gt 0 ] || tests=(test/t_*.sh)
for t in "${tests[@]}"; do
  name=$(basename "$t" .sh)
  log="test/tmp/$name.log"
  start=$EPOCHREALTIME
  timeout --kill-after=10 "$limit" bash "$t" > "$log" 2>&1; rc=$?
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  if [ $rc -eq 0 ]; then pass=$((pass+1)); echo "PASS  $name (${secs}s)"
  elif [ $rc -eq 77 ]; then skip=$((skip+1)); echo "SKIP  $name: $(tail -n 1 "$log")"
  else
    fail=$((fail+1)); failed+=("$name")
    why="exit $rc"; [ $rc -eq 124 ] || [ $rc -eq 137 ] && why="timed out after $limit s (TEST_TIMEOUT)"
    echo "FAIL  $name ($why, ${secs}s); last lines of $log:"; tail -n 15 "$log" | sed 's/^/      /'
  fi
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
