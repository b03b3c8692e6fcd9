/*
 * checkpoint.h: checkpoints as docs/design.md §8, shared by both trainers. A checkpoint is a directory
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
#include "dataloader.h"
#include "llama_config.h"
#include "safetensors.h"
#include "grass.h"
#include "train_config.h"
#include "tokenizer/tokenizer.h"

#define STATE_MAGIC "GRASSTAT"
#define STATE_END "GRASSEND"
// 2 adds the section "settings", 3 its RoPE scaling and tie entries, 4 reads a step's micro-batches from one window
// (dataloader.h); older files are read too, those of runs with several micro-batches a step not (their data order differs)
#define STATE_VERSION 4
#define STATE_NAME_LEN 32
#define CKPT_PATH_LEN 2048

// What a section's values must be, checked on every part read back (a resume trusts nothing in the file) and on
// every part written (no checkpoint holds a non-finite value).
enum {
    STATE_ANY,       // header counters: checked by checkpoint_load_state itself
    STATE_FINITE,    // first moments
    STATE_NONNEG,    // second moments: finite and >= 0
    STATE_POSITIVE,  // Grass's scales: finite and > 0
    STATE_INDEX,     // Grass's selection: in [0, D) of its matrix, ascending within it
};
enum { STATE_I64, STATE_F64, STATE_I32, STATE_F32, STATE_BF16 };  // element types

typedef struct {
    const char *name;
    size_t nbytes;
    const void *data;  // or NULL: moved through the trainer's StateIO, part by part
    int type, check;   // STATE_I64 ..., STATE_ANY ...
    int tensor;        // the state tensor it holds (STATE_ADAMW_M ...), -1 for the header's sections
    int optional;      // a resume goes on without it when the file lacks it
} StateSection;

// Value i of a float section's part (fp32 or bf16) as fp32.
static float state_value(const void *data, int type, size_t i) {
    if (type == STATE_BF16) {
        uint16_t b;
        memcpy(&b, (const char *)data + 2 * i, 2);
        return st_bf16_to_f32(b);
    }
    float f;
    memcpy(&f, (const char *)data + 4 * i, 4);
    return f;
}

// Whether the values of bytes [offset, offset + bytes) of section sec, in data, are what sec->check asks; when not,
// the first bad one is described in why[n]. grass: the selection's sizes, for STATE_INDEX.
static int state_part_valid(const StateSection *sec, size_t offset, const void *data, size_t bytes, const GrassPlan *grass,
                            char *why, size_t n) {
    if (sec->check == STATE_ANY) return 1;
    if (sec->check == STATE_INDEX) {
        for (size_t i = 0; i < bytes / 4; i++) {
            size_t e = offset / 4 + i;
            int kind = -1;  // the projection kind whose selections hold entry e (their offsets ascend with the kind)
            for (int k = 0; k < NUM_PARAM_KINDS; k++)
                if (llama_param_kinds[k].is_projection && e >= grass->roff[k]) kind = k;
            GrassShape sh = grass->shape[kind];
            int32_t v, prev;
            memcpy(&v, (const char *)data + 4 * i, 4);
            size_t layer = (e - grass->roff[kind]) / sh.r, j = (e - grass->roff[kind]) % sh.r;
            char name[128];
            llama_param_name(kind, (int)layer, name, sizeof(name));
            if (v < 0 || v >= sh.D) {
                snprintf(why, n, "index %d (entry %zu of %s's selection) is outside [0, %d)", v, j, name, sh.D);
                return 0;
            }
            if (j > 0 && i > 0 && (memcpy(&prev, (const char *)data + 4 * (i - 1), 4), prev > v)) {
                snprintf(why, n, "%s's selection is not ascending at entry %zu (%d after %d)", name, j, v, prev);
                return 0;
            }
        }
        return 1;
    }
    size_t esize = sec->type == STATE_BF16 ? 2 : 4;
    for (size_t i = 0; i < bytes / esize; i++) {
        float v = state_value(data, sec->type, i);
        int ok = isfinite(v) && (sec->check == STATE_FINITE || (sec->check == STATE_NONNEG ? v >= 0.0f : v > 0.0f));
        if (!ok) {
            snprintf(why, n, "value %g at element %zu (must be %s)", (double)v, offset / esize + i,
                     sec->check == STATE_FINITE ? "finite" : sec->check == STATE_NONNEG ? "finite and >= 0" : "finite and > 0");
            return 0;
        }
    }
    return 1;
}

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

// What a save needs to refuse a diverged model: its step and the newest complete checkpoint before it.
typedef struct {
    int step;
    char last[CKPT_PATH_LEN];  // checkpoint_last_good's
} SaveGuard;

// A value about to be saved is non-finite (or invalid): the run stops (the temporary directory is removed by
// fail_cleanup) and says where it can go on from.
static void save_refuse(const SaveGuard *g, const char *what, const char *why) __attribute__((noreturn));
static void save_refuse(const SaveGuard *g, const char *what, const char *why) {
    fail_status(EXIT_DIVERGED, "step %d: %s: %s; training diverged and nothing was saved; the last good checkpoint is %s", g->step,
                what, why, g->last);
}

static void state_write(const char *path, int n, const StateSection *sec, const StateIO *io, const GrassPlan *grass,
                        const SaveGuard *guard) {
    FILE *f = xfopen(path, "wb");
    uint32_t head[2] = {STATE_VERSION, (uint32_t)n};
    xfwrite(STATE_MAGIC, 8, f, path);
    xfwrite(head, sizeof(head), f, path);
    void *buf = NULL;
    size_t cap = 0;
    char why[256];
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
            const void *src = (const char *)sec[i].data + offset;
            if (!sec[i].data) {
                io->fetch(io->ctx, i, part, xreserve(&buf, &cap, bytes));
                src = buf;
            }
            if (!state_part_valid(&sec[i], offset, src, bytes, grass, why, sizeof(why)))
                save_refuse(guard, sec[i].name, why);
            xfwrite(src, bytes, f, path);
            offset += bytes;
        }
        state_parts_check(sec, i, offset);
    }
    xfwrite(STATE_END, 8, f, path);
    xfclose_synced(f, path);
    free(buf);
}

// The part of a save on the ranks other than 0 when the state is held in parts by every rank (--shard-optimizer):
// every part of the sections without data through io->fetch with no destination, in state_write's order, so that
// the gathers inside fetch meet rank 0's.
static void state_serve(int n, const StateSection *sec, const StateIO *io) {
    for (int i = 0; i < n; i++)
        for (int part = 0, parts = sec[i].data ? 0 : io->parts(io->ctx, i); part < parts; part++) io->fetch(io->ctx, i, part, NULL);
}

// An open state.bin: its sections' names and sizes, and where their bytes are, read a section or a part of one at
// a time (state_read_section, state_read_bytes), so that a trainer holds at most one part in host memory while it
// resumes.
typedef struct {
    char path[CKPT_PATH_LEN];
    FILE *f;  // open until state_close
    int version;
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
    if (head[0] < 1 || head[0] > STATE_VERSION)
        fail("%s: trainer state version %u, this build reads versions 1 to %d", path, head[0], STATE_VERSION);
    st->version = (int)head[0];
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

static int state_has(const TrainerState *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->names[i], name)) return 1;
    return 0;
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

// Removes a directory of plain files (a checkpoint); missing is fine. quiet: ignore errors (cleaning up after a
// failure), else fail naming what could not be removed.
static void dir_remove_flat(const char *path, int quiet) {
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    char f[CKPT_PATH_LEN + 256];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        path_format(f, sizeof(f), "%s/%s", path, e->d_name);
        if (unlink(f) && !quiet) fail("cannot remove %s: %s", f, strerror(errno));
    }
    closedir(d);
    if (rmdir(path) && !quiet) fail("cannot remove %s: %s", path, strerror(errno));
}

static void checkpoint_dir(char *buf, size_t n, const char *out_dir, int step) {
    path_format(buf, n, "%s/ckpt_%08d", out_dir, step);
}

// The temporary directory of the checkpoint being written: removed if the run fails before it is complete, so
// that a full disk is not left full.
static char checkpoint_pending[CKPT_PATH_LEN];
static void checkpoint_pending_remove(void) { dir_remove_flat(checkpoint_pending, 1); }

// Starts a checkpoint of `step`: creates (afresh) the temporary directory and returns its path in tmp.
static void checkpoint_begin(const char *out_dir, int step, char *tmp, size_t n) {
    mkdir_p(out_dir);
    char final_dir[CKPT_PATH_LEN];
    checkpoint_dir(final_dir, sizeof(final_dir), out_dir, step);
    path_format(tmp, n, "%s.tmp", final_dir);
    dir_remove_flat(tmp, 0);
    if (mkdir(tmp, 0755)) fail("cannot create directory %s: %s", tmp, strerror(errno));
    path_format(checkpoint_pending, sizeof(checkpoint_pending), "%s", tmp);
    fail_cleanup = checkpoint_pending_remove;
}

// Makes the checkpoint in tmp the complete checkpoint of `step` (replacing an older one of the same step).
static void checkpoint_commit(const char *out_dir, int step, const char *tmp) {
    char final_dir[CKPT_PATH_LEN], old[CKPT_PATH_LEN + 8];
    checkpoint_dir(final_dir, sizeof(final_dir), out_dir, step);
    fsync_path(tmp);
    if (path_exists(final_dir)) {
        path_format(old, sizeof(old), "%s.old", final_dir);
        dir_remove_flat(old, 0);
        if (rename(final_dir, old)) fail("cannot rename %s: %s", final_dir, strerror(errno));
        if (rename(tmp, final_dir)) fail("cannot rename %s to %s: %s", tmp, final_dir, strerror(errno));
        dir_remove_flat(old, 0);
    } else if (rename(tmp, final_dir)) {
        fail("cannot rename %s to %s: %s", tmp, final_dir, strerror(errno));
    }
    fail_cleanup = NULL;
    fsync_path(out_dir);
}

// The steps of the complete checkpoints in out_dir, ascending (*n of them; free the array). A complete checkpoint is a
// directory named exactly ckpt_NNNNNNNN: a .tmp is one being written, a .old or .del one being replaced or deleted.
static int *checkpoint_list(const char *out_dir, int *n) {
    int *steps = NULL, cap = 0;
    *n = 0;
    DIR *d = opendir(out_dir);
    if (!d) return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        int step, len = 0;
        if (sscanf(e->d_name, "ckpt_%8d%n", &step, &len) != 1 || len != 13 || e->d_name[len] != '\0' || step < 0) continue;
        if (*n == cap) steps = (int *)xrealloc(steps, sizeof(int) * (cap = cap ? 2 * cap : 16));
        int i = (*n)++;
        for (; i > 0 && steps[i - 1] > step; i--) steps[i] = steps[i - 1];
        steps[i] = step;
    }
    closedir(d);
    return steps;
}

// Deletes the complete checkpoint of `step` in out_dir: renamed out of the complete ones first, so that a crash
// halfway leaves no partial directory under a complete checkpoint's name.
static void checkpoint_delete(const char *out_dir, int step) {
    char dir[CKPT_PATH_LEN], del[CKPT_PATH_LEN + 8];
    checkpoint_dir(dir, sizeof(dir), out_dir, step);
    path_format(del, sizeof(del), "%s.del", dir);
    dir_remove_flat(del, 0);
    if (rename(dir, del)) fail("cannot rename %s to %s: %s", dir, del, strerror(errno));
    dir_remove_flat(del, 0);
}

// --keep-last: deletes all but the newest `keep` complete checkpoints (0: keeps all).
static void checkpoint_prune(const char *out_dir, int keep) {
    int n, *steps = checkpoint_list(out_dir, &n);
    for (int i = 0; keep > 0 && i < n - keep; i++) {
        checkpoint_delete(out_dir, steps[i]);
        printf("checkpoint: deleted %s/ckpt_%08d (--keep-last %d)\n", out_dir, steps[i], keep);
    }
    free(steps);
}

// A run that starts at step `start` into out_dir must not find newer checkpoints there: they belong to another
// history, and a later --resume auto would take them. With --discard-newer they are deleted, else the run is refused.
static void checkpoint_check_branch(const char *out_dir, int start, int discard) {
    int n, *steps = checkpoint_list(out_dir, &n);
    int newer = n > 0 && steps[n - 1] > start ? steps[n - 1] : -1;
    if (newer >= 0 && !discard)
        fail("--out %s holds checkpoints up to step %d, newer than step %d where this run starts: continuing would mix two runs "
             "(--resume auto continues the newest; add --discard-newer to delete the newer checkpoints and start from step %d)",
             out_dir, newer, start, start);
    for (int i = 0; newer >= 0 && i < n; i++) {
        if (steps[i] <= start) continue;
        checkpoint_delete(out_dir, steps[i]);
        printf("checkpoint: deleted %s/ckpt_%08d, newer than step %d (--discard-newer)\n", out_dir, steps[i], start);
    }
    free(steps);
}

// One run at a time in out_dir: an advisory lock on out_dir/.lock (fcntl, so it also holds on NFS), held until the
// process ends (the kernel releases it on any exit, a crash or SIGKILL included). The file names the owner.
static void out_dir_lock(const char *out_dir) {
    char path[CKPT_PATH_LEN + 16], owner[256] = "";
    mkdir_p(out_dir);
    path_format(path, sizeof(path), "%s/.lock", out_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot open %s: %s", path, strerror(errno));
    struct flock lk;
    memset(&lk, 0, sizeof(lk));
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &lk)) {
        if (errno != EACCES && errno != EAGAIN) fail("cannot lock %s: %s", path, strerror(errno));
        ssize_t got = pread(fd, owner, sizeof(owner) - 1, 0);
        owner[got > 0 ? got : 0] = '\0';
        owner[strcspn(owner, "\n")] = '\0';
        fail("--out %s is in use by another run (%s); wait for it to end or choose another --out", out_dir,
             owner[0] ? owner : "its owner is unknown");
    }
    char host[128] = "?";
    gethostname(host, sizeof(host) - 1);
    int len = snprintf(owner, sizeof(owner), "pid %ld on %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) || pwrite(fd, owner, (size_t)len, 0) != len) fail("cannot write %s: %s", path, strerror(errno));
}

// The newest complete checkpoint in out_dir: returns its step and path, or -1 when there is none.
static int checkpoint_find_latest(const char *out_dir, char *path, size_t n) {
    int count, *steps = checkpoint_list(out_dir, &count);
    int best = count > 0 ? steps[count - 1] : -1;
    free(steps);
    if (best >= 0) checkpoint_dir(path, n, out_dir, best);
    return best;
}

// Where a diverged run can go on from, for its error line: the newest complete checkpoint in out_dir, or why there is
// none.
static void checkpoint_last_good(const char *out_dir, char *buf, size_t n) {
    if (!out_dir[0]) snprintf(buf, n, "none (no --out)");
    else if (checkpoint_find_latest(out_dir, buf, n) < 0) snprintf(buf, n, "none (no checkpoint in --out)");
}

// A weight about to be saved must be finite: checks the tensors with data before the writer runs, and those the
// writer fetches (the GPU trainer's) as they arrive, through this wrapper of the trainer's Fetcher.
typedef struct {
    const Fetcher *inner;
    const StTensorOut *t;
    const SaveGuard *guard;
} FiniteFetch;

static void weights_check(const StTensorOut *t, const void *data, const SaveGuard *guard) {
    StateSection sec = {t->name, 0, NULL, !strcmp(t->dtype, "BF16") ? STATE_BF16 : STATE_F32, STATE_FINITE, -1, 0};
    char why[256];
    size_t bytes = st_numel(t->ndim, t->shape) * st_dtype_size(t->dtype);
    if (!state_part_valid(&sec, 0, data, bytes, NULL, why, sizeof(why))) save_refuse(guard, t->name, why);
}

static void finite_fetch(void *ctx, int i, void *dst) {
    FiniteFetch *f = (FiniteFetch *)ctx;
    f->inner->fetch(f->inner->ctx, i, dst);
    weights_check(&f->t[i], dst, f->guard);
}

// Writes model.safetensors (HF names) and config.json for the flat parameter buffer, whose elements are
// dtype "F32" (float) or "BF16" (the bits of bfloat16, as the GPU trainer stores weights); with params NULL,
// tensor i (llama_tensor_at's order) comes from fetch. Every weight must be finite (else guard refuses the save).
static void checkpoint_write_model(const char *dir, const LlamaConfig *c, const void *params, const char *dtype,
                                   const Fetcher *fetch, const SaveGuard *guard) {
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
    FiniteFetch checked = {fetch, t, guard};
    Fetcher checked_fetch = {finite_fetch, &checked};
    for (int i = 0; params && i < n; i++) weights_check(&t[i], t[i].data, guard);
    const char *meta[2] = {"format", "pt"};
    char path[CKPT_PATH_LEN + 32];
    path_format(path, sizeof(path), "%s/model.safetensors", dir);
    safetensors_write(path, n, t, 1, meta, params ? NULL : &checked_fetch);
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

// Refuses files that hold a tensor the model does not use (a bias, another module, an lm_head that config.json ties
// to the embedding): loading the rest would give another function than the checkpoint's, silently.
static void model_files_check_unused(const ModelFiles *mf, const LlamaConfig *c) {
    int n = llama_num_tensors(c);
    char (*names)[128] = (char (*)[128])xcalloc(n, 128);
    for (int i = 0; i < n; i++) {
        int kind, layer;
        llama_tensor_at(c, i, &kind, &layer);
        llama_param_name(kind, layer, names[i], 128);
    }
    for (int f = 0; f < mf->n; f++)
        for (int e = 0; e < mf->files[f].n; e++) {
            const char *name = mf->files[f].entries[e].name;
            int used = 0;
            for (int i = 0; i < n && !used; i++) used = !strcmp(names[i], name);
            if (used) continue;
            if (!llama_param_present(c, PARAM_LM_HEAD) && !strcmp(name, llama_param_kinds[PARAM_LM_HEAD].hf_name))
                fail("%s holds %s, but its config.json ties the lm_head to model.embed_tokens.weight "
                     "(tie_word_embeddings true): remove the tensor or set tie_word_embeddings false", mf->files[f].path, name);
            fail("%s holds tensor %s, which grass.c's LLaMA does not have (no biases or other modules): refusing to load "
                 "a model whose function would change", mf->files[f].path, name);
        }
    free(names);
}

// Reads the model's weights from dir (model.safetensors or its shards) tensor by tensor (checking every
// shape): calls take(ctx, kind, layer, data, n) with each tensor as fp32, so a trainer can place it wherever
// its weights live. With part given, only elements [lo, hi) that part(ctx, kind, layer, n, &lo, &hi) names are read
// (what a rank of --shard-weights keeps), and take must read no others of data.
static void checkpoint_read_model_parts(const char *dir, const LlamaConfig *c,
                                        void (*take)(void *ctx, int kind, int layer, const float *data, size_t n),
                                        void (*part)(void *ctx, int kind, int layer, size_t n, size_t *lo, size_t *hi), void *ctx) {
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
        size_t lo = 0, hi = rows * cols;
        if (part) part(ctx, kind, layer, rows * cols, &lo, &hi);
        safetensors_read_f32_range(st, name, data, rows * cols, lo, hi);
        take(ctx, kind, layer, data, rows * cols);
    }
    free(buf);
    model_files_check_unused(&mf, c);
    model_files_close(&mf);
}

static void checkpoint_read_model(const char *dir, const LlamaConfig *c,
                                  void (*take)(void *ctx, int kind, int layer, const float *data, size_t n), void *ctx) {
    checkpoint_read_model_parts(dir, c, take, NULL, ctx);
}

// ---------------------------------------------------------------------------------------------------
// The trainer state: what every state.bin records besides its tensors, what a resume must match, and the
// sections in their order. Both trainers build it here, so that a checkpoint of one resumes in the other.

// The settings a run may not change when it resumes: the model config (an edited config.json would otherwise
// change the run silently) and the optimizer's hyperparameters (the moments were built with them).
// Version 2 files hold the first STATE_SETTINGS_V2 of them; the rest are then those of a model without RoPE scaling or
// tied embeddings.
#define STATE_SETTINGS 20
#define STATE_SETTINGS_V2 14
static const char *state_setting_names[STATE_SETTINGS] = {
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "vocab_size",
    "max_position_embeddings", "rms_norm_eps", "rope_theta", "--beta1", "--beta2", "--eps", "--weight-decay",
    "--grass-alpha", "tie_word_embeddings", "rope_scaling.type", "rope_scaling.factor", "rope_scaling.low_freq_factor",
    "rope_scaling.high_freq_factor", "rope_scaling.original_max_position_embeddings"};
static int state_setting_is_model(int i) { return i < 9 || i >= STATE_SETTINGS_V2; }

typedef struct {
    int64_t step;          // completed optimizer steps
    int64_t batch[5];      // --batch, --seq, ranks, micro-batches per step, --seed (they decide the data order)
    int64_t data[3];       // data position: epoch, shard, window
    int64_t optimizer[5];  // Grass (0 or 1), rank, interval, selector, side
    double settings[STATE_SETTINGS];  // state_setting_names'
} StateHeader;

#define STATE_HEADER_SECTIONS 5

// The header of a run at `step` (the model's sizes in cfg, not a padded copy), whose data loader is at `data`.
static StateHeader state_header_make(const TrainOptions *opt, const LlamaConfig *cfg, const GrassPlan *grass, int step,
                                     const DataLoader *data, int world, int accum) {
    StateHeader h = {step, {opt->batch, opt->seq, world, accum, opt->seed}, {data->epoch, data->shard_pos, data->window_pos},
                     {grass->enabled, grass->rank, grass->interval, grass->selector, grass->side},
                     {(double)cfg->dim, (double)cfg->n_layers, (double)cfg->n_heads, (double)cfg->n_kv_heads,
                      (double)cfg->ffn_dim, (double)cfg->vocab_size, (double)cfg->max_seq, cfg->norm_eps, cfg->rope_theta,
                      opt->beta1, opt->beta2, opt->eps, opt->weight_decay, grass->enabled ? grass->alpha : 0.0,
                      (double)cfg->tie_embeddings, (double)cfg->rope.type, cfg->rope.factor, cfg->rope.low_freq_factor,
                      cfg->rope.high_freq_factor, (double)cfg->rope.original_max_seq}};
    return h;
}

// The tensors of the state, after the header's sections, in this order. STATE_MASTER is the fp32 copy of the weights
// that a trainer whose weights (model.safetensors) are bf16 keeps: the GPU trainer's master weights.
enum { STATE_ADAMW_M, STATE_ADAMW_V, STATE_GRASS_SIGMA, STATE_GRASS_RHO, STATE_GRASS_M, STATE_GRASS_V, STATE_MASTER, STATE_TENSORS };
#define STATE_MAX_SECTIONS (STATE_HEADER_SECTIONS + STATE_TENSORS)

// The sections of a trainer state into sec (STATE_MAX_SECTIONS room); returns their number. adamw: the elements
// with AdamW moments; bf16: the moments are bf16 (their own names); master: the elements of the fp32 master weights in
// the model's layout (0: none; optional on resume: a checkpoint without them resumes from its weights); data: the
// STATE_TENSORS host buffers in the order above, or NULL (the section moves through a StateIO).
static int state_sections(StateHeader *h, StateSection *sec, size_t adamw, const GrassPlan *grass, int bf16, size_t master,
                          void *const *data) {
    int n = 0, mt = bf16 ? STATE_BF16 : STATE_F32;
    size_t mb = bf16 ? 2 : 4;
    sec[n++] = (StateSection){"step", sizeof(h->step), &h->step, STATE_I64, STATE_ANY, -1, 0};
    sec[n++] = (StateSection){"batch_shape", sizeof(h->batch), h->batch, STATE_I64, STATE_ANY, -1, 0};
    sec[n++] = (StateSection){"data_position", sizeof(h->data), h->data, STATE_I64, STATE_ANY, -1, 0};
    sec[n++] = (StateSection){"optimizer", sizeof(h->optimizer), h->optimizer, STATE_I64, STATE_ANY, -1, 0};
    sec[n++] = (StateSection){"settings", sizeof(h->settings), h->settings, STATE_F64, STATE_ANY, -1, 0};
    sec[n++] = (StateSection){bf16 ? "adamw.m.bf16" : "adamw.m", adamw * mb, data[STATE_ADAMW_M], mt, STATE_FINITE, STATE_ADAMW_M, 0};
    sec[n++] = (StateSection){bf16 ? "adamw.v.bf16" : "adamw.v", adamw * mb, data[STATE_ADAMW_V], mt, STATE_NONNEG, STATE_ADAMW_V, 0};
    if (grass->enabled) {
        sec[n++] = (StateSection){"grass.sigma", sizeof(int32_t) * grass->nsel, data[STATE_GRASS_SIGMA], STATE_I32, STATE_INDEX,
                                  STATE_GRASS_SIGMA, 0};
        sec[n++] = (StateSection){"grass.rho", sizeof(float) * grass->nsel, data[STATE_GRASS_RHO], STATE_F32, STATE_POSITIVE,
                                  STATE_GRASS_RHO, 0};
        sec[n++] = (StateSection){bf16 ? "grass.m.bf16" : "grass.m", grass->nstate * mb, data[STATE_GRASS_M], mt, STATE_FINITE,
                                  STATE_GRASS_M, 0};
        sec[n++] = (StateSection){bf16 ? "grass.v.bf16" : "grass.v", grass->nstate * mb, data[STATE_GRASS_V], mt, STATE_NONNEG,
                                  STATE_GRASS_V, 0};
    }
    if (master) sec[n++] = (StateSection){"master.f32", master * 4, data[STATE_MASTER], STATE_F32, STATE_FINITE, STATE_MASTER, 1};
    return n;
}

// Writes len bytes to path, flushed to disk.
static void file_write_synced(const char *path, const void *bytes, size_t len) {
    FILE *f = xfopen(path, "wb");
    xfwrite(bytes, len, f, path);
    xfclose_synced(f, path);
}

// The tokenizer of --tokenizer into checkpoint dir under the name transformers looks for (tokenizer.json, or
// tokenizer.model for SentencePiece), with the tokenizer_config.json and special_tokens_map.json beside it, so that
// AutoTokenizer.from_pretrained loads the checkpoint as it loads a release.
static void checkpoint_write_tokenizer(const char *dir, const char *tokenizer) {
    char src[CKPT_PATH_LEN + 64], dst[CKPT_PATH_LEN + 64], from[CKPT_PATH_LEN];
    size_t len;
    char *bytes = file_read_all(tokenizer, &len);
    int json = tokenizer_bytes_are_json((const unsigned char *)bytes, len);
    path_format(dst, sizeof(dst), "%s/%s", dir, json ? "tokenizer.json" : "tokenizer.model");
    file_write_synced(dst, bytes, len);
    free(bytes);
    path_format(from, sizeof(from), "%s", tokenizer);
    char *slash = strrchr(from, '/');
    if (slash) slash[1] = '\0';
    else from[0] = '\0';
    const char *beside[2] = {"tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 2; i++) {
        path_format(src, sizeof(src), "%s%s", from, beside[i]);
        path_format(dst, sizeof(dst), "%s/%s", dir, beside[i]);
        if (!path_exists(src)) continue;
        bytes = file_read_all(src, &len);
        file_write_synced(dst, bytes, len);
        free(bytes);
    }
}

// generation_config.json: the special tokens of config.json, so that model.generate stops where the model's end is.
static void checkpoint_write_generation_config(const char *dir, const LlamaConfig *c) {
    char path[CKPT_PATH_LEN + 32];
    path_format(path, sizeof(path), "%s/generation_config.json", dir);
    FILE *f = xfopen(path, "w");
    char eos[LLAMA_MAX_EOS * 12 + 8];
    llama_eos_json(c, eos, sizeof(eos));
    fprintf(f, "{\n");
    if (c->bos_id >= 0) fprintf(f, "  \"bos_token_id\": %d,\n", c->bos_id);
    if (c->n_eos) fprintf(f, "  \"eos_token_id\": %s,\n", eos);
    fprintf(f, "  \"do_sample\": false\n}\n");
    xfclose_synced(f, path);
}

// Writes the checkpoint of `step` into --out (docs/design.md §8): the weights (params, dtype and weights_fetch as
// checkpoint_write_model), config.json, and the state sections (those without data through io). Every value is
// checked on its way to disk: a non-finite one stops the run (EXIT_DIVERGED) and nothing of this checkpoint stays.
// Then --keep-last deletes the oldest checkpoints beyond it.
static void checkpoint_save(const TrainOptions *opt, int step, const LlamaConfig *c, const void *params, const char *dtype,
                            const Fetcher *weights_fetch, int n, const StateSection *sec, const StateIO *io,
                            const GrassPlan *grass) {
    char tmp[CKPT_PATH_LEN], path[CKPT_PATH_LEN + 32];
    SaveGuard guard;
    guard.step = step;
    checkpoint_last_good(opt->out, guard.last, sizeof(guard.last));
    checkpoint_begin(opt->out, step, tmp, sizeof(tmp));
    checkpoint_write_model(tmp, c, params, dtype, weights_fetch, &guard);
    checkpoint_write_generation_config(tmp, c);
    if (opt->tokenizer[0]) checkpoint_write_tokenizer(tmp, opt->tokenizer);
    path_format(path, sizeof(path), "%s/state.bin", tmp);
    state_write(path, n, sec, io, grass, &guard);
    checkpoint_commit(opt->out, step, tmp);
    printf("checkpoint: %s/ckpt_%08d\n", opt->out, step);
    checkpoint_prune(opt->out, opt->keep_last);
}

// The step a checkpoint directory's name gives (ckpt_NNNNNNNN), or -1 for another name.
static int checkpoint_dir_step(const char *dir) {
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    int step, len = 0;
    if (sscanf(base, "ckpt_%8d%n", &step, &len) != 1 || len != 13 || (base[len] && strcmp(base + len, "/"))) return -1;
    return step;
}

// Checks the header the file holds (file, of state.bin version `version`) against the run's (want): counters in range,
// enums known, the same data order (--seq, --seed, tokens per step: the number of ranks and --batch may differ), optimizer
// and settings. Fails naming the file and what differs.
static void state_header_check(const char *path, const char *dir, const StateHeader *file, const StateHeader *want, int version) {
    int settings = version >= 2;
    const int64_t *b = file->batch, *o = file->optimizer;
    int named = checkpoint_dir_step(dir);
    if (file->step < 0 || file->step > INT32_MAX) fail("%s: corrupt trainer state (step %lld)", path, (long long)file->step);
    if (named >= 0 && file->step != named)
        fail("%s: the state is at step %lld but the directory's name says step %d", path, (long long)file->step, named);
    for (int i = 0; i < 3; i++)
        if (file->data[i] < 0 || file->data[i] > INT32_MAX)
            fail("%s: corrupt trainer state (data position %lld %lld %lld)", path, (long long)file->data[0],
                 (long long)file->data[1], (long long)file->data[2]);
    int grass_known = o[1] >= 1 && o[1] <= INT32_MAX && o[2] >= 1 && o[2] <= INT32_MAX && o[3] >= 0 &&
                      o[3] < GRASS_NUM_SELECTORS && o[4] >= GRASS_SIDE_AUTO && o[4] <= GRASS_SIDE_COLS;
    if (o[0] < 0 || o[0] > 1 || (o[0] == 1 && !grass_known))
        fail("%s: corrupt trainer state (optimizer %lld, rank %lld, interval %lld, selector %lld, side %lld)", path,
             (long long)o[0], (long long)o[1], (long long)o[2], (long long)o[3], (long long)o[4]);
    const int64_t *w = want->batch;
    if (b[0] < 1 || b[1] < 1 || b[2] < 1 || b[3] < 1 || b[0] > INT32_MAX || b[1] > INT32_MAX || b[2] > INT32_MAX || b[3] > INT32_MAX)
        fail("%s: corrupt trainer state (batch %lld, seq %lld, ranks %lld, micro-batches %lld)", path, (long long)b[0],
             (long long)b[1], (long long)b[2], (long long)b[3]);
    long long file_tokens = b[0] * b[1] * b[2] * b[3], run_tokens = w[0] * w[1] * w[2] * w[3];
    if (b[1] != w[1] || b[4] != w[4] || file_tokens != run_tokens)
        fail("%s was written with --seq %lld, --seed %lld and %lld tokens per step (--batch %lld x %lld ranks x %lld micro-batches); "
             "this run has --seq %lld, --seed %lld and %lld tokens per step: resume with the same --seq, --seed and --total-batch "
             "(they define the data order; --batch and the number of ranks may change)", path, (long long)b[1], (long long)b[4],
             file_tokens, (long long)b[0], (long long)b[2], (long long)b[3], (long long)w[1], (long long)w[4], run_tokens);
    if (o[0] == 1 && b[0] * b[2] != w[0] * w[2])
        printf("resume: a Grass refresh selects from the step's first micro-batch on every rank: %lld sequences here, %lld in "
               "the run that wrote %s, so the selections differ from an uninterrupted run's\n", (long long)(w[0] * w[2]),
               (long long)(b[0] * b[2]), path);
    if (version < 4 && b[3] > 1)
        fail("%s was written by an older grass.c whose runs with %lld micro-batches a step read other data: resume it with the "
             "version that wrote it", path, (long long)b[3]);
    if (memcmp(o, want->optimizer, sizeof(want->optimizer)))
        fail("%s was written with --optimizer %s%s%s, rank %lld, interval %lld; resume with the same optimizer settings", path,
             o[0] ? "grass --grass-select " : "adamw", o[0] ? grass_selector_names[o[3]] : "",
             o[0] ? (o[4] == GRASS_SIDE_AUTO ? " --grass-side auto" : o[4] == GRASS_SIDE_ROWS ? " --grass-side rows" : " --grass-side cols") : "",
             (long long)o[1], (long long)o[2]);
    for (int i = 0; settings && i < STATE_SETTINGS; i++)
        if (!(file->settings[i] == want->settings[i]))  // a NaN in the file differs too
            fail("%s was written with %s %.7g, this run has %.7g (%s); resume with the checkpoint's", path,
                 state_setting_names[i], file->settings[i], want->settings[i],
                 state_setting_is_model(i) ? "was config.json edited, or --model or a size flag given?"
                                           : "an optimizer setting the moments depend on");
}

// Reads the state of the checkpoint in dir: checks its header against h's (batch shape, optimizer, settings), then
// fills every section of sec (which must exist with exactly its size: into its data, or through io when that is
// NULL), checking every value before the trainer takes it, and the header's step and data position.
static void checkpoint_load_state(const char *dir, StateHeader *h, int n, const StateSection *sec, const StateIO *io,
                                  const GrassPlan *grass) {
    char path[CKPT_PATH_LEN + 32], why[256];
    path_format(path, sizeof(path), "%s/state.bin", dir);
    TrainerState st;
    state_open(&st, path);
    StateHeader file;
    memcpy(file.settings, h->settings, sizeof(file.settings));
    state_read_section(&st, state_find(&st, "step", sizeof(file.step)), &file.step);
    state_read_section(&st, state_find(&st, "batch_shape", sizeof(file.batch)), file.batch);
    state_read_section(&st, state_find(&st, "data_position", sizeof(file.data)), file.data);
    state_read_section(&st, state_find(&st, "optimizer", sizeof(file.optimizer)), file.optimizer);
    if (st.version >= 3) state_read_section(&st, state_find(&st, "settings", sizeof(file.settings)), file.settings);
    else if (st.version == 2) {
        memset(file.settings + STATE_SETTINGS_V2, 0, sizeof(double) * (STATE_SETTINGS - STATE_SETTINGS_V2));
        state_read_section(&st, state_find(&st, "settings", sizeof(double) * STATE_SETTINGS_V2), file.settings);
    } else printf("resume: %s predates the settings record: its model config and optimizer settings are not checked\n", path);
    state_header_check(path, dir, &file, h, st.version);
    void *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < n; i++) {
        if (st.version < 3 && !strcmp(sec[i].name, "settings")) continue;
        if (sec[i].optional && !state_has(&st, sec[i].name)) {
            printf("resume: %s has no section %s: it starts from the checkpoint's weights\n", path, sec[i].name);
            continue;
        }
        int at = state_find(&st, sec[i].name, sec[i].nbytes);
        size_t offset = 0;
        for (int part = 0, parts = state_parts(sec, i, io); part < parts; part++) {
            size_t bytes = state_part_bytes(sec, i, part, io);
            void *dst = sec[i].data ? (char *)sec[i].data + offset : xreserve(&buf, &cap, bytes);
            state_read_bytes(&st, at, offset, bytes, dst);
            if (!state_part_valid(&sec[i], offset, dst, bytes, grass, why, sizeof(why)))
                fail("%s: section %s: %s (a corrupt or edited file)", path, sec[i].name, why);
            if (!sec[i].data) io->store(io->ctx, i, part, dst);
            offset += bytes;
        }
        state_parts_check(sec, i, offset);
    }
    free(buf);
    state_close(&st);
}

#endif
