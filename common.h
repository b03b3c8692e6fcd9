/*
 * common.h: small host utilities shared by every binary of grass.c (trainers, tools, tests): the one
 * error path (`fail`: one line naming what is wrong, then exit 1), checked allocation and file I/O, and a
 * wall clock. Plain C that also compiles as C++ (nvcc includes it from the .cu files).
 */
#ifndef GRASS_COMMON_H
#define GRASS_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

// The exit statuses of the trainers (docs/faults.md): 0 the run is complete; EXIT_ERROR bad input or
// a failed read, write or collective; EXIT_DIVERGED a non-finite loss, gradient norm or weight (nothing non-finite
// was saved); EXIT_COMM_TIMEOUT a rank waited longer than --comm-timeout in a collective; EXIT_INTERRUPTED a
// signal (SIGTERM, SIGINT, SIGUSR1) stopped the run after a checkpoint: rerunning the same command with --resume
// auto continues it. A second signal ends the run at once with 128 + the signal's number.
#define EXIT_ERROR 1
#define EXIT_DIVERGED 3
#define EXIT_COMM_TIMEOUT 4
#define EXIT_INTERRUPTED 75

#define GIB 1073741824.0  // bytes in a GiB, as memory is printed and limited (--gpu-mem-limit)

// Called by fail_status() before it exits: fail_cleanup undoes a half-done write (checkpoint.h sets it while a
// checkpoint is being written, to remove its temporary directory), then fail_hook ends the other MPI ranks (comm.h).
static void (*fail_cleanup)(void) = NULL;
static void (*fail_hook)(int status) = NULL;

// Prints "error: <message>" on stderr and exits with `status`. Every user-facing error goes through here,
// so each is one line that names the file, flag or size at fault and what was expected.
static void fail_status(int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void fail_vstatus(int status, const char *fmt, va_list ap) __attribute__((noreturn));
// The line goes out in one write, after what stdout holds: under mpirun, which forwards each stream of each rank as it
// comes, a line written in pieces could be interleaved with another's.
static void fail_vstatus(int status, const char *fmt, va_list ap) {
    static char line[16384];
    fflush(stdout);
    int n = snprintf(line, sizeof(line), "error: ");
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    fputs(strcat(line, "\n"), stderr);
    fflush(stderr);
    void (*cleanup)(void) = fail_cleanup;
    fail_cleanup = NULL;  // a failure inside the cleanup does not come back to it
    if (cleanup) cleanup();
    if (fail_hook) fail_hook(status);
    exit(status);
}

static void fail_status(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_vstatus(status, fmt, ap);
}

// fail_status with EXIT_ERROR: bad input, a failed read or write.
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fail_vstatus(EXIT_ERROR, fmt, ap);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fail("out of host memory allocating %zu bytes", n);
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) fail("out of host memory allocating %zu bytes", n);
    return p;
}

static void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) fail("out of host memory allocating %zu x %zu bytes", count, size);
    return p;
}

// A scratch buffer *buf of *cap bytes grown (contents dropped) to hold at least n: the buffers that are reused
// for pieces of different sizes (checkpoint tensors and sections, a transposed weight).
static void *xreserve(void **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        free(*buf);
        *buf = xmalloc(n);
        *cap = n;
    }
    return *buf;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = (char *)xmalloc(n);
    memcpy(p, s, n);
    return p;
}

// Opens a file or fails naming it. A file opened for reading must be a regular file: it is opened without
// blocking and checked before anything is read, so a FIFO or device given where a file belongs is refused at
// once instead of waiting forever for a writer.
static FILE *xfopen(const char *path, const char *mode) {
    if (mode[0] != 'r') {
        FILE *f = fopen(path, mode);
        if (!f) fail("cannot open %s (for writing): %s", path, strerror(errno));
        return f;
    }
    int fd = open(path, (strchr(mode, '+') ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fail("cannot open %s (for reading): %s", path, strerror(errno));
    struct stat st;
    int is_file = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (!is_file) {
        close(fd);
        fail("%s is not a regular file", path);
    }
    int flags = fcntl(fd, F_GETFL);
    FILE *f = flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ? NULL : fdopen(fd, mode);
    if (!f) fail("cannot open %s (for reading): %s", path, strerror(errno));
    return f;
}

// Reads exactly n bytes or fails naming the file (a short read means a truncated file).
static void xfread(void *dst, size_t n, FILE *f, const char *path) {
    if (n && fread(dst, 1, n, f) != n) fail("%s is truncated: expected %zu more bytes", path, n);
}

static void xfwrite(const void *src, size_t n, FILE *f, const char *path) {
    if (n && fwrite(src, 1, n, f) != n) fail("cannot write %s: %s", path, strerror(errno));
}

// Closes a file written to path once its bytes are on disk (a checkpoint's files, before the rename that completes it).
static void xfclose_synced(FILE *f, const char *path) {
    if (fflush(f) || fsync(fileno(f)) || fclose(f)) fail("cannot write %s: %s", path, strerror(errno));
}

// Seconds on a monotonic clock.
static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Reads a whole file into a malloc'd, NUL-terminated buffer.
// Reads a whole file into a malloc'd, NUL-terminated buffer. The size comes from fstat of the open file (a
// regular file: xfopen refuses directories and FIFOs); a file that grows or shrinks while it is read is
// reported, not trusted.
static char *file_read_all(const char *path, size_t *len) {
    FILE *f = xfopen(path, "rb");
    struct stat st;
    if (fstat(fileno(f), &st) != 0) fail("cannot read %s: %s", path, strerror(errno));
    if (st.st_size < 0 || (unsigned long long)st.st_size >= SIZE_MAX) fail("%s is too large to read", path);
    size_t n = (size_t)st.st_size;
    char *buf = (char *)xmalloc(n + 1);
    xfread(buf, n, f, path);
    if (fgetc(f) != EOF) fail("%s changed while it was read: longer than its size, %zu bytes", path, n);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}


static int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// Fails with one line naming the option `flag` unless its value `path` opens for reading as a regular file: checked
// when the options are, so that a mistyped path stops the run before it plans, allocates or reads anything.
static void option_file_check(const char *flag, const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) fail("%s: cannot open %s: %s", flag, path, strerror(errno));
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!regular) fail("%s: %s is not a regular file", flag, path);
}

// An option name without its leading dashes, lowercased, '_' read as '-', into buf (64 bytes); 0 when too long.
static int option_name_fold(const char *name, size_t len, char *buf) {
    while (len && *name == '-') name++, len--;
    if (len >= 64) return 0;
    for (size_t i = 0; i < len; i++) buf[i] = name[i] == '_' ? '-' : (name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i];
    buf[len] = '\0';
    return 1;
}

// Edits (insertions, deletions, substitutions, swaps of neighbours) from a to b, both under 64 characters.
static int option_edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), d[65][65];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best) best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

// The option of names[0..n) that an unknown option (arg's first len characters) most likely meant, or NULL: the
// nearest name within a few edits (1 for short names, up to 3 for long ones), else the one spelled by the initials
// of arg's words (--learning-rate: --lr), else the longest that arg extends by more words (--batch-size: --batch),
// else the only one that extends arg (--ckpt: --ckpt-every).
static const char *option_nearest(const char *arg, size_t len, const char *const *names, int n) {
    char a[64], b[64], initials[64];
    if (!option_name_fold(arg, len, a) || !a[0]) return NULL;
    int alen = (int)strlen(a), limit = alen < 6 ? 1 : alen < 12 ? 2 : 3, best = limit + 1, ni = 0;
    const char *near = NULL, *by_initials = NULL, *extended = NULL, *extension = NULL;
    size_t extended_len = 0;
    int extensions = 0;
    for (int i = 0; i < alen; i++)
        if (i == 0 || a[i - 1] == '-') initials[ni++] = a[i];
    initials[ni] = '\0';
    for (int k = 0; k < n; k++) {
        if (!option_name_fold(names[k], strlen(names[k]), b)) continue;
        int d = option_edit_distance(a, b);
        size_t blen = strlen(b);
        if (d < best) best = d, near = names[k];
        if (ni > 1 && !strcmp(initials, b) && !by_initials) by_initials = names[k];
        if (!strncmp(a, b, blen) && a[blen] == '-' && blen > extended_len) extended = names[k], extended_len = blen;
        if (!strncmp(a, b, (size_t)alen) && b[alen] == '-') extension = names[k], extensions++;
    }
    return near ? near : by_initials ? by_initials : extended ? extended : extensions == 1 ? extension : NULL;
}

// snprintf for paths: fails instead of silently truncating a path that does not fit.
static void path_format(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void path_format(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= n) fail("path too long (over %zu characters): %s...", n - 1, buf);
}

#endif
