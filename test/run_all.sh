#!/usr/bin/env bash
# Runs the test scripts test/t_*.sh (or those named on the command line), TEST_JOBS at a time (default: the
# number of cores), longest first, and prints one line per test as it ends and a final "N passed, N failed,
# N skipped" line. A test passes with exit 0, is skipped with exit 77 (its last output line says why), and
# fails otherwise, or when it runs longer than its timeout: TEST_TIMEOUT_FACTOR (default 4) times its measured
# time in test/times, at least 60 s (TEST_TIMEOUT, default 900 s, for a test not in test/times). Each test has
# its own directory test/tmp/NAME and log test/tmp/NAME.log, so that tests run side by side. Exit status is
# non-zero when any test failed.
set -u
cd "$(dirname "$0")/.."
export PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo /usr/bin/python3 )}"
export GRASS_DATA="${GRASS_DATA:-$(cd .. && pwd)/shared/data}"
mkdir -p test/tmp
jobs_max=${TEST_JOBS:-$(nproc)}
factor=${TEST_TIMEOUT_FACTOR:-4}
declare -A measured=()
while read -r name secs _; do
  [[ "$name" =~ ^t_ ]] && measured[$name]=$secs
done < test/times
tests=("$@"); [ ${#tests[@]} -gt 0 ] || tests=(test/t_*.sh)
# longest first (a test without a measured time counts as the longest), so that the last to start are short
mapfile -t tests < <(for t in "${tests[@]}"; do n=$(basename "$t" .sh); echo "${measured[$n]:-99999} $t"; done | sort -k1,1nr -k2 | cut -d' ' -f2)

pass=0; fail=0; skip=0; failed=(); unmeasured=()
declare -A running=()  # pid -> test script
begin=$EPOCHREALTIME
start_test() {
  local t=$1 name limit
  name=$(basename "$t" .sh)
  if [ -n "${measured[$name]:-}" ]; then
    limit=$(awk -v s="${measured[$name]}" -v f="$factor" 'BEGIN {l = s * f; print (l < 60 ? 60 : int(l + 0.5))}')
  else
    limit=${TEST_TIMEOUT:-900}; unmeasured+=("$name")
  fi
  (
    start=$EPOCHREALTIME
    timeout --kill-after=10 "$limit" bash "$t" > "test/tmp/$name.log" 2>&1; rc=$?
    echo "$rc $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}') $limit" > "test/tmp/$name.result"
  ) &
  running[$!]=$t
}
finish_test() {
  local t=$1 name rc secs limit why
  name=$(basename "$t" .sh)
  read -r rc secs limit < "test/tmp/$name.result"
  if [ "$rc" -eq 0 ]; then pass=$((pass+1)); echo "PASS  $name (${secs}s)"
  elif [ "$rc" -eq 77 ]; then skip=$((skip+1)); echo "SKIP  $name: $(tail -n 1 "test/tmp/$name.log")"
  else
    fail=$((fail+1)); failed+=("$name")
    why="exit $rc"; { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && why="timed out after $limit s"
    echo "FAIL  $name ($why, ${secs}s); last lines of test/tmp/$name.log:"; tail -n 15 "test/tmp/$name.log" | sed 's/^/      /'
  fi
}
next=0
while [ $next -lt ${#tests[@]} ] || [ ${#running[@]} -gt 0 ]; do
  while [ $next -lt ${#tests[@]} ] && [ ${#running[@]} -lt "$jobs_max" ]; do
    rm -f "test/tmp/$(basename "${tests[$next]}" .sh).result"
    start_test "${tests[$next]}"; next=$((next+1))
  done
  wait -n -p done_pid "${!running[@]}"
  finish_test "${running[$done_pid]}"
  unset "running[$done_pid]"
done
for n in "${unmeasured[@]}"; do echo "note: $n has no measured time in test/times: it ran with the ${TEST_TIMEOUT:-900} s timeout"; done
[ $fail -eq 0 ] || echo "failed: ${failed[*]}"  # (the FAIL lines above came in the order the tests ended)
echo "$pass passed, $fail failed, $skip skipped ($(awk -v a="$begin" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.0f", b-a}') s, $jobs_max at a time)"
[ $fail -eq 0 ]
