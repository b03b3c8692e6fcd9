#!/usr/bin/env bash
# t_fuzz.sh: runs every libFuzzer harness of dev/fuzz (the readers of shards, safetensors files, sharded model
# directories, config.json, tokenizer models and state.bin) for FUZZ_SECONDS each (default 10: every seed of
# dev/fuzz/corpus, then mutations for the rest; `make fuzz` runs 60 s each) and fails on any crash, sanitizer
# report or hang. Skipped where clang cannot build a libFuzzer binary.
source test/lib.sh
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' > "$TMP/probe.c"
clang -fsanitize=fuzzer,address,undefined -o "$TMP/probe" "$TMP/probe.c" > "$TMP/probe.log" 2>&1 ||
  skip "SKIPPED: clang cannot build a libFuzzer binary here (install clang and libclang-rt-dev): $(head -n 1 "$TMP/probe.log")"
make -s --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-10}"
