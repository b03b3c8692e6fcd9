/*
 * safetensors.h: reading and writing the safetensors format (8-byte little-endian header length, a JSON
 * header naming each tensor's dtype, shape and byte range, then the raw data). Checkpoints use it so
 * Hugging Face `transformers` loads them unchanged, and the PyTorch reference uses it for its debug states.
 * Reads F32, BF16 and F16 tensors into fp32 and I32 as int; writes F32, BF16 and I32.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_SAFETENSORS_H
#define GRASS_SAFETENSORS_H

#include <math.h>
#include <unistd.h>
#include "common.h"
#include "json.h"

#define ST_MAX_DIMS 4

typedef struct {
    const char *name;
    const char *dtype;  // "F32", "BF16", "I32"
    int ndim;
    size_t shape[ST_MAX_DIMS];
    const void *data;   // numel * dtype size bytes, or NULL: from the writer's Fetcher
} StTensorOut;

// Where the bytes of the pieces a writer takes with data NULL come from (tensors here, state sections in
// checkpoint.h): fetch(ctx, i, dst) fills dst with piece i's bytes. The writer fetches one piece at a time into
// one buffer sized for the largest, so a trainer whose weights live elsewhere (on the GPU) needs host memory for
// one tensor at a time, not for the whole model.
typedef struct {
    void (*fetch)(void *ctx, int i, void *dst);
    void *ctx;
} Fetcher;

// The bytes of piece i, from data or else from the fetcher into *buf (grown to the size as needed).
static const void *fetcher_bytes(const Fetcher *f, int i, const void *data, size_t nbytes, void **buf, size_t *cap) {
    if (data) return data;
    if (!f) fail("internal: a piece without data and no fetcher to take it from");
    f->fetch(f->ctx, i, xreserve(buf, cap, nbytes));
    return *buf;
}

static size_t st_dtype_size(const char *dtype) {
    if (!strcmp(dtype, "F32") || !strcmp(dtype, "I32")) return 4;
    if (!strcmp(dtype, "BF16") || !strcmp(dtype, "F16")) return 2;
    return 0;
}

// The largest shape entry or byte offset a header may hold: 2^53, where doubles (how the JSON reader keeps
// numbers) stop being exact integers.
#define ST_MAX_SIZE 9007199254740992.0

// Whether v is a JSON number that is a whole number in [0, ST_MAX_SIZE]; stores it in *out.
static int st_json_size(const JsonValue *v, size_t *out) {
    if (v->type != JSON_NUMBER || !(v->number >= 0 && v->number <= ST_MAX_SIZE) || v->number != floor(v->number))
        return 0;
    *out = (size_t)v->number;
    return 1;
}

static size_t st_numel(int ndim, const size_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

// Writes tensors (and string metadata pairs meta[2*i], meta[2*i+1]) to path, flushed to disk before return; the
// tensors with data NULL come from fetch (i: their index in t), which may then be NULL.
static void safetensors_write(const char *path, int n, const StTensorOut *t, int n_meta, const char *const *meta,
                              const Fetcher *fetch) {
    size_t cap = 256 + (size_t)n_meta * 256, len = 0, offset = 0;
    for (int i = 0; i < n; i++) cap += strlen(t[i].name) + 160;
    for (int i = 0; i < 2 * n_meta; i++) cap += strlen(meta[i]);
    char *h = (char *)xmalloc(cap + 8);
    len += snprintf(h + len, cap - len, "{");
    if (n_meta) {
        len += snprintf(h + len, cap - len, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++)
            len += snprintf(h + len, cap - len, "%s\"%s\":\"%s\"", i ? "," : "", meta[2 * i], meta[2 * i + 1]);
        len += snprintf(h + len, cap - len, "}%s", n ? "," : "");
    }
    for (int i = 0; i < n; i++) {
        size_t bytes = st_numel(t[i].ndim, t[i].shape) * st_dtype_size(t[i].dtype);
        len += snprintf(h + len, cap - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) len += snprintf(h + len, cap - len, "%s%zu", d ? "," : "", t[i].shape[d]);
        len += snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        offset += bytes;
    }
    len += snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';  // the data starts 8-byte aligned
    FILE *f = xfopen(path, "wb");
    uint64_t hlen = len;
    xfwrite(&hlen, 8, f, path);
    xfwrite(h, len, f, path);
    void *buf = NULL;
    size_t buf_cap = 0;
    for (int i = 0; i < n; i++) {
        size_t bytes = st_numel(t[i].ndim, t[i].shape) * st_dtype_size(t[i].dtype);
        xfwrite(fetcher_bytes(fetch, i, t[i].data, bytes, &buf, &buf_cap), bytes, f, path);
    }
    xfclose_synced(f, path);
    free(buf);
    free(h);
}

typedef struct {
    char *name;
    char dtype[8];
    int ndim;
    size_t shape[ST_MAX_DIMS];
    size_t begin, end;  // byte range within the data section
} StEntry;

typedef struct {
    char path[1024];
    FILE *f;
    size_t data_start;  // file offset of the data section
    int n;
    StEntry *entries;
    JsonValue header;   // kept for metadata lookups
} SafeTensors;

static void safetensors_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof(*st));
    path_format(st->path, sizeof(st->path), "%s", path);
    st->f = xfopen(path, "rb");
    struct stat sb;
    if (fstat(fileno(st->f), &sb) != 0) fail("cannot read %s: %s", path, strerror(errno));
    long fsize = (long)sb.st_size;
    uint64_t hlen = 0;
    if (fsize < 8) fail("%s is not a safetensors file: %ld bytes", path, fsize);
    xfread(&hlen, 8, st->f, path);
    if (hlen > (uint64_t)fsize - 8 || hlen > (1u << 30))
        fail("%s is not a safetensors file (or is truncated): header length %llu, file size %ld", path,
             (unsigned long long)hlen, fsize);
    char *text = (char *)xmalloc(hlen + 1);
    xfread(text, hlen, st->f, path);
    text[hlen] = '\0';
    json_parse(&st->header, text, hlen, path);
    free(text);
    if (st->header.type != JSON_OBJECT) fail("%s: safetensors header is not a JSON object", path);
    st->data_start = 8 + hlen;
    size_t data_size = (size_t)fsize - st->data_start;
    st->entries = (StEntry *)xcalloc(st->header.count, sizeof(StEntry));
    for (int i = 0; i < st->header.count; i++) {
        const char *name = st->header.keys[i];
        if (!strcmp(name, "__metadata__")) continue;
        const JsonValue *v = &st->header.items[i];
        const JsonValue *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"), *off = json_get(v, "data_offsets");
        if (!dt || dt->type != JSON_STRING || !sh || sh->type != JSON_ARRAY || sh->count > ST_MAX_DIMS || !off ||
            off->type != JSON_ARRAY || off->count != 2)
            fail("%s: malformed header entry for tensor %s", path, name);
        StEntry *e = &st->entries[st->n++];
        e->name = xstrdup(name);
        snprintf(e->dtype, sizeof(e->dtype), "%s", dt->string);
        e->ndim = sh->count;
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (!st_json_size(&sh->items[d], &e->shape[d]))
                fail("%s: tensor %s: shape entry %d is not a whole number from 0 to 2^53", path, name, d);
            if (e->shape[d] && numel > (size_t)ST_MAX_SIZE / e->shape[d])
                fail("%s: tensor %s: its shape has more than 2^53 elements", path, name);
            numel *= e->shape[d];
        }
        if (!st_json_size(&off->items[0], &e->begin) || !st_json_size(&off->items[1], &e->end))
            fail("%s: tensor %s: data_offsets must be two whole numbers from 0 to 2^53", path, name);
        if (e->begin > e->end) fail("%s: tensor %s: data_offsets [%zu, %zu] end before they begin", path, name, e->begin, e->end);
        size_t esize = st_dtype_size(e->dtype);
        if (esize && e->end - e->begin != numel * esize)
            fail("%s: tensor %s: byte range does not match its shape and dtype", path, name);
        if (e->end > data_size)
            fail("%s is truncated: tensor %s needs bytes up to %zu of the data section, the file has %zu", path,
                 name, e->end, data_size);
    }
}

static void safetensors_close(SafeTensors *st) {
    for (int i = 0; i < st->n; i++) free(st->entries[i].name);
    free(st->entries);
    json_free_value(&st->header);
    if (st->f) fclose(st->f);
    memset(st, 0, sizeof(*st));
}

static const StEntry *safetensors_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->entries[i].name, name)) return &st->entries[i];
    return NULL;
}

// A metadata string, or NULL.
static const char *safetensors_meta(const SafeTensors *st, const char *key) {
    const JsonValue *m = json_get(&st->header, "__metadata__");
    const JsonValue *v = m ? json_get(m, key) : NULL;
    return v && v->type == JSON_STRING ? v->string : NULL;
}

static float st_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, u;
    if (exp == 0x1F) u = sign | 0x7F800000u | (mant << 13);
    else if (exp) u = sign | ((exp + 112) << 23) | (mant << 13);
    else if (!mant) u = sign;
    else {  // subnormal: normalise
        int e = -1;
        do { mant <<= 1; e++; } while (!(mant & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Reads elements [lo, hi) of tensor `name`, which must have exactly numel elements (any shape with that many), into
// dst + lo as fp32, leaving the rest of dst as it is (a rank that keeps part of a tensor reads that part). Fails naming
// the file and tensor when it is missing, has another size or an unsupported dtype.
static void safetensors_read_f32_range(const SafeTensors *st, const char *name, float *dst, size_t numel, size_t lo, size_t hi) {
    const StEntry *e = safetensors_find(st, name);
    if (!e) fail("%s: tensor %s is missing", st->path, name);
    size_t n = st_numel(e->ndim, e->shape);
    if (n != numel) fail("%s: tensor %s has %zu elements, the model expects %zu (does the checkpoint match the model config?)", st->path, name, n, numel);
    int f32 = !strcmp(e->dtype, "F32"), bf16 = !strcmp(e->dtype, "BF16");
    if (!f32 && !bf16 && strcmp(e->dtype, "F16")) fail("%s: tensor %s has dtype %s; expected F32, BF16 or F16", st->path, name, e->dtype);
    if (hi > n) hi = n;
    if (lo >= hi) return;
    size_t esize = f32 ? 4 : 2;
    if (fseek(st->f, (long)(st->data_start + e->begin + lo * esize), SEEK_SET) != 0) fail("cannot seek in %s: %s", st->path, strerror(errno));
    if (f32) { xfread(dst + lo, (hi - lo) * 4, st->f, st->path); return; }
    uint16_t *tmp = (uint16_t *)xmalloc((hi - lo) * 2);
    xfread(tmp, (hi - lo) * 2, st->f, st->path);
    for (size_t i = lo; i < hi; i++) dst[i] = bf16 ? st_bf16_to_f32(tmp[i - lo]) : st_f16_to_f32(tmp[i - lo]);
    free(tmp);
}

// The whole tensor `name` (numel elements) into dst as fp32.
static void safetensors_read_f32(const SafeTensors *st, const char *name, float *dst, size_t numel) {
    safetensors_read_f32_range(st, name, dst, numel, 0, numel);
}

// Reads an I32 tensor of exactly numel elements.
static void safetensors_read_i32(const SafeTensors *st, const char *name, int32_t *dst, size_t numel) {
    const StEntry *e = safetensors_find(st, name);
    if (!e) fail("%s: tensor %s is missing", st->path, name);
    if (strcmp(e->dtype, "I32") || st_numel(e->ndim, e->shape) != numel)
        fail("%s: tensor %s must be I32 with %zu elements", st->path, name, numel);
    if (fseek(st->f, (long)(st->data_start + e->begin), SEEK_SET) != 0) fail("cannot seek in %s: %s", st->path, strerror(errno));
    xfread(dst, numel * 4, st->f, st->path);
}

// Checks a tensor's shape against the expected rows x cols (cols 1 for vectors, which may be 1-D).
static void safetensors_check_shape(const SafeTensors *st, const char *name, size_t rows, size_t cols) {
    const StEntry *e = safetensors_find(st, name);
    if (!e) fail("%s: tensor %s is missing", st->path, name);
    int ok = (e->ndim == 2 && e->shape[0] == rows && e->shape[1] == cols) || (cols == 1 && e->ndim == 1 && e->shape[0] == rows);
    if (!ok) {
        char got[96] = "";
        size_t len = 0;
        for (int d = 0; d < e->ndim; d++) len += snprintf(got + len, sizeof(got) - len, "%s%zu", d ? " x " : "", e->shape[d]);
        fail("%s: tensor %s has shape [%s], the model expects [%zu x %zu] (does the checkpoint match the model config?)",
             st->path, name, got, rows, cols);
    }
}

#endif
