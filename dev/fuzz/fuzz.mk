# fuzz.mk: libFuzzer harnesses of the parsers of everything grass.c reads back (token shards, safetensors,
# sharded model directories, config.json, tokenizer models: SentencePiece and tokenizer.json); included by the
# main Makefile. Each name in FUZZ_HARNESSES is dev/fuzz/fuzz_NAME.c, built to dev/fuzz/bin/fuzz_NAME with
# clang's libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer, with its seed corpus in
# dev/fuzz/corpus/NAME/. `make fuzz` builds them all and runs each for FUZZ_SECONDS on a copy of its seeds
# (dev/fuzz/run.sh); `make fuzz-build` only builds them.

FUZZ_HARNESSES = shard safetensors model_files config tokenizer state
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_CFLAGS = -g -O1 -std=gnu11 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_BINS = $(patsubst %,dev/fuzz/bin/fuzz_%,$(FUZZ_HARNESSES))

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) dev/fuzz/run.sh $(FUZZ_HARNESSES)

dev/fuzz/bin/fuzz_%: dev/fuzz/fuzz_%.c dev/fuzz/fuzz_common.h $(HOST_HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< -lm
