/*
 * comm_gpu.cuh: data-parallel averaging of device buffers for the GPU trainer (docs/design.md §7), over the ranks of
 * comm.h: with NCCL (the default; the communicator's unique id is broadcast over MPI) on a stream of its own,
 * so that the backward pass goes on while finished layers' gradients are being averaged (gpu_comm_mean
 * orders the all-reduce after the work queued so far on the compute stream; gpu_comm_wait makes the compute
 * stream wait for every all-reduce queued so far); or with --comm mpi through host memory, synchronously
 * (for machines without NCCL, and for several ranks sharing one GPU in tests). bf16 buffers are averaged in
 * fp32 on the MPI path. A world of one rank does nothing. The host waits for streams that wait for NCCL's
 * all-reduces (gpu_comm_sync) are watched like comm.h's collectives: past --comm-timeout the communicator is
 * aborted and the job ended.
 */
#pragma once

#include "comm.h"
#include "kernels/common.cuh"
#ifdef USE_NCCL
#include <nccl.h>
#endif

typedef struct {
    const Comm *comm;
    int use_nccl;
#ifdef USE_NCCL
    ncclComm_t nccl;
    cudaStream_t stream;  // the all-reduces
    cudaEvent_t ready;    // the compute stream's work an all-reduce waits for
    cudaEvent_t done;     // the all-reduces the compute stream waits for
#endif
    float *host;        // staging for the MPI path
    size_t host_floats;
    size_t bytes;       // bytes all-reduced so far (for the log)
} GpuComm;

#ifdef USE_NCCL
static void nccl_check(ncclResult_t r, const char *file, int line) {
    if (r != ncclSuccess) fail("NCCL: %s at %s:%d", ncclGetErrorString(r), file, line);
}
#define ncclCheck(call) nccl_check((call), __FILE__, __LINE__)
#endif

#ifdef USE_NCCL
// The communicator that a timed-out collective aborts (comm_timeout_hook): its kernels would otherwise wait on
// the device, for ever, for the rank that is gone.
static GpuComm *gpu_comm_watched = NULL;
static void gpu_comm_abort(void) {
    if (gpu_comm_watched) ncclCommAbort(gpu_comm_watched->nccl);
    gpu_comm_watched = NULL;
}
#endif

static void gpu_comm_init(GpuComm *g, const Comm *comm, const char *mode) {
    memset(g, 0, sizeof(*g));
    g->comm = comm;
    if (comm->world == 1) return;
    g->use_nccl = !strcmp(mode, "nccl");
#ifdef USE_NCCL
    if (g->use_nccl) {
        ncclUniqueId id;
        if (comm->rank == 0) ncclCheck(ncclGetUniqueId(&id));
        comm_bcast(comm, &id, sizeof(id), "a broadcast of the NCCL id");
        ncclCheck(ncclCommInitRank(&g->nccl, comm->world, id, comm->rank));
        gpu_comm_watched = g;
        comm_timeout_hook = gpu_comm_abort;
        cudaCheck(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
        cudaCheck(cudaEventCreateWithFlags(&g->ready, cudaEventDisableTiming));
        cudaCheck(cudaEventCreateWithFlags(&g->done, cudaEventDisableTiming));
    }
#else
    if (g->use_nccl) fail("--comm nccl: this train_llama was built without NCCL (no nccl.h when make ran); use --comm mpi");
#endif
}

static void gpu_comm_free(GpuComm *g) {
#ifdef USE_NCCL
    if (g->use_nccl) {
        gpu_comm_watched = NULL;
        comm_timeout_hook = NULL;
        ncclCheck(ncclCommDestroy(g->nccl));
        cudaCheck(cudaStreamDestroy(g->stream));
        cudaCheck(cudaEventDestroy(g->ready));
        cudaCheck(cudaEventDestroy(g->done));
    }
#endif
    free(g->host);
}

static float *gpu_comm_staging(GpuComm *g, size_t n) {
    if (n > g->host_floats) {
        free(g->host);
        g->host_floats = n;
        g->host = (float *)xmalloc(sizeof(float) * n);
    }
    return g->host;
}

// buf [n] (float or floatX, on the device) = its mean over the ranks, once the work queued on `stream` so far
// is done. With NCCL it runs on the communication stream: call gpu_comm_wait before using buf on `stream`.
template <typename T>
static void gpu_comm_mean(GpuComm *g, T *buf, size_t n, cudaStream_t stream) {
    if (g->comm->world == 1 || n == 0) return;
    g->bytes += n * sizeof(T);
#ifdef USE_NCCL
    if (g->use_nccl) {
        ncclDataType_t type = sizeof(T) == 4 ? ncclFloat : ncclBfloat16;
        cudaCheck(cudaEventRecord(g->ready, stream));
        cudaCheck(cudaStreamWaitEvent(g->stream, g->ready, 0));
        ncclCheck(ncclAllReduce(buf, buf, n, type, ncclAvg, g->nccl, g->stream));
        return;
    }
#endif
    float *h = gpu_comm_staging(g, n);
    T *raw = (T *)xmalloc(sizeof(T) * n);
    cudaCheck(cudaMemcpyAsync(raw, buf, sizeof(T) * n, cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    for (size_t i = 0; i < n; i++) h[i] = to_float(raw[i]);
    comm_mean_f32(g->comm, h, n);
    for (size_t i = 0; i < n; i++) raw[i] = from_float<T>(h[i]);
    cudaCheck(cudaMemcpyAsync(buf, raw, sizeof(T) * n, cudaMemcpyHostToDevice, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    free(raw);
}

// Makes `stream` wait for every all-reduce queued so far.
static void gpu_comm_wait(GpuComm *g, cudaStream_t stream) {
#ifdef USE_NCCL
    if (g->comm->world > 1 && g->use_nccl) {
        cudaCheck(cudaEventRecord(g->done, g->stream));
        cudaCheck(cudaStreamWaitEvent(stream, g->done, 0));
    }
#endif
}

// Waits for `stream` (cudaStreamSynchronize) where it may wait for NCCL's all-reduces (g: the model's gcomm,
// NULL with one rank). With NCCL and several ranks a stopped or lost rank would hold such a stream, and the
// host in it, for ever: the stream is polled instead, and past --comm-timeout the communicator is aborted and
// the job ended with the step named.
static void gpu_comm_sync(GpuComm *g, cudaStream_t stream) {
    if (!g || g->comm->world == 1 || !g->use_nccl) {
        cudaCheck(cudaStreamSynchronize(stream));
        return;
    }
    double start = wall_time();
    for (;;) {
        cudaError_t r = cudaStreamQuery(stream);
        if (r == cudaSuccess) return;
        if (r != cudaErrorNotReady) cudaCheck(r);
        comm_pause(g->comm, start, "a wait for an NCCL all-reduce");
    }
}
