# test/log_compare.py, the log.jsonl checks of the GPU trainer tests: it passes two logs within the bounds
# whatever the order of their keys, fails a value beyond its bound (exit 1), and refuses (exit 2, one error line)
# an empty log, a log cut short, a line that is not JSON, a missing step, field or evaluation, a non-finite value.
source test/lib.sh
lc() { "$PYTHON" test/log_compare.py "$@"; }
cat > "$TMP/a.jsonl" <<'L'
{"step": 0, "val_loss": 6.25}
{"step": 1, "loss": 6.0, "lr": 0.001, "norm": 0.8, "ms": 10.0, "forward_ms": 3.0, "backward_ms": 5.0, "optimizer_ms": 1.0}
{"step": 2, "loss": 5.0, "lr": 0.002, "norm": 0.7, "ms": 10.0, "forward_ms": 3.0, "backward_ms": 5.0, "optimizer_ms": 1.5}
{"step": 2, "val_loss": 5.5}
L
cat > "$TMP/b.jsonl" <<'L'
{"val_loss": 6.2506, "step": 0}
{"norm": 0.80004, "loss": 6.0003, "step": 1, "ms": 9.0}
{"step": 2, "loss": 5.0001, "norm": 0.70001}
{"step": 2, "val_loss": 5.5001}
L
lc compare "$TMP/a.jsonl" "$TMP/b.jsonl" --steps 2 --bound loss=1e-4 --bound norm=1e-4 --bound val_loss=1e-4 ||
  die "logs within the bounds failed"
rc=0; lc compare "$TMP/a.jsonl" "$TMP/b.jsonl" --steps 2 --bound loss=1e-5 || rc=$?
[ $rc = 1 ] || die "a loss beyond its bound gave exit $rc, not 1"
echo "ok: a value beyond its bound fails (exit 1)"
# a run resumed after step 1 (no evaluation before its first step): compared from step 2 on, where it must differ too
grep -v '"step": [01],\|"step": 0}' "$TMP/b.jsonl" > "$TMP/resumed.jsonl"
lc compare "$TMP/a.jsonl" "$TMP/resumed.jsonl" --steps 2 --from-step 2 --bound loss=1e-4 --bound val_loss=1e-4 ||
  die "a resumed run within the bounds failed"
rc=0; lc compare "$TMP/a.jsonl" "$TMP/resumed.jsonl" --steps 2 --from-step 2 --bound loss=1e-5 || rc=$?
[ $rc = 1 ] || die "a resumed run's loss beyond its bound gave exit $rc, not 1"
echo "ok: --from-step compares a resumed run from its first step"
lc phases "$TMP/a.jsonl" --steps 2 || die "phases within the step failed"
[ "$(lc mean "$TMP/a.jsonl" forward_ms+backward_ms+optimizer_ms --from-step 2)" = 9.5 ] || die "mean: wrong value"
[ "$(lc get "$TMP/a.jsonl" norm --step 2)" = 0.7 ] || die "get: wrong value"
refused() {  # WHAT WANT CMD...: CMD must exit 2 with one error line containing WANT
  local what=$1 want=$2; shift 2
  local rc=0
  lc "$@" > /dev/null 2> "$TMP/err" || rc=$?
  [ $rc = 2 ] && [ "$(wc -l < "$TMP/err")" = 1 ] && grep -qF -- "$want" "$TMP/err" ||
    { cat "$TMP/err"; die "$what: exit $rc, not a refusal naming '$want'"; }
  echo "ok: $what refused: $(cat "$TMP/err")"
}
: > "$TMP/empty.jsonl"
refused "an empty log" "empty log" compare "$TMP/a.jsonl" "$TMP/empty.jsonl" --steps 2 --bound loss=1
head -c 100 "$TMP/a.jsonl" > "$TMP/cut.jsonl"
refused "a log cut short" "cut short" compare "$TMP/a.jsonl" "$TMP/cut.jsonl" --steps 2 --bound loss=1
head -c 100 "$TMP/a.jsonl" > "$TMP/cutline.jsonl"; echo >> "$TMP/cutline.jsonl"
refused "a line that is not JSON" "not JSON" compare "$TMP/a.jsonl" "$TMP/cutline.jsonl" --steps 2 --bound loss=1
grep -v '"step": 1,' "$TMP/a.jsonl" > "$TMP/nostep.jsonl"
refused "a missing step" "missing" compare "$TMP/a.jsonl" "$TMP/nostep.jsonl" --steps 2 --bound loss=1
refused "a step beyond --steps" "outside the expected 1..1" compare "$TMP/a.jsonl" "$TMP/a.jsonl" --steps 1 --bound loss=1
refused "a resumed run with a step before --from-step" "outside the expected 2..2" compare "$TMP/a.jsonl" "$TMP/b.jsonl" --steps 2 \
  --from-step 2 --bound loss=1
sed 's/"norm": 0.7, //' "$TMP/a.jsonl" > "$TMP/nonorm.jsonl"
refused "a missing field" "has no norm" compare "$TMP/a.jsonl" "$TMP/nonorm.jsonl" --steps 2 --bound norm=1
grep -v '"step": 2, "val' "$TMP/a.jsonl" > "$TMP/noval.jsonl"
refused "a missing evaluation" "evaluations at steps" compare "$TMP/a.jsonl" "$TMP/noval.jsonl" --steps 2 --bound val_loss=1
sed 's/"norm": 0.7/"norm": null/' "$TMP/a.jsonl" > "$TMP/null.jsonl"
refused "a non-finite value" "not a finite number" compare "$TMP/a.jsonl" "$TMP/null.jsonl" --steps 2 --bound norm=1
refused "a run without phase times" "has no forward_ms" phases "$TMP/b.jsonl" --steps 2
