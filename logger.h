/*
 * logger.h: what the trainers print and record: the human step line of docs/design.md §10, `val_loss` lines, skipped
 * steps, and the same numbers as one JSON object per line in OUT/log.jsonl. Losses go to the JSONL file with 9
 * significant digits so runs can be compared bit for bit; a non-finite number is written as null (JSON has no NaN).
 * Every write to the file is checked: a full disk or a file-size limit ends the run with the file and the OS
 * error, never a silently truncated log. Plain C that also compiles as C++.
 */
#ifndef GRASS_LOGGER_H
#define GRASS_LOGGER_H

#include <math.h>
#include "comm.h"
#include "common.h"

typedef struct {
    FILE *jsonl;  // NULL when there is no --out
    char path[2048];
} Logger;

// Opens OUT/log.jsonl (appending when resuming, so the log of the earlier part is kept).
static void logger_init(Logger *lg, const char *out_dir, int append) {
    lg->jsonl = NULL;
    if (!out_dir || !out_dir[0]) return;
    path_format(lg->path, sizeof(lg->path), "%s/log.jsonl", out_dir);
    lg->jsonl = xfopen(lg->path, append ? "a" : "w");
}

// Ends a JSON line and pushes it to the file, or fails naming the file and the OS error.
static void logger_flush(Logger *lg) {
    fprintf(lg->jsonl, "}\n");
    if (ferror(lg->jsonl) || fflush(lg->jsonl)) fail("cannot write %s: %s", lg->path, strerror(errno));
}

// ", "key": value" with value in the format fmt, or null when it is not finite.
static void logger_number(Logger *lg, const char *key, const char *fmt, double v) {
    fprintf(lg->jsonl, ", \"%s\": ", key);
    if (isfinite(v)) fprintf(lg->jsonl, fmt, v);
    else fprintf(lg->jsonl, "null");
}

// One training step. mfu and mem_gib (the GPU trainer has them) are printed only when non-negative; comm_bytes
// (with several ranks; else NULL) the bytes of this rank's collectives in this step by category (comm.h's
// COMM_GRADS ...): their sum on the line, each in the JSONL file. phase_ms (the GPU trainer's; NULL for
// none) is where the step's time went, forward, backward and optimizer, recorded in the JSONL file only.
static void logger_step(Logger *lg, int step, int steps, float loss, float lr, float norm, double ms, double tok_s,
                        double mfu, double mem_gib, const double *comm_bytes, const double *phase_ms) {
    printf("step %d/%d | loss %.4f | lr %.2e | norm %.2f | %.1f ms | %.0f tok/s", step, steps, loss, lr, norm, ms, tok_s);
    if (mfu >= 0) printf(" | MFU %.1f%%", 100.0 * mfu);
    if (mem_gib >= 0) printf(" | mem %.1f GiB", mem_gib);
    double comm_mib = 0.0;
    for (int i = 0; comm_bytes && i < COMM_CATEGORIES; i++) comm_mib += comm_bytes[i] / 1048576.0;
    if (comm_bytes) printf(" | comm %.1f MiB", comm_mib);
    printf("\n");
    fflush(stdout);
    if (!lg->jsonl) return;
    fprintf(lg->jsonl, "{\"step\": %d", step);
    logger_number(lg, "loss", "%.9g", loss);
    logger_number(lg, "lr", "%.9g", lr);
    logger_number(lg, "norm", "%.9g", norm);
    logger_number(lg, "ms", "%.3f", ms);
    logger_number(lg, "tok_s", "%.1f", tok_s);
    if (mfu >= 0) logger_number(lg, "mfu", "%.4f", mfu);
    if (mem_gib >= 0) logger_number(lg, "mem_gib", "%.3f", mem_gib);
    if (comm_bytes) {
        logger_number(lg, "comm_mib", "%.3f", comm_mib);
        for (int i = 0; i < COMM_CATEGORIES; i++) {
            char key[32];
            snprintf(key, sizeof(key), "comm_%s_bytes", comm_category_names[i]);
            logger_number(lg, key, "%.0f", comm_bytes[i]);
        }
    }
    if (phase_ms) {
        logger_number(lg, "forward_ms", "%.3f", phase_ms[0]);
        logger_number(lg, "backward_ms", "%.3f", phase_ms[1]);
        logger_number(lg, "optimizer_ms", "%.3f", phase_ms[2]);
    }
    logger_flush(lg);
}

// A step whose update was not applied (--skip-nonfinite): what was not finite, and how many skips are left.
static void logger_skip(Logger *lg, int step, int steps, const char *what, double value, int skipped, int limit) {
    printf("step %d/%d | skipped: %s is %g, the update is not applied (%d of --skip-nonfinite %d)\n", step, steps, what,
           value, skipped, limit);
    fflush(stdout);
    if (!lg->jsonl) return;
    fprintf(lg->jsonl, "{\"step\": %d, \"skipped\": \"%s\"", step, what);
    logger_flush(lg);
}

static void logger_val(Logger *lg, int step, float val_loss) {
    printf("val_loss %.6f\n", val_loss);
    fflush(stdout);
    if (!lg->jsonl) return;
    fprintf(lg->jsonl, "{\"step\": %d", step);
    logger_number(lg, "val_loss", "%.9g", val_loss);
    logger_flush(lg);
}

static void logger_close(Logger *lg) {
    if (lg->jsonl && fclose(lg->jsonl)) fail("cannot write %s: %s", lg->path, strerror(errno));
    lg->jsonl = NULL;
}

#endif
