/*
 * comm_gpu.cuh: data-parallel collectives of device buffers for the GPU trainer (docs/design.md §7), over the ranks
 * of comm.h: all-reduces (averages), reduce-scatters and all-gathers of buckets (shard.h), and the kernel that packs
 * tensors into a bucket and takes them out. With NCCL (the default; the communicator's unique id is broadcast over
 * MPI) they run on a stream of their own, so that the backward pass goes on while finished buckets are being
 * reduced (each collective is ordered after the work queued so far on the compute stream; gpu_comm_wait makes the
 * compute stream wait for every collective queued so far); or with --comm mpi through host memory, synchronously
 * (for machines without NCCL, and for several ranks sharing one GPU in tests). bf16 buffers are summed in fp32 on
 * the MPI path. A world of one rank does nothing. The host waits for streams that wait for NCCL's
 * all-reduces (gpu_comm_sync) are watched like comm.h's collectives: past --comm-timeout the communicator is
 * aborted and the job ended.
 */
#pragma once

#include "comm.h"
#include "shard.h"
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
    size_t bytes[COMM_CATEGORIES];  // bytes moved so far by category (comm.h's COMM_GRADS ...: the log's)
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

// The stream on which the results of the collectives queued from `stream` are ready in order: NCCL's own (work
// queued there after a collective follows it), or `stream` itself on the MPI path (synchronous).
static cudaStream_t gpu_comm_stream(GpuComm *g, cudaStream_t stream) {
#ifdef USE_NCCL
    if (g->use_nccl) return g->stream;
#endif
    return stream;
}

// Makes the communication stream wait for the work queued on `stream` so far (NCCL; a no-op on the MPI path, which
// runs on `stream` itself).
static void gpu_comm_follow(GpuComm *g, cudaStream_t stream) {
#ifdef USE_NCCL
    if (g->use_nccl) {
        cudaCheck(cudaEventRecord(g->ready, stream));
        cudaCheck(cudaStreamWaitEvent(g->stream, g->ready, 0));
    }
#endif
}

// The mean over the ranks of buf [ranks x slot] (float or bf16, on the device) once the work queued on `stream` so far
// is done: with ranks 1 all of it, in place (an all-reduce); with ranks = the world, each rank's slot r at buf + r slot
// (a reduce-scatter: the other slots are left as they were). With NCCL it runs on the communication stream: use the
// result there (gpu_comm_stream), or call gpu_comm_wait before using it on `stream`. `category`: the log's.
template <typename T>
static void gpu_comm_mean(GpuComm *g, T *buf, size_t slot, int ranks, int category, cudaStream_t stream) {
    const Comm *c = g->comm;
    if (c->world == 1 || slot == 0) return;
    size_t n = slot * ranks, mine = ranks > 1 ? (size_t)c->rank * slot : 0;
    g->bytes[category] += n * sizeof(T);
#ifdef USE_NCCL
    if (g->use_nccl) {
        ncclDataType_t type = sizeof(T) == 4 ? ncclFloat : ncclBfloat16;
        cudaCheck(cudaEventRecord(g->ready, stream));
        cudaCheck(cudaStreamWaitEvent(g->stream, g->ready, 0));
        if (ranks > 1) ncclCheck(ncclReduceScatter(buf, buf + mine, slot, type, ncclAvg, g->nccl, g->stream));
        else ncclCheck(ncclAllReduce(buf, buf, n, type, ncclAvg, g->nccl, g->stream));
        return;
    }
#endif
    float *h = gpu_comm_staging(g, n);
    T *raw = (T *)xmalloc(sizeof(T) * n);
    cudaCheck(cudaMemcpyAsync(raw, buf, sizeof(T) * n, cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    for (size_t i = 0; i < n; i++) h[i] = to_float(raw[i]);
    if (ranks > 1) comm_reduce_scatter_mean_f32(c, h, h + mine, slot);
    else comm_mean_f32(c, h, n);
    for (size_t i = mine; i < mine + (ranks > 1 ? slot : n); i++) raw[i] = from_float<T>(h[i]);
    cudaCheck(cudaMemcpyAsync(buf + mine, raw + mine, sizeof(T) * (ranks > 1 ? slot : n), cudaMemcpyHostToDevice, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    free(raw);
}

// buf [world x slot] (float or bf16, on the device) = every rank's slot r at buf + r slot, in place: an all-gather,
// ordered and completed as gpu_comm_mean.
template <typename T>
static void gpu_comm_allgather(GpuComm *g, T *buf, size_t slot, int category, cudaStream_t stream) {
    const Comm *c = g->comm;
    if (c->world == 1 || slot == 0) return;
    g->bytes[category] += slot * c->world * sizeof(T);
#ifdef USE_NCCL
    if (g->use_nccl) {
        ncclDataType_t type = sizeof(T) == 4 ? ncclFloat : ncclBfloat16;
        cudaCheck(cudaEventRecord(g->ready, stream));
        cudaCheck(cudaStreamWaitEvent(g->stream, g->ready, 0));
        ncclCheck(ncclAllGather(buf + (size_t)c->rank * slot, buf, slot, type, g->nccl, g->stream));
        return;
    }
#endif
    size_t n = slot * c->world;
    T *raw = (T *)xmalloc(sizeof(T) * n);
    cudaCheck(cudaMemcpyAsync(raw + (size_t)c->rank * slot, buf + (size_t)c->rank * slot, sizeof(T) * slot,
                              cudaMemcpyDeviceToHost, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    comm_allgather(c, raw, sizeof(T) * slot);
    cudaCheck(cudaMemcpyAsync(buf, raw, sizeof(T) * n, cudaMemcpyHostToDevice, stream));
    cudaCheck(cudaStreamSynchronize(stream));
    free(raw);
}

// Which way shard_copy moves a segment: into its bucket, or out of it into the tensor (overwriting, or adding: a
// rank's part of a gradient accumulated over micro-batches, --shard-weights).
enum { SHARD_PACK, SHARD_UNPACK, SHARD_UNPACK_ADD };

// The elements of ranks [r0, r1)'s pieces of a segment (shard.h: each rank r's elements r chunk + [lo, hi) of the
// tensor's n) between the tensor and its bucket (dir: SHARD_PACK, dst is the bucket and src the tensor; else the other
// way round). Element r chunk + off sits in the bucket at r slot + slot_offset + off - lo, and in the tensor pointer at
// e - base (base: the element it starts at: 0 for a whole tensor, r chunk for rank r's part alone). Types convert:
// fp32 or bf16 buckets, floatX or fp32 tensors.
template <typename D, typename S>
__global__ void shard_copy_kernel(D *dst, const S *src, size_t n, size_t chunk, size_t lo, size_t hi, size_t slot,
                                  size_t slot_offset, int r0, int r1, size_t base, int dir) {
    size_t w = hi - lo, total = (size_t)(r1 - r0) * w;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = r0 + i / w, off = lo + i % w, e = r * chunk + off, at = r * slot + slot_offset + off - lo;
        if (e >= n) continue;
        if (dir == SHARD_PACK) dst[at] = from_float<D>(to_float(src[e - base]));
        else if (dir == SHARD_UNPACK) dst[e - base] = from_float<D>(to_float(src[at]));
        else dst[e - base] = from_float<D>(to_float(dst[e - base]) + to_float(src[at]));
    }
}

// Segment s of plan p: ranks [r0, r1)'s pieces between its tensor (whose element `base` the pointer holds first) and
// `bucket`, in direction dir.
template <typename B, typename X>
static void shard_copy(B *bucket, X *tensor, size_t base, const ShardPlan *p, const ShardSeg *s, int r0, int r1, int dir,
                       cudaStream_t stream) {
    size_t total = (size_t)(r1 - r0) * (s->hi - s->lo), slot = p->bucket[s->bucket].slot;
    if (total == 0) return;
    if (dir == SHARD_PACK)
        shard_copy_kernel<<<grid_stride_blocks(total, 256), 256, 0, stream>>>(bucket, tensor, s->numel, s->chunk, s->lo, s->hi,
                                                                              slot, s->slot_offset, r0, r1, base, dir);
    else
        shard_copy_kernel<<<grid_stride_blocks(total, 256), 256, 0, stream>>>(tensor, bucket, s->numel, s->chunk, s->lo, s->hi,
                                                                              slot, s->slot_offset, r0, r1, base, dir);
    cudaCheckLaunch();
}

// Makes `stream` wait for every collective queued so far (and for the work queued after them on the communication stream).
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
