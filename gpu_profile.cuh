/*
 * gpu_profile.cuh: where a training step's GPU time goes, by kind of work (--profile). The model code marks
 * the stream each time the kind of work it queues changes (gpu_profile_mark); each mark is a CUDA event, so
 * the time between two marks is what the GPU spent on the first one's kind, including any time it sat idle
 * waiting for the host; the code marks "host / idle" where it synchronises or copies a batch, so those waits
 * show up as their own kind. At the end of a step the times are added up per kind; the run ends with a table
 * of the mean per step.
 *
 * Cost when on: one event per change of kind (a few thousand per step for 1b, some microseconds of host time
 * each, queued while the GPU works); when off, a branch per mark. No tool beyond the CUDA runtime is needed,
 * which is the point: Nsight Systems is not installed on every machine with a GPU.
 */
#pragma once

#include "common.h"
#include "kernels/common.cuh"

enum {
    PROF_OTHER,         // zeroing gradients, dtype conversions
    PROF_HOST,          // the GPU waiting for the host: batch copies, the loss read back, synchronisations
    PROF_EMBEDDING,
    PROF_RMSNORM,
    PROF_MATMUL_FWD,    // the projections' forward products (with the residual add)
    PROF_ROPE,
    PROF_ATTENTION_FWD,
    PROF_SWIGLU,
    PROF_LM_HEAD_LOSS,  // lm_head products, fused softmax + cross-entropy and its backward
    PROF_MATMUL_DINP,   // the projections' input-gradient products
    PROF_MATMUL_DW,     // full weight-gradient products (AdamW)
    PROF_GRASS_GRAD,    // Grass: gather of the selected columns and the compressed-gradient product
    PROF_GRASS_REFRESH, // Grass: full gradient, all-reduce, norms, selection on the host, moments reset
    PROF_ATTENTION_BWD,
    PROF_COMM,          // queuing the all-reduces, and waiting for those the backward did not hide
    PROF_GRAD_NORM,
    PROF_OPTIMIZER,     // AdamW and Grass updates
    PROF_END,           // the step's last mark: nothing after it is counted
    PROF_NUM
};
static const char *prof_names[PROF_NUM] = {"other (zeroing, conversion)", "host / idle", "embedding", "rmsnorm",
                                           "matmul forward", "rope", "attention forward", "swiglu", "lm_head + loss",
                                           "matmul backward (inputs)", "matmul backward (weights)",
                                           "grass compressed gradient", "grass refresh", "attention backward",
                                           "all-reduce (exposed)", "gradient norm", "optimizer update", "end"};

typedef struct {
    int enabled;          // --profile
    int active;           // inside a step (evaluation and sampling are not marked)
    cudaEvent_t *events;  // [cap] this step's marks, in stream order
    int *kinds;           // [cap] the kind of work queued after each mark
    int n, cap;
    double ms[PROF_NUM];  // summed over the collected steps
    int steps;
} GpuProfile;

// From here on, the work queued on `stream` is of this kind (a no-op when profiling is off).
static void gpu_profile_mark(GpuProfile *p, int kind, cudaStream_t stream) {
    if (!p->active || (p->n > 0 && p->kinds[p->n - 1] == kind)) return;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 1024;
        p->events = (cudaEvent_t *)xrealloc(p->events, sizeof(cudaEvent_t) * cap);
        p->kinds = (int *)xrealloc(p->kinds, sizeof(int) * cap);
        for (int i = p->cap; i < cap; i++) cudaCheck(cudaEventCreate(&p->events[i]));
        p->cap = cap;
    }
    cudaCheck(cudaEventRecord(p->events[p->n], stream));
    p->kinds[p->n++] = kind;
}

// A step starts.
static void gpu_profile_begin(GpuProfile *p, cudaStream_t stream) {
    p->active = p->enabled;
    p->n = 0;
    gpu_profile_mark(p, PROF_OTHER, stream);
}

// After the step's last work is queued: marks its end; synchronises on it and adds the step's times per kind
// (keep = 0 drops the step: the first, which also pays for cuBLASLt's algorithm searches and first touches).
static void gpu_profile_end(GpuProfile *p, int keep, cudaStream_t stream) {
    if (!p->active) return;
    gpu_profile_mark(p, PROF_END, stream);
    cudaCheck(cudaEventSynchronize(p->events[p->n - 1]));
    p->active = 0;
    for (int i = 0; keep && i + 1 < p->n; i++) {
        float ms;
        cudaCheck(cudaEventElapsedTime(&ms, p->events[i], p->events[i + 1]));
        p->ms[p->kinds[i]] += ms;
    }
    p->steps += keep;
    p->n = 0;
}

static void gpu_profile_print(const GpuProfile *p) {
    if (!p->enabled || p->steps == 0) return;
    double total = 0.0;
    for (int k = 0; k < PROF_NUM; k++) total += p->ms[k];
    printf("profile: GPU time per step by kind of work (mean over %d steps; CUDA events between changes of kind)\n",
           p->steps);
    for (int k = 0; k < PROF_NUM; k++)
        if (p->ms[k] > 0.0)
            printf("profile: %-28s %10.3f ms %6.1f%%\n", prof_names[k], p->ms[k] / p->steps, 100.0 * p->ms[k] / total);
    printf("profile: %-28s %10.3f ms %6.1f%%\n", "total", total / p->steps, 100.0);
}

static void gpu_profile_free(GpuProfile *p) {
    for (int i = 0; i < p->cap; i++) cudaCheck(cudaEventDestroy(p->events[i]));
    free(p->events);
    free(p->kinds);
}
