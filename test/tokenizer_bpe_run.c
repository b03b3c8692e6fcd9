/*
 * tokenizer_bpe_run.c: runs many encode and decode requests through tokenizer/tokenizer.h with one loaded
 * model, for test/tokenizer_bpe_compare.py (one process instead of one `tokenize` run per case, each loading
 * the 9 MB tokenizer.json). Then encodes every text again from several threads at once, all sharing the one
 * Tokenizer, and exits 1 if any result differs from the single-threaded one.
 *
 * usage: tokenizer_bpe_run MODEL REQUESTS OUT
 * REQUESTS: records of an op byte and a little-endian uint32 n, then n text bytes (op 'E': encode, 'B':
 * encode with BOS, 'P': the pieces of the pre-tokenizer's pattern, for valid UTF-8 without added tokens) or n
 * int32 ids (op 'D': decode). OUT: per record, a uint32 count, then that many int32 ids (encode), bytes
 * (decode) or piece lengths in bytes ('P'). The first line on stdout gives vocab_size, bos_id, eos_id and
 * unk_id.
 */
#include <omp.h>

#include "common.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    char op;
    const char *data;
    uint32_t n;
    int *ids;          // encode: the result
    size_t n_ids;
} Request;

static uint32_t read_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void write_u32(FILE *f, uint32_t v, const char *path) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    xfwrite(b, 4, f, path);
}

int main(int argc, char **argv) {
    if (argc != 4) fail("usage: tokenizer_bpe_run MODEL REQUESTS OUT");
    Tokenizer tok;
    double t0 = wall_time();
    tokenizer_load(&tok, argv[1]);
    printf("vocab_size %d bos_id %d eos_id %d unk_id %d load_s %.3f\n", tok.vocab_size, tok.bos_id, tok.eos_id,
           tok.unk_id, wall_time() - t0);
    size_t size;
    char *buf = file_read_all(argv[2], &size);
    size_t cap = 1024, n = 0;
    Request *req = (Request *)xmalloc(cap * sizeof(Request));
    for (size_t p = 0; p < size;) {
        if (size - p < 5) fail("%s: a record is cut short", argv[2]);
        Request r;
        memset(&r, 0, sizeof(r));
        r.op = buf[p];
        r.n = read_u32((const unsigned char *)buf + p + 1);
        size_t bytes = r.op == 'D' ? 4 * (size_t)r.n : r.n;
        if (bytes > size - p - 5) fail("%s: a record runs past the end", argv[2]);
        if (r.op != 'E' && r.op != 'B' && r.op != 'D' && r.op != 'P') fail("%s: unknown op %d", argv[2], r.op);
        if (r.op == 'P' && !tok.bpe) fail("op P needs a tokenizer.json model");
        r.data = buf + p + 5;
        p += 5 + bytes;
        if (n == cap) req = (Request *)xrealloc(req, (cap *= 2) * sizeof(Request));
        req[n++] = r;
    }
    FILE *out = xfopen(argv[3], "wb");
    for (size_t i = 0; i < n; i++) {
        Request *r = &req[i];
        if (r->op == 'D') {
            int *ids = (int *)xmalloc(((size_t)r->n + 1) * sizeof(int));
            for (uint32_t k = 0; k < r->n; k++) ids[k] = (int)read_u32((const unsigned char *)r->data + 4 * k);
            size_t len;
            char *text = tokenizer_decode(&tok, ids, r->n, &len);
            write_u32(out, (uint32_t)len, argv[3]);
            xfwrite(text, len, out, argv[3]);
            free(text);
            free(ids);
        } else if (r->op == 'P') {
            const unsigned char *s = (const unsigned char *)r->data;
            uint32_t count = 0;
            for (size_t k = 0; k < r->n; k += bbpe_pretoken_len(tok.bpe, s, k, r->n)) count++;
            write_u32(out, count, argv[3]);
            for (size_t k = 0, len; k < r->n; k += len) {
                len = bbpe_pretoken_len(tok.bpe, s, k, r->n);
                write_u32(out, (uint32_t)len, argv[3]);
            }
        } else {
            r->ids = tokenizer_encode(&tok, r->data, r->n, r->op == 'B', 0, &r->n_ids);
            write_u32(out, (uint32_t)r->n_ids, argv[3]);
            for (size_t k = 0; k < r->n_ids; k++) write_u32(out, (uint32_t)r->ids[k], argv[3]);
        }
    }
    if (fclose(out) != 0) fail("cannot write %s", argv[3]);
    // the same texts from several threads at once, sharing the loaded tokenizer
    int differ = 0;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(4) reduction(+ : differ)
    for (size_t i = 0; i < n; i++) {
        if (req[i].op == 'D' || req[i].op == 'P') continue;
        size_t m;
        int *ids = tokenizer_encode(&tok, req[i].data, req[i].n, req[i].op == 'B', 0, &m);
        differ += m != req[i].n_ids || memcmp(ids, req[i].ids, m * sizeof(int)) != 0;
        free(ids);
    }
    for (size_t i = 0; i < n; i++) free(req[i].ids);
    printf("threads: %d of the texts encoded differently from 4 threads at once\n", differ);
    free(req);
    free(buf);
    tokenizer_free(&tok);
    return differ ? 1 : 0;
}
