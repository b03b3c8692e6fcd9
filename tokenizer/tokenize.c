/*
 * tokenize.c: the `tokenize` tool. Turns text files into the token shards the trainers read (llm.c's
 * format, docs/design.md §8), using a SentencePiece BPE model or a Hugging Face tokenizer.json (byte-level BPE)
 * through tokenizer/tokenizer.h; also encodes or
 * decodes stdin for quick checks. Documents are encoded in parallel (OpenMP) and written in input order,
 * so the shards are the same for any number of threads.
 */
#include <dirent.h>
#include <omp.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "common.h"
#include "tokenizer/tokenizer.h"

#define DEFAULT_VAL_FRACTION 0.1
#define DEFAULT_SHARD_TOKENS 100000000L
#define BATCH_BYTES_PER_THREAD (16u << 20)   // text encoded between two writes, per thread

static void usage(void) {
    printf(
        "usage: tokenize --model MODEL --out DIR [--overwrite] [--val-fraction F] [--shard-tokens N] [--threads N]\n"
        "                INPUT...\n"
        "       tokenize --model MODEL --encode     stdin as one text -> its token ids on one line\n"
        "       tokenize --model MODEL --decode     token ids on stdin (whitespace-separated) -> the text\n"
        "\n"
        "Encodes text with MODEL, either a SentencePiece BPE model (such as LLaMA-2's tokenizer.model), exactly\n"
        "as the sentencepiece library does, or a Hugging Face tokenizer.json of a byte-level BPE model (such as\n"
        "Llama-3's), exactly as the tokenizers library does; the file's content tells which. Writes llm.c\n"
        "token shards, DIR/train_000000.bin, ... and DIR/val_000000.bin, ...: a header of 256 int32 (magic\n"
        "20240520, version 1, token count) then uint16 tokens (magic 20240801, version 7, uint32 tokens when\n"
        "the vocabulary exceeds 65535 pieces, as Llama-3's does).\n"
        "\n"
        "options:\n"
        "  --model MODEL         SentencePiece .model or tokenizer.json (required); a tokenizer.json takes BOS\n"
        "                        and EOS from tokenizer_config.json beside it, else BOS from its post-processor\n"
        "  --out DIR             output directory, created if missing. The shards are written into\n"
        "                        .NAME.tokenize-PID beside it and moved into DIR only when the run is\n"
        "                        complete (a failed run removes that directory, a killed one leaves it),\n"
        "                        so DIR never holds a mix of old, new and partial shards. Other files in\n"
        "                        DIR, and the shards of a split not written now, are kept\n"
        "  --overwrite           replace the shards DIR already holds of a split written now (train unless\n"
        "                        F is 1, val unless F is 0); without it such a DIR is refused\n"
        "  --val-fraction F      fraction of the input that goes to validation, in [0, 1] (default %g)\n"
        "  --shard-tokens N      tokens per shard, the last shard holds the rest (default %ld)\n"
        "  --threads N           encoding threads (default: every core, %d here)\n"
        "  --encode              encode stdin (no BOS, like the libraries' plain encode) and print the ids\n"
        "  --decode              decode the ids on stdin and print the text\n"
        "  --help                print this and exit\n"
        "\n"
        "INPUT: text files, directories (walked recursively in name order, names starting with '.' skipped)\n"
        "or - for stdin. Every file is one document, unless it contains NUL bytes: NUL separates documents\n"
        "(so a program can stream many documents through stdin). Empty documents are skipped. Every document\n"
        "starts with BOS (no EOS). Documents keep the order of the inputs.\n"
        "\n"
        "Validation split: the inputs are taken as one stream of bytes in that order, and the last\n"
        "F of its bytes go to validation. Where the cut falls inside a document, that document is split\n"
        "after the first newline at or after the cut, and both parts are documents (each starts with BOS);\n"
        "so --val-fraction 0.1 on a single file (TinyShakespeare) gives its last tenth, cut at a line.\n"
        "\n"
        "Invalid UTF-8 is encoded as U+FFFD: with a SentencePiece model each byte that starts no valid\n"
        "character, as sentencepiece does; with a tokenizer.json each maximal invalid sequence, as the text\n"
        "reaches the tokenizers library from Python's bytes.decode(errors=\"replace\"). tokenize prints a\n"
        "warning with the count and the first file where it happened.\n"
        "\n"
        "Regular files are read one at a time. Stdin and pipes are read into memory first when F is\n"
        "between 0 and 1 (the cut needs the total size); with F = 0 or 1 they are streamed, so a corpus of\n"
        "any size can be piped in, and the two splits can come from two runs into the same DIR:\n"
        "  produce_val_docs | tokenize --model M --out DIR --val-fraction 1 -\n"
        "  produce_train_docs | tokenize --model M --out DIR --val-fraction 0 -\n",
        DEFAULT_VAL_FRACTION, DEFAULT_SHARD_TOKENS, omp_get_num_procs());
}

// ----------------------------------------------------------------------------------------------------------
// inputs: the list of files, in order, with their sizes

typedef struct {
    char *path;    // "-" for stdin
    char *data;    // stdin and pipes read at start; NULL for regular files (read in turn) and streams
    size_t size;
    int stream;    // stdin or a pipe read in chunks as the documents are encoded
} Input;

typedef struct {
    Input *items;
    size_t n, cap;
} InputList;

static void inputs_add(InputList *l, const char *path, char *data, size_t size, int stream) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->items = (Input *)realloc(l->items, l->cap * sizeof(Input));
        if (!l->items) fail("out of host memory listing the inputs");
    }
    l->items[l->n].path = xstrdup(path);
    l->items[l->n].data = data;
    l->items[l->n].size = size;
    l->items[l->n].stream = stream;
    l->n++;
}

static char *stream_read_all(FILE *f, const char *name, size_t *len) {
    size_t cap = 1 << 20, n = 0;
    char *buf = (char *)xmalloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = (char *)realloc(buf, cap);
            if (!buf) fail("out of host memory reading %s", name);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) fail("cannot read %s: %s", name, strerror(errno));
    *len = n;
    return buf;
}

// Opens an input named on the command line that is not a regular file: a pipe such as <(command).
static FILE *pipe_open(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail("cannot open %s (for reading): %s", path, strerror(errno));
    return f;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Stdin ("-") or a pipe: streamed where no validation cut needs the total size, else read into memory now.
static void inputs_add_pipe(InputList *l, const char *path, int stream) {
    if (stream) {
        inputs_add(l, path, NULL, 0, 1);
        return;
    }
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : pipe_open(path);
    size_t len;
    char *data = stream_read_all(f, is_stdin ? "stdin" : path, &len);
    if (!is_stdin) fclose(f);
    inputs_add(l, path, data, len, 0);
}

// Adds the files of an input named on the command line (named) or found in a directory.
static void inputs_expand(InputList *l, const char *path, int named, int stream) {
    if (named && strcmp(path, "-") == 0) {
        inputs_add_pipe(l, path, stream);
        return;
    }
    struct stat st;
    if (stat(path, &st) != 0) fail("cannot read input %s: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        inputs_add(l, path, NULL, (size_t)st.st_size, 0);
    } else if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) fail("cannot read directory %s: %s", path, strerror(errno));
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                names = (char **)realloc(names, cap * sizeof(char *));
                if (!names) fail("out of host memory listing %s", path);
            }
            size_t len = strlen(path) + strlen(e->d_name) + 2;
            names[n] = (char *)xmalloc(len);
            snprintf(names[n], len, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", e->d_name);
            n++;
        }
        closedir(d);
        qsort(names, n, sizeof(char *), compare_names);
        for (size_t i = 0; i < n; i++) {
            inputs_expand(l, names[i], 0, stream);
            free(names[i]);
        }
        free(names);
    } else if (named) {   // a pipe named on the command line, such as <(command)
        inputs_add_pipe(l, path, stream);
    }
}

// ----------------------------------------------------------------------------------------------------------
// output: llm.c token shards

typedef struct {
    const char *dir, *split;   // split: "train" or "val"
    long shard_tokens;
    int wide;                  // uint32 tokens
    FILE *f;
    char path[4096];
    int n_shards;
    long in_shard;             // tokens in the open shard
    long long total;
    unsigned char *buf;
} ShardWriter;

static void shard_path(char *out, size_t cap, const char *dir, const char *split, int index) {
    if ((size_t)snprintf(out, cap, "%s/%s_%06d.bin", dir, split, index) >= cap) fail("output path in %s is too long", dir);
}

static void shard_close(ShardWriter *w) {
    if (!w->f) return;
    int32_t header[256];
    memset(header, 0, sizeof(header));
    header[0] = w->wide ? 20240801 : 20240520;
    header[1] = w->wide ? 7 : 1;
    header[2] = (int32_t)w->in_shard;
    if (fseek(w->f, 0, SEEK_SET) != 0) fail("cannot seek in %s: %s", w->path, strerror(errno));
    xfwrite(header, sizeof(header), w->f, w->path);
    // on disk before the directory is moved into place, so a crash cannot leave a complete-looking shard empty
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) fail("cannot write %s: %s", w->path, strerror(errno));
    if (fclose(w->f) != 0) fail("cannot write %s: %s", w->path, strerror(errno));
    w->f = NULL;
}

static void shard_write(ShardWriter *w, const int *ids, size_t n) {
    size_t width = w->wide ? 4 : 2;
    while (n > 0) {
        if (!w->f) {
            shard_path(w->path, sizeof(w->path), w->dir, w->split, w->n_shards++);
            w->f = xfopen(w->path, "wb");
            unsigned char zero[1024] = {0};
            xfwrite(zero, sizeof(zero), w->f, w->path);   // the header, filled in when the shard closes
            w->in_shard = 0;
        }
        size_t k = (size_t)(w->shard_tokens - w->in_shard);
        if (k > n) k = n;
        if (k > (1u << 20)) k = 1u << 20;
        for (size_t i = 0; i < k; i++) {
            uint32_t v = (uint32_t)ids[i];
            w->buf[width * i] = (unsigned char)v;
            w->buf[width * i + 1] = (unsigned char)(v >> 8);
            if (w->wide) {
                w->buf[width * i + 2] = (unsigned char)(v >> 16);
                w->buf[width * i + 3] = (unsigned char)(v >> 24);
            }
        }
        xfwrite(w->buf, width * k, w->f, w->path);
        w->in_shard += (long)k;
        w->total += (long long)k;
        ids += k;
        n -= k;
        if (w->in_shard == w->shard_tokens) shard_close(w);
    }
}

// The output directory. Shards are written into a new directory beside DIR, PARENT/.NAME.tokenize-PID, and
// only a complete run moves it into place: DIR then holds the new shards of the splits written and everything
// else it held before (the shards of a split not written, other files), and at no moment a mix of old, new and
// partial shards. A run that fails removes its directory; one that is killed leaves it, never touching DIR.
typedef struct {
    char dir[4096];     // DIR, without trailing slashes
    char tmp[4200];     // where the shards are written
    char name[4096];    // DIR's last component
    int splits[2];      // train, val: whether this run writes the split (and so replaces DIR's shards of it)
} Output;

static Output *output_active;   // removed by fail_hook when a run fails

// Whether a file name is a shard of split k (0 train, 1 val): SPLIT_NNNNNN.bin.
static int output_is_shard(const char *name, int k) {
    const char *split = k ? "val_" : "train_";
    size_t n = strlen(split), len = strlen(name);
    if (strncmp(name, split, n) || len != n + 10 || strcmp(name + len - 4, ".bin")) return 0;
    for (size_t i = n; i < len - 4; i++)
        if (name[i] < '0' || name[i] > '9') return 0;
    return 1;
}

static int output_is_written_shard(const Output *o, const char *name) {
    return (o->splits[0] && output_is_shard(name, 0)) || (o->splits[1] && output_is_shard(name, 1));
}

static void output_path(char *buf, size_t cap, const char *dir, const char *name) {
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, name) >= cap) fail("path too long: %s/%s", dir, name);
}

// Removes a directory of files, as far as it can; returns 0 where something is left.
static int output_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    char path[8400];
    int ok = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (unlink(path) != 0) ok = 0;
        }
    closedir(d);
    return rmdir(dir) == 0 && ok;
}

static void output_fail_hook(int status) {
    if (output_active) output_remove_dir(output_active->tmp);
}

static void dir_create(const char *dir) {
    char path[4096];
    if (strlen(dir) >= sizeof(path)) fail("--out %s: path too long", dir);
    strcpy(path, dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST) fail("cannot create output directory %s: %s", path, strerror(errno));
        *p = c;
        if (c == 0) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) fail("cannot create output directory %s: a file of that name exists", dir);
}

// Checks DIR (which may not exist yet) and makes the directory the shards are written into. Without
// overwrite, DIR must not hold shards of a split written now.
static void output_begin(Output *o, const char *dir, int write_train, int write_val, int overwrite) {
    memset(o, 0, sizeof(*o));
    o->splits[0] = write_train;
    o->splits[1] = write_val;
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    if (len >= sizeof(o->dir)) fail("--out %s: path too long", dir);
    memcpy(o->dir, dir, len);
    const char *slash = strrchr(o->dir, '/');
    snprintf(o->name, sizeof(o->name), "%s", slash ? slash + 1 : o->dir);
    if (!strcmp(o->name, ".") || !strcmp(o->name, "..") || !strcmp(o->name, "/") || !o->name[0])
        fail("--out %s: name the output directory itself, not . or .. or /", dir);
    char parent[4096] = ".";
    if (slash) snprintf(parent, sizeof(parent), "%.*s", slash == o->dir ? 1 : (int)(slash - o->dir), o->dir);
    dir_create(parent);
    struct stat st;
    if (stat(o->dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) fail("cannot create output directory %s: a file of that name exists", o->dir);
        DIR *d = opendir(o->dir);
        if (!d) fail("cannot read output directory %s: %s", o->dir, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d)))
            if (!overwrite && output_is_written_shard(o, e->d_name))
                fail("--out %s already holds shards (%s); pass --overwrite to replace them", o->dir, e->d_name);
        closedir(d);
    } else if (errno != ENOENT) {
        fail("cannot read output directory %s: %s", o->dir, strerror(errno));
    }
    if ((size_t)snprintf(o->tmp, sizeof(o->tmp), "%s/.%s.tokenize-%d", parent, o->name, (int)getpid()) >= sizeof(o->tmp))
        fail("--out %s: path too long", dir);
    if (mkdir(o->tmp, 0777) != 0) fail("cannot write to output directory %s: %s", parent, strerror(errno));
    output_active = o;
    fail_hook = output_fail_hook;
}

// Moves the complete shards into place. Where DIR exists, what it keeps is hard-linked into the new
// directory first, then the two are swapped in one step (renameat2 RENAME_EXCHANGE; where the file system
// cannot, DIR is renamed aside and the new one renamed in), then the old one is removed.
static void output_commit(Output *o) {
    char src[8400], dst[8400], old[4300];
    struct stat st;
    if (stat(o->dir, &st) != 0) {
        if (rename(o->tmp, o->dir) != 0) fail("cannot move %s to %s: %s", o->tmp, o->dir, strerror(errno));
        output_active = NULL;
        return;
    }
    DIR *d = opendir(o->dir);
    if (!d) fail("cannot read output directory %s: %s", o->dir, strerror(errno));
    struct dirent *e;
    int unlinked = 0;   // entries that cannot be hard-linked (subdirectories): moved across after the swap
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || output_is_written_shard(o, e->d_name)) continue;
        output_path(src, sizeof(src), o->dir, e->d_name);
        output_path(dst, sizeof(dst), o->tmp, e->d_name);
        if (link(src, dst) != 0) unlinked++;
    }
    closedir(d);
    snprintf(old, sizeof(old), "%s", o->tmp);
    if (syscall(SYS_renameat2, AT_FDCWD, o->tmp, AT_FDCWD, o->dir, 2 /* RENAME_EXCHANGE */) != 0) {
        snprintf(old, sizeof(old), "%s.old", o->tmp);
        if (rename(o->dir, old) != 0) fail("cannot move %s aside to %s: %s", o->dir, old, strerror(errno));
        if (rename(o->tmp, o->dir) != 0) fail("cannot move %s to %s: %s", o->tmp, o->dir, strerror(errno));
    }
    output_active = NULL;
    if (unlinked && (d = opendir(old))) {
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || output_is_written_shard(o, e->d_name)) continue;
            output_path(src, sizeof(src), old, e->d_name);
            output_path(dst, sizeof(dst), o->dir, e->d_name);
            if (lstat(dst, &st) != 0 && rename(src, dst) != 0)
                fail("cannot move %s back into %s: %s", src, o->dir, strerror(errno));
        }
        closedir(d);
    }
    if (!output_remove_dir(old)) fprintf(stderr, "warning: could not remove all of the replaced output, %s\n", old);
}

// ----------------------------------------------------------------------------------------------------------
// documents: encoded in parallel batches, written in order

typedef struct {
    const char *text;
    size_t len;
    int is_val;
    size_t input;        // index of the input it came from
    int *ids;
    size_t n_ids;
    size_t bad_utf8;     // bytes that start no valid UTF-8 character
} Doc;

typedef struct {
    Doc *docs;
    size_t n, cap, bytes;
    char **buffers;      // file contents owned by the batch
    size_t n_buffers, cap_buffers;
} Batch;

typedef struct {
    const Tokenizer *tok;
    ShardWriter train, val;
    int threads;
    size_t batch_limit;           // text bytes encoded between two writes
    int total_known;              // no input is streamed
    size_t total_bytes, done_bytes, n_docs, bad_docs, bad_bytes, first_bad_input;
    double t_start, t_last_progress;
} Job;

static void batch_add(Batch *b, const char *text, size_t len, int is_val, size_t input) {
    if (len == 0) return;
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->docs = (Doc *)realloc(b->docs, b->cap * sizeof(Doc));
        if (!b->docs) fail("out of host memory");
    }
    Doc *d = &b->docs[b->n++];
    memset(d, 0, sizeof(*d));
    d->text = text;
    d->len = len;
    d->is_val = is_val;
    d->input = input;
    b->bytes += len;
}

static void batch_own(Batch *b, char *buffer) {
    if (b->n_buffers == b->cap_buffers) {
        b->cap_buffers = b->cap_buffers ? 2 * b->cap_buffers : 64;
        b->buffers = (char **)realloc(b->buffers, b->cap_buffers * sizeof(char *));
        if (!b->buffers) fail("out of host memory");
    }
    b->buffers[b->n_buffers++] = buffer;
}

static void progress_print(Job *job, int final) {
    double now = wall_time();
    int tty = isatty(2);
    if (!final && now - job->t_last_progress < (tty ? 1.0 : 30.0)) return;
    job->t_last_progress = now;
    double secs = now - job->t_start > 1e-9 ? now - job->t_start : 1e-9;
    double mb = job->done_bytes / 1e6;
    long long tokens = job->train.total + job->val.total;
    char total[32] = "";
    if (job->total_known) snprintf(total, sizeof(total), "/%.1f", job->total_bytes / 1e6);
    fprintf(stderr, "%stokenize: %.1f%s MB, %zu docs, %lld tokens | %.1f MB/s | %.2fM tokens/s | %.1f s%s",
            tty ? "\r" : "", mb, total, job->n_docs, tokens, mb / secs, tokens / secs / 1e6, secs,
            final || !tty ? "\n" : "");
}

static void batch_run(Job *job, Batch *b) {
    const Tokenizer *tok = job->tok;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(job->threads)
    for (size_t i = 0; i < b->n; i++) {
        Doc *d = &b->docs[i];
        for (size_t k = 0; k < d->len;) {
            if ((unsigned char)d->text[k] < 0x80) { k++; continue; }
            int n = utf8_char_len(d->text + k, d->len - k);
            if (n == 0) { d->bad_utf8++; k++; }
            else k += (size_t)n;
        }
        d->ids = tokenizer_encode(tok, d->text, d->len, 1, 0, &d->n_ids);
    }
    for (size_t i = 0; i < b->n; i++) {
        Doc *d = &b->docs[i];
        shard_write(d->is_val ? &job->val : &job->train, d->ids, d->n_ids);
        free(d->ids);
        if (d->bad_utf8) {
            if (job->bad_docs++ == 0) job->first_bad_input = d->input;
            job->bad_bytes += d->bad_utf8;
        }
        job->done_bytes += d->len;
        job->n_docs++;
    }
    for (size_t i = 0; i < b->n_buffers; i++) free(b->buffers[i]);
    b->n = b->n_buffers = b->bytes = 0;
    progress_print(job, 0);
}

// Splits one input into documents at NUL bytes and each document into train and val by the byte cut.
static void input_split(Batch *b, const char *data, size_t len, size_t pos, size_t cut, size_t input) {
    for (size_t a = 0; a <= len;) {
        const char *nul = (const char *)memchr(data + a, 0, len - a);
        size_t e = nul ? (size_t)(nul - data) : len;
        if (pos + e <= cut) batch_add(b, data + a, e - a, 0, input);
        else if (pos + a >= cut) batch_add(b, data + a, e - a, 1, input);
        else {   // the cut is inside: split after the first newline at or after it
            size_t c = cut - pos;
            const char *nl = (const char *)memchr(data + c, '\n', e - c);
            size_t s = nl ? (size_t)(nl - data) + 1 : e;
            batch_add(b, data + a, s - a, 0, input);
            batch_add(b, data + s, e - s, 1, input);
        }
        a = e + 1;
    }
}

// Reads a stream in chunks and hands over the documents completed so far (up to the last NUL) in batches,
// so that a corpus of any size can be piped through.
static void input_stream(Job *job, Batch *b, const Input *in, size_t index, size_t cut, size_t *pos) {
    int is_stdin = strcmp(in->path, "-") == 0;
    const char *name = is_stdin ? "stdin" : in->path;
    FILE *f = is_stdin ? stdin : pipe_open(in->path);
    size_t chunk = BATCH_BYTES_PER_THREAD, len = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        if (cap - len < chunk) {
            cap = len + chunk > 2 * cap ? len + chunk : 2 * cap;
            buf = (char *)realloc(buf, cap);
            if (!buf) fail("out of host memory reading %s", name);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        if (got == 0 && ferror(f)) fail("cannot read %s: %s", name, strerror(errno));
        len += got;
        int eof = got == 0;
        size_t keep = len;   // documents complete in buf[0..keep)
        if (!eof) {
            while (keep > 0 && buf[keep - 1] != 0) keep--;
            if (keep == 0) continue;
            keep--;   // the NUL after the last complete document
        }
        input_split(b, buf, keep, *pos, cut, index);
        size_t rest = eof ? 0 : len - keep - 1;
        char *next = NULL;
        if (rest) {
            next = (char *)xmalloc(rest + chunk);
            memcpy(next, buf + keep + 1, rest);
        }
        batch_own(b, buf);
        *pos += len - rest;
        buf = next;
        len = rest;
        cap = rest ? rest + chunk : 0;
        if (b->bytes >= job->batch_limit) batch_run(job, b);
        if (eof) break;
    }
    if (!is_stdin) fclose(f);
}

// ----------------------------------------------------------------------------------------------------------
// --encode and --decode

static void run_encode(const Tokenizer *tok) {
    size_t len, n;
    char *text = stream_read_all(stdin, "stdin", &len);
    int *ids = tokenizer_encode(tok, text, len, 0, 0, &n);
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    if (fflush(stdout) != 0 || ferror(stdout)) fail("cannot write stdout: %s", strerror(errno));
    free(ids);
    free(text);
}

static void run_decode(const Tokenizer *tok) {
    size_t len, n = 0, cap = 1024;
    char *text = stream_read_all(stdin, "stdin", &len);
    text = (char *)realloc(text, len + 1);
    if (!text) fail("out of host memory");
    text[len] = 0;
    int *ids = (int *)xmalloc(cap * sizeof(int));
    for (char *p = text;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (p == text + len) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        int bad = end == p || errno || !(*end == 0 || *end == ' ' || *end == '\t' || *end == '\n' || *end == '\r');
        if (bad) {
            size_t w = strcspn(p, " \t\r\n");
            fail("--decode: token %zu on stdin, \"%.*s\", is not an integer", n + 1, (int)(w < 40 ? w : 40), p);
        }
        if (v < 0 || v >= tok->vocab_size) fail("--decode: token %zu on stdin, %ld, is out of range [0, %d)", n + 1, v, tok->vocab_size);
        if (n == cap) {
            cap *= 2;
            ids = (int *)realloc(ids, cap * sizeof(int));
            if (!ids) fail("out of host memory");
        }
        ids[n++] = (int)v;
        p = end;
    }
    size_t out_len;
    char *out = tokenizer_decode(tok, ids, n, &out_len);
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout) != 0) fail("cannot write stdout: %s", strerror(errno));
    free(out);
    free(ids);
    free(text);
}

// ----------------------------------------------------------------------------------------------------------

static const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) fail("%s needs a value (see --help)", argv[*i]);
    return argv[++*i];
}

static long arg_long(const char *name, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) fail("%s expects an integer in [%ld, %ld], got \"%s\"", name, lo, hi, s);
    return v;
}

int main(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    double val_fraction = DEFAULT_VAL_FRACTION;
    long shard_tokens = DEFAULT_SHARD_TOKENS;
    int threads = omp_get_num_procs(), encode = 0, decode = 0, split_opts = 0, overwrite = 0;
    char **paths = (char **)xmalloc((size_t)argc * sizeof(char *));
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(); free(paths); return 0; }
        else if (strcmp(a, "--model") == 0) model = arg_value(argc, argv, &i);
        else if (strcmp(a, "--out") == 0) { out = arg_value(argc, argv, &i); split_opts++; }
        else if (strcmp(a, "--val-fraction") == 0) {
            const char *s = arg_value(argc, argv, &i);
            char *end;
            val_fraction = strtod(s, &end);
            if (end == s || *end || !(val_fraction >= 0.0 && val_fraction <= 1.0))
                fail("--val-fraction expects a number in [0, 1], got \"%s\"", s);
            split_opts++;
        } else if (strcmp(a, "--shard-tokens") == 0) {
            shard_tokens = arg_long(a, arg_value(argc, argv, &i), 1, 2147483647L);
            split_opts++;
        } else if (strcmp(a, "--threads") == 0) threads = (int)arg_long(a, arg_value(argc, argv, &i), 1, 4096);
        else if (strcmp(a, "--overwrite") == 0) { overwrite = 1; split_opts++; }
        else if (strcmp(a, "--encode") == 0) encode = 1;
        else if (strcmp(a, "--decode") == 0) decode = 1;
        else if (a[0] == '-' && a[1] != 0) {
            static const char *const names[] = {"--model", "--out", "--val-fraction", "--shard-tokens", "--threads",
                                                "--overwrite", "--encode", "--decode", "--help"};
            const char *near = option_nearest(a, strlen(a), names, (int)(sizeof(names) / sizeof(names[0])));
            if (near) fail("unknown option %s (did you mean %s? see --help)", a, near);
            fail("unknown option %s (see --help)", a);
        }
        else paths[n_paths++] = argv[i];
    }
    if (!model) fail("--model MODEL (a .model or tokenizer.json file) is required (see --help)");
    if (encode && decode) fail("--encode and --decode exclude each other");
    if ((encode || decode) && (split_opts || n_paths))
        fail("%s reads stdin and writes stdout: it takes no --out, --val-fraction, --shard-tokens, --overwrite or INPUT", encode ? "--encode" : "--decode");
    if (!encode && !decode) {
        if (!out) fail("--out DIR is required (see --help)");
        if (n_paths == 0) fail("no INPUT given: name text files or directories, or - for stdin (see --help)");
    }

    Tokenizer tok;
    option_file_check("--model", model);
    tokenizer_load(&tok, model);
    if (encode) run_encode(&tok);
    else if (decode) run_decode(&tok);
    if (encode || decode) { tokenizer_free(&tok); free(paths); return 0; }
    if (tok.bos_id < 0) fail("%s has no BOS piece, which every document starts with", model);

    Output output;
    output_begin(&output, out, val_fraction < 1.0, val_fraction > 0.0, overwrite);
    InputList inputs;
    memset(&inputs, 0, sizeof(inputs));
    int stdin_used = 0, stream = val_fraction == 0.0 || val_fraction == 1.0;
    for (int i = 0; i < n_paths; i++) {
        if (strcmp(paths[i], "-") == 0 && stdin_used++) fail("- (stdin) is given more than once");
        inputs_expand(&inputs, paths[i], 1, stream);
    }
    Job job;
    memset(&job, 0, sizeof(job));
    job.tok = &tok;
    job.threads = threads;
    job.batch_limit = (size_t)threads * BATCH_BYTES_PER_THREAD;
    job.total_known = 1;
    for (size_t i = 0; i < inputs.n; i++) {
        job.total_bytes += inputs.items[i].size;
        if (inputs.items[i].stream) job.total_known = 0;
    }
    // byte offset in the whole input where validation starts
    size_t cut = val_fraction == 0.0 ? SIZE_MAX : job.total_bytes - (size_t)(val_fraction * (double)job.total_bytes + 0.5);
    ShardWriter *writers[2] = {&job.train, &job.val};
    for (int k = 0; k < 2; k++) {
        ShardWriter *w = writers[k];
        w->dir = output.tmp;
        w->split = k ? "val" : "train";
        w->shard_tokens = shard_tokens;
        w->wide = tok.vocab_size > 65535;
        w->buf = (unsigned char *)xmalloc((size_t)4 << 20);
    }

    job.t_start = job.t_last_progress = wall_time();
    Batch batch;
    memset(&batch, 0, sizeof(batch));
    size_t pos = 0;
    for (size_t i = 0; i < inputs.n; i++) {
        Input *in = &inputs.items[i];
        if (in->stream) {
            input_stream(&job, &batch, in, i, cut, &pos);
            continue;
        }
        size_t len = in->size;
        char *data = in->data ? in->data : file_read_all(in->path, &len);
        batch_own(&batch, data);
        input_split(&batch, data, len, pos, cut, i);
        pos += len;
        if (batch.bytes >= job.batch_limit) batch_run(&job, &batch);
    }
    batch_run(&job, &batch);
    if (job.n_docs == 0) fail("the inputs hold no text: %zu file(s), all empty", inputs.n);
    for (int k = 0; k < 2; k++) shard_close(writers[k]);
    job.done_bytes = pos;   // the final line counts every input byte, NUL separators included
    output_commit(&output);
    progress_print(&job, 1);
    fprintf(stderr, "tokenize: %lld train tokens in %d shards, %lld val tokens in %d shards, in %s\n",
            job.train.total, job.train.n_shards, job.val.total, job.val.n_shards, out);
    if (job.bad_docs)
        fprintf(stderr, "warning: %zu bytes of invalid UTF-8 in %zu documents (the first in %s) were encoded as U+FFFD, %s\n",
                job.bad_bytes, job.bad_docs, inputs.items[job.first_bad_input].path,
                tok.bpe ? "one per maximal invalid sequence" : "one per byte, as sentencepiece does");
    if (val_fraction > 0 && job.val.total == 0)
        fprintf(stderr, "warning: the validation split is empty: no newline or document boundary after the cut at byte %zu\n", cut);
    if (val_fraction < 1 && job.train.total == 0) fprintf(stderr, "warning: the training split is empty\n");

    for (size_t i = 0; i < inputs.n; i++) free(inputs.items[i].path);
    free(inputs.items);
    free(batch.docs);
    free(batch.buffers);
    for (int k = 0; k < 2; k++) free(writers[k]->buf);
    free(paths);
    tokenizer_free(&tok);
    return 0;
}
