/*
 * logger.h: what the trainers print and record: the human step line of DESIGN §10, `val_loss` lines, and
 * the same numbers as one JSON object per line in OUT/log.jsonl. Losses go to the JSONL file with 9
 * significant digits so runs can be compared bit for bit. Plain C that also compiles as C++.
 */
#ifndef GRASS_LOGGER_H
#define GRASS_LOGGER_H

#include "common.h"

typedef struct {
    FILE *jsonl;  // NULL when there is no --out
} Logger;

// Opens OUT/log.jsonl (appending when resuming, so the log of the earlier part is kept).
static void logger_init(Logger *lg, const char *out_dir, int append) {
    lg->jsonl = NULL;
    if (!out_dir || !out_dir[0]) return;
    char path[2048];
    path_format(path, sizeof(path), "%s/log.jsonl", out_dir);
    lg->jsonl = xfopen(path, append ? "a" : "w");
}

// One training step. mfu, mem_gib (the GPU trainer has them) and comm_mib (bytes all-reduced by this rank in
// this step, with several ranks) are printed only when non-negative. phase_ms (the GPU trainer's; NULL for
// none) is where the step's time went, forward, backward and optimizer, recorded in the JSONL file only.
static void logger_step(Logger *lg, int step, int steps, float loss, float lr, float norm, double ms, double tok_s,
                        double mfu, double mem_gib, double comm_mib, const double *phase_ms) {
    printf("step %d/%d | loss %.4f | lr %.2e | norm %.2f | %.1f ms | %.0f tok/s", step, steps, loss, lr, norm, ms, tok_s);
    if (mfu >= 0) printf(" | MFU %.1f%%", 100.0 * mfu);
    if (mem_gib >= 0) printf(" | mem %.1f GiB", mem_gib);
    if (comm_mib >= 0) printf(" | comm %.1f MiB", comm_mib);
    printf("\n");
    fflush(stdout);
    if (!lg->jsonl) return;
    fprintf(lg->jsonl, "{\"step\": %d, \"loss\": %.9g, \"lr\": %.9g, \"norm\": %.9g, \"ms\": %.3f, \"tok_s\": %.1f", step,
            loss, lr, norm, ms, tok_s);
    if (mfu >= 0) fprintf(lg->jsonl, ", \"mfu\": %.4f", mfu);
    if (mem_gib >= 0) fprintf(lg->jsonl, ", \"mem_gib\": %.3f", mem_gib);
    if (comm_mib >= 0) fprintf(lg->jsonl, ", \"comm_mib\": %.3f", comm_mib);
    if (phase_ms)
        fprintf(lg->jsonl, ", \"forward_ms\": %.3f, \"backward_ms\": %.3f, \"optimizer_ms\": %.3f", phase_ms[0], phase_ms[1],
                phase_ms[2]);
    fprintf(lg->jsonl, "}\n");
    fflush(lg->jsonl);
}

static void logger_val(Logger *lg, int step, float val_loss) {
    printf("val_loss %.4f\n", val_loss);
    fflush(stdout);
    if (!lg->jsonl) return;
    fprintf(lg->jsonl, "{\"step\": %d, \"val_loss\": %.9g}\n", step, val_loss);
    fflush(lg->jsonl);
}

static void logger_close(Logger *lg) {
    if (lg->jsonl) fclose(lg->jsonl);
    lg->jsonl = NULL;
}

#endif
