# tokenizer.mk: builds the `tokenize` tool (SentencePiece BPE text -> token shards); included by the main
# Makefile. `all` is named here too because make expands a rule's prerequisites where the rule is read.
BINARIES += tokenize
all: tokenize

tokenize: tokenizer/tokenize.c tokenizer/tokenizer.h tokenizer/bpe.h tokenizer/unicode_tables.h json.h common.h
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)
