/*
 * checkpoint.h: checkpoints as DESIGN §6, shared by both trainers. A checkpoint is a directory
 * OUT/ckpt_NNNNNNNN (NNNNNNNN = completed steps) holding
 *   model.safetensors  the weights with Hugging Face LLaMA names, so LlamaForCausalLM.from_pretrained loads it
 *                      (--init and --eval-only also read Hugging Face's sharded form: model.safetensors.index.json
 *                      and the files it names)
 *   config.json        the Hugging Face LlamaConfig
 *   state.bin          the trainer state: named sections (step, optimizer moments, data position, ...)
 * It is written into OUT/ckpt_NNNNNNNN.tmp, every file flushed to disk, then renamed into place, so a
 * directory with the final name is always complete; a crash leaves at most a .tmp directory, which is ignored
 * and replaced by the next save.
 *
 * state.bin: "GRASSTAT" (8 bytes), uint32 version, uint32 section count, then per section a 32-byte
 * NUL-padded name, a uint64 byte count and the bytes, and finally "GRASSEND" (so truncation is detected).
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_CHECKPOINT_H
#define GRASS_CHECKPOINT_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"
#include "llama_config.h"
#include "safetensors.h"
#include "grass.h"

#define STATE_MAGIC "GRASSTAT"
#define STATE_END "GRASSEND"
#define STATE_VERSION 1
#define STATE_NAME_LEN 32
#define CKPT_PATH_LEN 2048

typedef struct {
    const char *name;
    size_t nbytes;
    const void *data;  // or NULL: moved through the trainer's StateIO, part by part
} StateSection;

// How the sections without data move between state.bin and the trainer (the GPU trainer's live on the device): in
// parts, consecutive byte ranges of a section in order, so that host memory holds one part at a time (the GPU
// trainer's parts are its tensors: its largest, not a 28 GB moment of a 7b model). i: the section's index.
typedef struct {
    int (*parts)(void *ctx, int i);                              // how many parts section i has
    size_t (*part_bytes)(void *ctx, int i, int part);            // their sizes, adding up to the section's
    void (*fetch)(void *ctx, int i, int part, void *dst);        // saving: the part's bytes into dst
    void (*store)(void *ctx, int i, int part, const void *src);  // resuming: the part's bytes from src
    void *ctx;
} StateIO;

// Section i moves in parts: one of all its bytes when it has data, else io's. Their number, and part's size.
static int state_parts(const StateSection *sec, int i, const StateIO *io) {
    if (sec[i].data) return 1;
    if (!io) fail("internal: state section %s has no data and no StateIO", sec[i].name);
    return io->parts(io->ctx, i);
}

static size_t state_part_bytes(const StateSection *sec, int i, int part, const StateIO *io) {
    return sec[i].data ? sec[i].nbytes : io->part_bytes(io->ctx, i, part);
}

// The parts of section i came to `bytes` in all: they must add up to the section.
static void state_parts_check(const StateSection *sec, int i, size_t bytes) {
    if (bytes != sec[i].nbytes) fail("internal: the parts of state section %s add up to %zu bytes, not %zu", sec[i].name, bytes, sec[i].nbytes);
}

static void state_write(const char *path, int n, const StateSection *sec, const StateIO *io) {
    FILE *f = xfopen(path, "wb");
    uint32_t head[2] = {STATE_VERSION, (uint32_t)n};
    xfwrite(STATE_MAGIC, 8, f, path);
    xfwrite(head, sizeof(head), f, path);
    void *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        char name[STATE_NAME_LEN] = {0};
        if (strlen(sec[i].name) >= STATE_NAME_LEN) fail("state section name %s is too long", sec[i].name);
        memcpy(name, sec[i].name, strlen(sec[i].name));
        uint64_t nb = sec[i].nbytes;
        xfwrite(name, STATE_NAME_LEN, f, path);
        xfwrite(&nb, 8, f, path);
        size_t offset = 0;
        for (int part = 0, parts = state_parts(sec, i, io); part < parts; part++) {
            size_t bytes = state_part_bytes(sec, i, part, io);
            if (sec[i].data) {
                xfwrite((const char *)sec[i].data + offset, bytes, f, path);
            } else {
                io->fetch(io->ctx, i, part, xreserve(&buf, &cap, bytes));
                xfwrite(buf, bytes, f, path);
            }
            offset += bytes;
        }
        state_parts_check(sec, i, offset);
    }
    xfwrite(STATE_END, 8, f, path);
    if (fflush(f) || fsync(fileno(f)) || fclose(f)) fail("cannot write %s: %s", path, strerror(errno));
    free(buf);
}

// An open state.bin: its sections' names and sizes, and where their bytes are, read a section or a part of one at
// a time (state_read_section, state_read_bytes), so that a trainer holds at most one part in host memory while it
// resumes.
typedef struct {
    char path[CKPT_PATH_LEN];
    FILE *f;  // open until state_close
    int n;
    char (*names)[STATE_NAME_LEN];
    size_t *sizes;
    off_t *offsets;  // of each section's bytes in the file
} TrainerState;

// Reads the section index of path and checks the end marker (a truncated file fails here, naming it).
static void state_open(TrainerState *st, const char *path) {
    memset(st, 0, sizeof(*st));
    path_format(st->path, sizeof(st->path), "%s", path);
    FILE *f = st->f = xfopen(path, "rb");
    char magic[8];
    uint32_t head[2];
    xfread(magic, 8, f, path);
    if (memcmp(magic, STATE_MAGIC, 8)) fail("%s is not a grass.c trainer state file (bad magic)", path);
    xfread(head, sizeof(head), f, path);
    if (head[0] != STATE_VERSION) fail("%s: trainer state version %u, this build reads version %d", path, head[0], STATE_VERSION);
    if (head[1] > 4096) fail("%s: corrupt trainer state (%u sections)", path, head[1]);
    st->n = (int)head[1];
    st->names = (char (*)[STATE_NAME_LEN])xcalloc(st->n, STATE_NAME_LEN);
    st->sizes = (size_t *)xcalloc(st->n, sizeof(size_t));
    st->offsets = (off_t *)xcalloc(st->n, sizeof(off_t));
    for (int i = 0; i < st->n; i++) {
        uint64_t nb;
        xfread(st->names[i], STATE_NAME_LEN, f, path);
        st->names[i][STATE_NAME_LEN - 1] = '\0';
        xfread(&nb, 8, f, path);
        if (nb > ((uint64_t)1 << 40)) fail("%s: corrupt trainer state (section %s claims %llu bytes)", path, st->names[i], (unsigned long long)nb);
        st->sizes[i] = nb;
        st->offsets[i] = ftello(f);
        if (fseeko(f, (off_t)nb, SEEK_CUR)) fail("cannot read %s: %s", path, strerror(errno));
    }
    xfread(magic, 8, f, path);  // past the end of a truncated file: fails
    if (memcmp(magic, STATE_END, 8)) fail("%s: corrupt trainer state (no end marker)", path);
}

// The index of section `name`, which must hold exactly nbytes; fails naming the file otherwise.
static int state_find(const TrainerState *st, const char *name, size_t nbytes) {
    for (int i = 0; i < st->n; i++) {
        if (strcmp(st->names[i], name)) continue;
        if (st->sizes[i] != nbytes)
            fail("%s: section %s has %zu bytes, this run expects %zu (was the checkpoint written for another model or optimizer?)",
                 st->path, name, st->sizes[i], nbytes);
        return i;
    }
    fail("%s: section %s is missing (was the checkpoint written with another optimizer?)", st->path, name);
}

// Bytes [offset, offset + nbytes) of section i into dst.
static void state_read_bytes(const TrainerState *st, int i, size_t offset, size_t nbytes, void *dst) {
    if (offset + nbytes > st->sizes[i]) fail("internal: reading past the end of section %s of %s", st->names[i], st->path);
    if (fseeko(st->f, st->offsets[i] + (off_t)offset, SEEK_SET)) fail("cannot read %s: %s", st->path, strerror(errno));
    xfread(dst, nbytes, st->f, st->path);
}

// Section i's bytes into dst (sizes[i] bytes).
static void state_read_section(const TrainerState *st, int i, void *dst) { state_read_bytes(st, i, 0, st->sizes[i], dst); }

static void state_close(TrainerState *st) {
    fclose(st->f);
    free(st->names);
    free(st->sizes);
    free(st->offsets);
    memset(st, 0, sizeof(*st));
}

// ---------------------------------------------------------------------------------------------------
// Checkpoint directories

static void fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

static void mkdir_p(const char *path) {
    char tmp[CKPT_PATH_LEN];
    path_format(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST) fail("cannot create directory %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) fail("cannot create directory %s: %s", tmp, strerror(errno));
}

// Removes a directory of plain files (a checkpoint); missing is fine.
static void dir_remove_flat(const char *path) {
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    char f[CKPT_PATH_LEN + 256];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        path_format(f, sizeof(f), "%s/%s", path, e->d_name);
        if (unlink(f)) fail("cannot remove %s: %s", f, strerror(errno));
    }
    closedir(d);
    if (rmdir(path)) fail("cannot remove %s: %s", path, strerror(errno));
}

static void checkpoint_dir(char *buf, size_t n, const char *out_dir, int step) {
    path_format(buf, n, "%s/ckpt_%08d", out_dir, step);
}

// Starts a checkpoint of `step`: creates (afresh) the temporary directory and returns its path in tmp.
static void checkpoint_begin(const char *out_dir, int step, char *tmp, size_t n) {
    mkdir_p(out_dir);
    char final_dir[CKPT_PATH_LEN];
    checkpoint_dir(final_dir, sizeof(final_dir), out_dir, step);
    path_format(tmp, n, "%s.tmp", final_dir);
    dir_remove_flat(tmp);
    if (mkdir(tmp, 0755)) fail("cannot create directory %s: %s", tmp, strerror(errno));
}

// Makes the checkpoint in tmp the complete checkpoint of `step` (replacing an older one of the same step).
static void checkpoint_commit(const char *out_dir, int step, const char *tmp) {
    char final_dir[CKPT_PATH_LEN], old[CKPT_PATH_LEN + 8];
    checkpoint_dir(final_dir, sizeof(final_dir), out_dir, step);
    fsync_path(tmp);
    if (path_exists(final_dir)) {
        path_format(old, sizeof(old), "%s.old", final_dir);
        dir_remove_flat(old);
        if (rename(final_dir, old)) fail("cannot rename %s: %s", final_dir, strerror(errno));
        if (rename(tmp, final_dir)) fail("cannot rename %s to %s: %s", tmp, final_dir, strerror(errno));
        dir_remove_flat(old);
    } else if (rename(tmp, final_dir)) {
        fail("cannot rename %s to %s: %s", tmp, final_dir, strerror(errno));
    }
    fsync_path(out_dir);
}

// The newest complete checkpoint in out_dir: returns its step and path, or -1 when there is none.
static int checkpoint_find_latest(const char *out_dir, char *path, size_t n) {
    DIR *d = opendir(out_dir);
    if (!d) return -1;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int step, len = 0;
        if (sscanf(e->d_name, "ckpt_%8d%n", &step, &len) == 1 && len == 13 && e->d_name[len] == '\0' && step > best) best = step;
    }
    closedir(d);
    if (best >= 0) checkpoint_dir(path, n, out_dir, best);
    return best;
}

// Writes model.safetensors (HF names) and config.json for the flat parameter buffer, whose elements are
// dtype "F32" (float) or "BF16" (the bits of bfloat16, as the GPU trainer stores weights); with params NULL,
// tensor i (llama_tensor_at's order) comes from fetch.
static void checkpoint_write_model(const char *dir, const LlamaConfig *c, const void *params, const char *dtype,
                                   const Fetcher *fetch) {
    ParamLayout lay;
    llama_param_layout(c, &lay);
    size_t esize = st_dtype_size(dtype);
    int n = llama_num_tensors(c);
    StTensorOut *t = (StTensorOut *)xcalloc(n, sizeof(StTensorOut));
    char (*names)[128] = (char (*)[128])xcalloc(n, 128);
    for (int i = 0; i < n; i++) {
        int kind, layer;
        llama_tensor_at(c, i, &kind, &layer);
        llama_param_name(kind, layer, names[i], 128);
        size_t rows, cols;
        llama_param_shape(c, kind, &rows, &cols);
        t[i].name = names[i];
        t[i].dtype = dtype;
        t[i].ndim = cols == 1 ? 1 : 2;
        t[i].shape[0] = rows;
        t[i].shape[1] = cols;
        t[i].data = params ? (const char *)params + esize * llama_param_offset(c, &lay, kind, layer) : NULL;
    }
    const char *meta[2] = {"format", "pt"};
    char path[CKPT_PATH_LEN + 32];
    path_format(path, sizeof(path), "%s/model.safetensors", dir);
    safetensors_write(path, n, t, 1, meta, fetch);
    path_format(path, sizeof(path), "%s/config.json", dir);
    llama_config_write_json(c, path, !strcmp(dtype, "BF16") ? "bfloat16" : "float32");
    free(t);
    free(names);
}

// The weight files of a model directory: dir/model.safetensors, or the shards that
// dir/model.safetensors.index.json maps the tensors to (how Hugging Face saves large models, e.g. LLaMA-2 7B's
// model-00001-of-00002.safetensors ...), each opened once.
typedef struct {
    int n;
    SafeTensors *files;
    char index[CKPT_PATH_LEN + 48];  // the index file, or "" for a single model.safetensors
} ModelFiles;

static void model_files_open(ModelFiles *mf, const char *dir) {
    char path[CKPT_PATH_LEN + 48];
    memset(mf, 0, sizeof(*mf));
    path_format(path, sizeof(path), "%s/model.safetensors", dir);
    if (path_exists(path)) {
        mf->n = 1;
        mf->files = (SafeTensors *)xcalloc(1, sizeof(SafeTensors));
        safetensors_open(&mf->files[0], path);
        return;
    }
    path_format(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    path_format(mf->index, sizeof(mf->index), "%s", path);
    if (!path_exists(path)) fail("%s has neither model.safetensors nor model.safetensors.index.json (sharded weights)", dir);
    size_t len;
    char *text = file_read_all(path, &len);
    JsonValue index;
    json_parse(&index, text, len, path);
    free(text);
    const JsonValue *map = json_get(&index, "weight_map");
    if (!map || map->type != JSON_OBJECT) fail("%s: expected an object \"weight_map\" (tensor name -> file)", path);
    mf->files = (SafeTensors *)xcalloc(map->count > 0 ? map->count : 1, sizeof(SafeTensors));
    for (int i = 0; i < map->count; i++) {  // every distinct file named, in order of first mention
        const JsonValue *file = &map->items[i];
        if (file->type != JSON_STRING || strchr(file->string, '/'))
            fail("%s: tensor %s maps to something that is not a file name of the directory", path, map->keys[i]);
        char shard[CKPT_PATH_LEN + 256];
        path_format(shard, sizeof(shard), "%s/%s", dir, file->string);
        int seen = 0;
        for (int j = 0; j < mf->n && !seen; j++) seen = !strcmp(mf->files[j].path, shard);
        if (!seen) safetensors_open(&mf->files[mf->n++], shard);
    }
    json_free_value(&index);
}

// The open file that holds tensor `name`; fails naming the directory's files when none does.
static const SafeTensors *model_files_find(const ModelFiles *mf, const char *name) {
    for (int i = 0; i < mf->n; i++)
        if (safetensors_find(&mf->files[i], name)) return &mf->files[i];
    if (mf->index[0]) fail("%s: tensor %s is in none of its %d files", mf->index, name, mf->n);
    fail("%s: tensor %s is missing", mf->files[0].path, name);
}

static void model_files_close(ModelFiles *mf) {
    for (int i = 0; i < mf->n; i++) safetensors_close(&mf->files[i]);
    free(mf->files);
    memset(mf, 0, sizeof(*mf));
}

// Reads the model's weights from dir (model.safetensors or its shards) tensor by tensor (checking every
// shape): calls take(ctx, kind, layer, data, n) with each tensor as fp32, so a trainer can place it wherever
// its weights live.
static void checkpoint_read_model(const char *dir, const LlamaConfig *c,
                                  void (*take)(void *ctx, int kind, int layer, const float *data, size_t n), void *ctx) {
    ModelFiles mf;
    model_files_open(&mf, dir);
    void *buf = NULL;
    size_t cap = 0;  // bytes
    for (int i = 0; i < llama_num_tensors(c); i++) {
        int kind, layer;
        char name[128];
        size_t rows, cols;
        llama_tensor_at(c, i, &kind, &layer);
        llama_param_name(kind, layer, name, sizeof(name));
        llama_param_shape(c, kind, &rows, &cols);
        const SafeTensors *st = model_files_find(&mf, name);
        safetensors_check_shape(st, name, rows, cols);
        float *data = (float *)xreserve(&buf, &cap, sizeof(float) * rows * cols);
        safetensors_read_f32(st, name, data, rows * cols);
        take(ctx, kind, layer, data, rows * cols);
    }
    free(buf);
    model_files_close(&mf);
}

// ---------------------------------------------------------------------------------------------------
// What every trainer state records besides its tensors, and what a resume must match.

typedef struct {
    int64_t step;          // completed optimizer steps
    int64_t batch[5];      // --batch, --seq, ranks, micro-batches per step, --seed (they decide the data order)
    int64_t data[3];       // data position: epoch, shard, window
    int64_t optimizer[5];  // Grass (0 or 1), rank, interval, selector, side
} StateHeader;

#define STATE_HEADER_SECTIONS 4

static int state_header_sections(StateHeader *h, StateSection *sec) {
    sec[0] = (StateSection){"step", sizeof(h->step), &h->step};
    sec[1] = (StateSection){"batch_shape", sizeof(h->batch), h->batch};
    sec[2] = (StateSection){"data_position", sizeof(h->data), h->data};
    sec[3] = (StateSection){"optimizer", sizeof(h->optimizer), h->optimizer};
    return STATE_HEADER_SECTIONS;
}

// Writes the checkpoint of `step` into OUT (DESIGN §6): the weights (params, dtype and weights_fetch as
// checkpoint_write_model), config.json, and the state sections (those without data through io).
static void checkpoint_save(const char *out_dir, int step, const LlamaConfig *c, const void *params, const char *dtype,
                            const Fetcher *weights_fetch, int n, const StateSection *sec, const StateIO *io) {
    char tmp[CKPT_PATH_LEN], path[CKPT_PATH_LEN + 32];
    checkpoint_begin(out_dir, step, tmp, sizeof(tmp));
    checkpoint_write_model(tmp, c, params, dtype, weights_fetch);
    path_format(path, sizeof(path), "%s/state.bin", tmp);
    state_write(path, n, sec, io);
    checkpoint_commit(out_dir, step, tmp);
    printf("checkpoint: %s/ckpt_%08d\n", out_dir, step);
}

// Reads the state of the checkpoint in dir: checks that its batch shape and optimizer are `want`'s, then
// fills every section of sec (which must exist with exactly its size: into its data, or through io when that is
// NULL) and the header's step and data position.
static void checkpoint_load_state(const char *dir, StateHeader *h, int n, const StateSection *sec, const StateIO *io) {
    char path[CKPT_PATH_LEN + 32];
    path_format(path, sizeof(path), "%s/state.bin", dir);
    TrainerState st;
    state_open(&st, path);
    StateHeader file;  // the file's batch shape and optimizer
    int64_t *b = file.batch, *o = file.optimizer;
    state_read_section(&st, state_find(&st, "batch_shape", sizeof(h->batch)), b);
    state_read_section(&st, state_find(&st, "optimizer", sizeof(h->optimizer)), o);
    if (memcmp(b, h->batch, sizeof(h->batch)))
        fail("%s was written with --batch %lld --seq %lld, %lld ranks, %lld micro-batches per step and --seed %lld; resume with the same (another number of ranks reads other data)",
             path, (long long)b[0], (long long)b[1], (long long)b[2], (long long)b[3], (long long)b[4]);
    if (memcmp(o, h->optimizer, sizeof(h->optimizer)))
        fail("%s was written with --optimizer %s%s%s, rank %lld, interval %lld; resume with the same optimizer settings", path,
             o[0] ? "grass --grass-select " : "adamw", o[0] ? grass_selector_names[o[3] % GRASS_NUM_SELECTORS] : "",
             o[0] ? (o[4] == GRASS_SIDE_AUTO ? " --grass-side auto" : o[4] == GRASS_SIDE_ROWS ? " --grass-side rows" : " --grass-side cols") : "",
             (long long)o[1], (long long)o[2]);
    void *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        int at = state_find(&st, sec[i].name, sec[i].nbytes);
        size_t offset = 0;
        for (int part = 0, parts = state_parts(sec, i, io); part < parts; part++) {
            size_t bytes = state_part_bytes(sec, i, part, io);
            void *dst = sec[i].data ? (char *)sec[i].data + offset : xreserve(&buf, &cap, bytes);
            state_read_bytes(&st, at, offset, bytes, dst);
            if (!sec[i].data) io->store(io->ctx, i, part, dst);
            offset += bytes;
        }
        state_parts_check(sec, i, offset);
    }
    free(buf);
    state_close(&st);
}

#endif
