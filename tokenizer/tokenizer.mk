# tokenizer.mk: builds the `tokenize` tool (text -> token shards, with a SentencePiece model or a tokenizer.json
# byte-level BPE) and the test driver of the tokenizer; included by the main Makefile. `all` is named here too
# because make expands a rule's prerequisites where the rule is read.
BINARIES += tokenize
all: tokenize test/bin/tokenizer_bpe_run

tokenize: tokenizer/tokenize.c tokenizer/tokenizer.h tokenizer/bpe.h tokenizer/unicode_tables.h json.h common.h
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# the test driver of tokenizer/bpe.h (test/t_tokenizer_bpe.sh): many encodes and decodes with one loaded model
test/bin/tokenizer_bpe_run: test/tokenizer_bpe_run.c tokenizer/tokenizer.h tokenizer/bpe.h tokenizer/unicode_tables.h json.h common.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)
