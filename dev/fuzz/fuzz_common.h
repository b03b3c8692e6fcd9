/*
 * fuzz_common.h: what every libFuzzer harness of dev/fuzz shares. The project's parsers report bad input
 * through fail(), which exits; a harness must instead return to libFuzzer, so fail_hook jumps back to the
 * harness (FUZZ_TRY). A jump skips the parser's clean-up, so the memory and files the project code takes are
 * tracked here (malloc, realloc, calloc, free, fopen, fdopen, fclose are redirected for the project headers
 * included after this one) and released after every input: without that a long run would run out of file
 * descriptors or memory. Inputs are written to files in a directory of this process under $TMPDIR (else
 * /dev/shm, else /tmp), because the parsers read files.
 *
 * Include this first, then the project headers, then define LLVMFuzzerTestOneInput using FUZZ_TRY.
 */
#ifndef GRASS_FUZZ_COMMON_H
#define GRASS_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdarg.h>
#include <time.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Every block the project code holds: a doubly linked list in front of each allocation (16 bytes keeps the
// caller's alignment).
typedef struct FuzzBlock {
    struct FuzzBlock *prev, *next;
} FuzzBlock;

static FuzzBlock fuzz_blocks = {&fuzz_blocks, &fuzz_blocks};

static void *fuzz_block_link(FuzzBlock *b) {
    if (!b) return NULL;
    b->next = fuzz_blocks.next;
    b->prev = &fuzz_blocks;
    fuzz_blocks.next->prev = b;
    fuzz_blocks.next = b;
    return b + 1;
}

static void fuzz_block_unlink(FuzzBlock *b) {
    b->prev->next = b->next;
    b->next->prev = b->prev;
}

static void *fuzz_malloc(size_t n) {
    if (n > SIZE_MAX - sizeof(FuzzBlock)) return NULL;
    return fuzz_block_link((FuzzBlock *)malloc(sizeof(FuzzBlock) + n));
}

static void *fuzz_calloc(size_t count, size_t size) {
    if (size && count > (SIZE_MAX - sizeof(FuzzBlock)) / size) return NULL;
    void *p = fuzz_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

static void fuzz_free(void *p) {
    if (!p) return;
    FuzzBlock *b = (FuzzBlock *)p - 1;
    fuzz_block_unlink(b);
    free(b);
}

static void *fuzz_realloc(void *p, size_t n) {
    if (!p) return fuzz_malloc(n);
    if (n > SIZE_MAX - sizeof(FuzzBlock)) return NULL;
    FuzzBlock *b = (FuzzBlock *)p - 1;
    fuzz_block_unlink(b);
    FuzzBlock *q = (FuzzBlock *)realloc(b, sizeof(FuzzBlock) + n);
    if (!q) {  // the old block stays valid and held
        fuzz_block_link(b);
        return NULL;
    }
    return fuzz_block_link(q);
}

// Files the project code opened and has not closed.
#define FUZZ_MAX_FILES 64
static FILE *fuzz_files[FUZZ_MAX_FILES];

static FILE *fuzz_file_track(FILE *f) {
    if (!f) return NULL;
    for (int i = 0; i < FUZZ_MAX_FILES; i++)
        if (!fuzz_files[i]) { fuzz_files[i] = f; return f; }
    abort();  // more files open at once than any parser needs: a leak in the parser
}

static FILE *fuzz_fopen(const char *path, const char *mode) { return fuzz_file_track(fopen(path, mode)); }
static FILE *fuzz_fdopen(int fd, const char *mode) { return fuzz_file_track(fdopen(fd, mode)); }

static int fuzz_fclose(FILE *f) {
    for (int i = 0; i < FUZZ_MAX_FILES; i++)
        if (fuzz_files[i] == f) fuzz_files[i] = NULL;
    return fclose(f);
}

// Releases what the last input left behind (all of it after a fail(), nothing after a clean run).
static void fuzz_release(void) {
    for (int i = 0; i < FUZZ_MAX_FILES; i++)
        if (fuzz_files[i]) { fclose(fuzz_files[i]); fuzz_files[i] = NULL; }
    while (fuzz_blocks.next != &fuzz_blocks) {
        FuzzBlock *b = fuzz_blocks.next;
        fuzz_block_unlink(b);
        free(b);
    }
}

#define malloc fuzz_malloc
#define calloc fuzz_calloc
#define realloc fuzz_realloc
#define free fuzz_free
#define fopen fuzz_fopen
#define fdopen fuzz_fdopen
#define fclose fuzz_fclose

#include "common.h"

static jmp_buf fuzz_jump;

static void fuzz_fail_hook(int status) { longjmp(fuzz_jump, 1); }

// Runs BODY; a fail() inside it ends BODY early. Either way what the project code held is released.
#define FUZZ_TRY(BODY)                         \
    do {                                       \
        fail_hook = fuzz_fail_hook;            \
        if (!setjmp(fuzz_jump)) { BODY; }      \
        fuzz_release();                        \
    } while (0)

// This process's scratch directory, made on first use.
static const char *fuzz_dir(void) {
    static char dir[512];
    if (dir[0]) return dir;
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = path_is_dir("/dev/shm") ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/grass_fuzz_%d", base, (int)getpid());
    if (mkdir(dir, 0700) != 0 && !path_is_dir(dir)) abort();
    return dir;
}

// The path of `name` in the scratch directory (a static buffer per call site is up to the caller).
static void fuzz_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", fuzz_dir(), name); }

// Writes data to the scratch file `name`; returns its path in buf.
static void fuzz_write(char *buf, size_t n, const char *name, const uint8_t *data, size_t size) {
    fuzz_path(buf, n, name);
    FILE *f = fopen(buf, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

// Empties the scratch directory (files only: the harnesses make no subdirectories).
static void fuzz_clear(void) {
    DIR *d = opendir(fuzz_dir());
    if (!d) abort();
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') { fuzz_path(path, sizeof(path), e->d_name); unlink(path); }
    closedir(d);
}

// The next part of data[*pos, size) up to the separator FUZZ_SEPARATOR (or the end): how one input holds
// several files. Returns 0 when nothing is left.
#define FUZZ_SEPARATOR "\n--next-file--\n"
static int fuzz_next_part(const uint8_t *data, size_t size, size_t *pos, const uint8_t **part, size_t *len) {
    if (*pos > size) return 0;
    const size_t sep = sizeof(FUZZ_SEPARATOR) - 1;
    const uint8_t *start = data + *pos;
    size_t rest = size - *pos;
    const uint8_t *hit = rest >= sep ? (const uint8_t *)memmem(start, rest, FUZZ_SEPARATOR, sep) : NULL;
    *part = start;
    *len = hit ? (size_t)(hit - start) : rest;
    *pos += *len + (hit ? sep : 1);
    return 1;
}

#endif
