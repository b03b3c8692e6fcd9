/*
 * dataloader.h: reads token shards in llm.c's format for both trainers. A shard is a 256 x int32 header
 * (magic 20240520 version 1 for uint16 tokens, or magic 20240801 version 7 for uint32 tokens; header[2] is
 * the token count) followed by the tokens.
 *
 * Batches: a "window" is the tokens of one optimizer step, B*T*world*accum consecutive tokens (+1 for the last
 * target), cut into world*accum slices of B*T tokens (B sequences of T): micro-batch m of rank r reads slice
 * m*world + r (and the token after it). So the data of a step is its window whatever the split: N ranks with
 * micro-batch B read exactly what one rank with micro-batch N*B reads, and a run resumed on another number of ranks
 * (the same tokens per step, so another accum or B) reads the same sequences in every step. Each shard holds
 * (tokens-1) / (B*T*world*accum) windows. With shuffling (training), each
 * epoch visits the shards in an order and each shard's windows in an order drawn from the project PRNG keyed
 * by (seed, epoch[, shard]); without it (validation), everything is in file order. The position (epoch,
 * shard, window) is all the state there is, so checkpoints store it and resume exactly.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_DATALOADER_H
#define GRASS_DATALOADER_H

#include <glob.h>
#include "common.h"
#include "rng.h"

#define SHARD_HEADER_INTS 256
#define SHARD_MAGIC_U16 20240520
#define SHARD_VERSION_U16 1
#define SHARD_MAGIC_U32 20240801
#define SHARD_VERSION_U32 7

typedef struct {
    char *path;
    size_t ntok;     // tokens in the shard
    int tok_bytes;   // 2 (uint16) or 4 (uint32)
} Shard;

typedef struct {
    int B, T, rank, world, accum, vocab;
    int shuffle;
    uint64_t seed;
    int nshards;
    Shard *shards;
    size_t window_tokens;  // B*T*world*accum: one optimizer step
    // position
    int epoch, shard_pos, window_pos;  // shard_pos indexes shard_order, window_pos indexes window_order
    int micro;                         // the micro-batch of the window read next, 0 .. accum-1
    int *shard_order;                  // [nshards]
    int *window_order;                 // [windows of the current shard]
    int nwindows;                      // windows of the current shard
    FILE *fp;                          // the current shard
    void *raw;                         // [B*T+1] tokens as stored
    int *inputs;                       // [B*T]
    int *targets;                      // [B*T]
} DataLoader;

// Reads and checks a shard header; returns the token count. Fails naming the file on any inconsistency.
static size_t shard_read_header(const char *path, int *tok_bytes) {
    FILE *f = xfopen(path, "rb");
    int32_t header[SHARD_HEADER_INTS];
    if (fread(header, sizeof(int32_t), SHARD_HEADER_INTS, f) != SHARD_HEADER_INTS)
        fail("%s is not a token shard: shorter than the %d-byte header", path, SHARD_HEADER_INTS * 4);
    if (header[0] == SHARD_MAGIC_U16) {
        if (header[1] != SHARD_VERSION_U16)
            fail("%s: shard version %d, expected %d for magic %d (uint16 tokens)", path, header[1], SHARD_VERSION_U16, SHARD_MAGIC_U16);
        *tok_bytes = 2;
    } else if (header[0] == SHARD_MAGIC_U32) {
        if (header[1] != SHARD_VERSION_U32)
            fail("%s: shard version %d, expected %d for magic %d (uint32 tokens)", path, header[1], SHARD_VERSION_U32, SHARD_MAGIC_U32);
        *tok_bytes = 4;
    } else {
        fail("%s is not a token shard: magic %d, expected %d (uint16 tokens) or %d (uint32 tokens)", path, header[0],
             SHARD_MAGIC_U16, SHARD_MAGIC_U32);
    }
    if (header[2] < 0) fail("%s: negative token count %d in the header", path, header[2]);
    size_t ntok = (size_t)(uint32_t)header[2];
    struct stat st;
    if (fstat(fileno(f), &st) != 0) fail("cannot read %s: %s", path, strerror(errno));
    long size = (long)st.st_size;
    fclose(f);
    size_t expect = SHARD_HEADER_INTS * 4 + ntok * (size_t)*tok_bytes;
    if ((size_t)size < expect)
        fail("%s is truncated: the header says %zu tokens (%zu bytes), the file has %ld bytes", path, ntok, expect, size);
    if ((size_t)size > expect)
        fail("%s: the header says %zu tokens (%zu bytes) but the file has %ld bytes", path, ntok, expect, size);
    return ntok;
}

static void dataloader_load_shard(DataLoader *dl) {
    if (dl->fp) fclose(dl->fp);
    const Shard *s = &dl->shards[dl->shard_order[dl->shard_pos]];
    dl->fp = xfopen(s->path, "rb");
    dl->nwindows = (int)((s->ntok - 1) / dl->window_tokens);
    free(dl->window_order);
    dl->window_order = (int *)xmalloc(sizeof(int) * dl->nwindows);
    if (dl->shuffle) {
        Rng r;
        rng_init(&r, dl->seed, RNG_STREAM_DATA, (uint64_t)dl->epoch, (uint64_t)dl->shard_order[dl->shard_pos] + 1);
        rng_permutation(&r, dl->window_order, dl->nwindows);
    } else {
        for (int i = 0; i < dl->nwindows; i++) dl->window_order[i] = i;
    }
}

static void dataloader_start_epoch(DataLoader *dl) {
    if (dl->shuffle) {
        Rng r;
        rng_init(&r, dl->seed, RNG_STREAM_DATA, (uint64_t)dl->epoch, 0);
        rng_permutation(&r, dl->shard_order, dl->nshards);
    } else {
        for (int i = 0; i < dl->nshards; i++) dl->shard_order[i] = i;
    }
}

// Moves to (epoch, shard_pos, window_pos); used at start and when resuming from a checkpoint.
static void dataloader_seek(DataLoader *dl, int epoch, int shard_pos, int window_pos) {
    if (shard_pos < 0 || shard_pos >= dl->nshards || window_pos < 0 || epoch < 0)
        fail("data position (epoch %d, shard %d, window %d) is outside the %d shards of the data; was the checkpoint written for other data?",
             epoch, shard_pos, window_pos, dl->nshards);
    dl->epoch = epoch;
    dataloader_start_epoch(dl);
    dl->shard_pos = shard_pos;
    dataloader_load_shard(dl);
    if (window_pos > dl->nwindows)
        fail("data position (shard %d, window %d) is past the end of %s; was the checkpoint written for other data?",
             shard_pos, window_pos, dl->shards[dl->shard_order[shard_pos]].path);
    dl->window_pos = window_pos;
    dl->micro = 0;
}

static void dataloader_reset(DataLoader *dl) { dataloader_seek(dl, 0, 0, 0); }

// Opens every shard matching pattern (a glob) and checks each header. what names the flag in errors.
// accum: micro-batches per optimizer step and rank.
static void dataloader_init(DataLoader *dl, const char *pattern, const char *what, int B, int T, int rank, int world,
                            int accum, int vocab, int shuffle, uint64_t seed) {
    memset(dl, 0, sizeof(*dl));
    dl->B = B; dl->T = T; dl->rank = rank; dl->world = world; dl->accum = accum; dl->vocab = vocab;
    dl->shuffle = shuffle; dl->seed = seed;
    dl->window_tokens = (size_t)B * T * world * accum;
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc != 0 || g.gl_pathc == 0) fail("%s %s matches no files", what, pattern);
    dl->nshards = (int)g.gl_pathc;
    dl->shards = (Shard *)xcalloc(dl->nshards, sizeof(Shard));
    for (int i = 0; i < dl->nshards; i++) {  // glob sorts the names, so the order is deterministic
        Shard *s = &dl->shards[i];
        s->path = xstrdup(g.gl_pathv[i]);
        s->ntok = shard_read_header(s->path, &s->tok_bytes);
        if (s->ntok < dl->window_tokens + 1)
            fail("%s: %zu tokens, fewer than one step needs (batch %d x seq %d x ranks %d x micro-batches %d + 1 = %zu); use a "
                 "smaller --batch/--seq/--total-batch or larger shards", s->path, s->ntok, B, T, world, accum, dl->window_tokens + 1);
    }
    globfree(&g);
    dl->shard_order = (int *)xmalloc(sizeof(int) * dl->nshards);
    dl->raw = xmalloc(((size_t)B * T + 1) * 4);
    dl->inputs = (int *)xmalloc(sizeof(int) * B * T);
    dl->targets = (int *)xmalloc(sizeof(int) * B * T);
    dataloader_reset(dl);
}

// Total windows over all shards (the number of distinct steps' batches in one epoch).
static size_t dataloader_num_batches(const DataLoader *dl) {
    size_t n = 0;
    for (int i = 0; i < dl->nshards; i++) n += (dl->shards[i].ntok - 1) / dl->window_tokens;
    return n;
}

// Fills inputs and targets ([B*T] each) with the next micro-batch of this rank; wraps into the next shard/epoch.
static void dataloader_next_batch(DataLoader *dl) {
    while (dl->window_pos >= dl->nwindows) {
        if (++dl->shard_pos >= dl->nshards) {
            dl->epoch++;
            dl->shard_pos = 0;
            dataloader_start_epoch(dl);
        }
        dataloader_load_shard(dl);
        dl->window_pos = 0;
    }
    const Shard *s = &dl->shards[dl->shard_order[dl->shard_pos]];
    size_t BT = (size_t)dl->B * dl->T;
    size_t slice = (size_t)dl->micro * dl->world + (size_t)dl->rank;
    size_t first = (size_t)dl->window_order[dl->window_pos] * dl->window_tokens + slice * BT;
    fseek(dl->fp, (long)(SHARD_HEADER_INTS * 4 + first * s->tok_bytes), SEEK_SET);
    xfread(dl->raw, (BT + 1) * s->tok_bytes, dl->fp, s->path);
    for (size_t i = 0; i <= BT; i++) {
        uint32_t tok = s->tok_bytes == 2 ? ((uint16_t *)dl->raw)[i] : ((uint32_t *)dl->raw)[i];
        if (tok >= (uint32_t)dl->vocab)
            fail("%s: token id %u at position %zu is outside the model's vocabulary (size %d); was it tokenized for another model?",
                 s->path, tok, first + i, dl->vocab);
        if (i < BT) dl->inputs[i] = (int)tok;
        if (i > 0) dl->targets[i - 1] = (int)tok;
    }
    if (++dl->micro == dl->accum) {
        dl->micro = 0;
        dl->window_pos++;
    }
}

static void dataloader_free(DataLoader *dl) {
    if (dl->fp) fclose(dl->fp);
    for (int i = 0; i < dl->nshards; i++) free(dl->shards[i].path);
    free(dl->shards);
    free(dl->shard_order);
    free(dl->window_order);
    free(dl->raw);
    free(dl->inputs);
    free(dl->targets);
    memset(dl, 0, sizeof(*dl));
}

#endif
