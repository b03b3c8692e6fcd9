/*
 * fuzz_tokenizer.c: libFuzzer harness of the SentencePiece model reader (tokenizer/tokenizer.h): the input is
 * a .model file; where tokenizer_load accepts it, a short text with spaces, a newline, multi-byte characters
 * and invalid UTF-8 is encoded, the ids are decoded, and every piece is looked up by its text.
 */
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char text[] = "Hello  world,\nthe\xE2\x96\x81quick \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80 \xFF\xC0 end ";
    char path[1024];
    fuzz_write(path, sizeof(path), "tokenizer.model", data, size);
    FUZZ_TRY({
        Tokenizer tok;
        tokenizer_load(&tok, path);
        for (int i = 0; i < tok.vocab_size; i++) {
            size_t len;
            const char *piece = tokenizer_piece(&tok, i, &len);
            if (tokenizer_piece_id(&tok, piece, len) != i) abort();  // every piece is found by its text
        }
        size_t n;
        int *ids = tokenizer_encode(&tok, text, sizeof(text) - 1, tok.bos_id >= 0, tok.eos_id >= 0, &n);
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= tok.vocab_size) abort();
        char *back = tokenizer_decode(&tok, ids, n, NULL);
        free(back);
        free(ids);
        tokenizer_free(&tok);
    });
    return 0;
}
