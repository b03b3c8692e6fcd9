/*
 * fuzz_tokenizer.c: libFuzzer harness of the tokenizer readers (tokenizer/tokenizer.h): the input is a
 * SentencePiece .model file or a Hugging Face tokenizer.json (tokenizer_load tells them apart by content); where
 * it holds the separator of fuzz_common.h, the part after it is the tokenizer_config.json beside the file. Where
 * tokenizer_load accepts the model, a short text with spaces, newlines, contractions, digits, an added token,
 * multi-byte characters and invalid UTF-8 is encoded with and without BOS and EOS, the ids are decoded, and
 * every piece is looked up by its text.
 */
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char text[] = "Hello  world,\nthe\xE2\x96\x81quick \xC3\xA9t\xC3\xA9 \xF0\x9F\x98\x80 \xFF\xC0 end "
                               "it's I'LL 1234567 \r\n\t <|eot_id|> hello world\xE3\x80\x80x \xE4\xBD";
    char path[1024], config[1024];
    const uint8_t *model, *conf;
    size_t pos = 0, model_len, conf_len;
    fuzz_next_part(data, size, &pos, &model, &model_len);
    fuzz_write(path, sizeof(path), "tokenizer.model", model, model_len);
    fuzz_path(config, sizeof(config), "tokenizer_config.json");
    if (fuzz_next_part(data, size, &pos, &conf, &conf_len)) fuzz_write(config, sizeof(config), "tokenizer_config.json", conf, conf_len);
    else unlink(config);
    FUZZ_TRY({
        Tokenizer tok;
        tokenizer_load(&tok, path);
        for (int i = 0; i < tok.vocab_size; i++) {
            size_t len;
            const char *piece = tokenizer_piece(&tok, i, &len);
            if (tokenizer_piece_id(&tok, piece, len) != i) abort();  // every piece is found by its text
        }
        for (int with = 0; with < 2; with++) {
            size_t n;
            int *ids = tokenizer_encode(&tok, text, sizeof(text) - 1, with && tok.bos_id >= 0, with && tok.eos_id >= 0, &n);
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= tok.vocab_size) abort();
            char *back = tokenizer_decode(&tok, ids, n, NULL);
            free(back);
            free(ids);
        }
        tokenizer_free(&tok);
    });
    return 0;
}
