/*
 * dev/emu/cuda_emu.h: a CPU emulator of the part of CUDA, cuBLAS, cuBLASLt and NCCL that grass.c uses, so that the
 * GPU trainer and the dev/cuda kernel files run, unchanged, on a machine without a GPU. It is how the CUDA
 * code is tested in CI: the emulated GPU trainer against the CPU trainer, every kernel against its CPU
 * reference. dev/emu/rewrite.py turns each `kernel<<<grid, block, smem, stream>>>(args)` into an
 * emu_launch call; the host compiler then builds the rewritten sources with this header force-included.
 *
 * Kernels: the threads of a block are fibers on one OS thread, switched only where CUDA threads
 * communicate (__syncthreads, __syncwarp, the warp shuffles, mma.sync, ldmatrix); blocks run one after the other.
 * __shared__ variables are function statics (blocks never overlap) and the dynamic shared memory is one
 * buffer, set to NaN bytes before every block, as is every cudaMalloc'd buffer, so reading what was never
 * written shows up. A barrier that some thread of the block (or warp) never reaches is reported as a
 * deadlock, a launch beyond CUDA's limits (threads, grid, shared memory without the opt-in attribute) as
 * the launch error CUDA would give. EMU_SCHEDULE=reverse runs each block's threads in the opposite order, a
 * warp at a time, so that a missing barrier (a thread reading what another writes) changes the results;
 * cp.async copies land at the latest wait that covers them, or with reverse at once (emu_cp_async).
 * EMU_GEMM_ROUND_PRODUCT=1 models cuBLAS kernels that round the product to bf16 before adding C (emu_gemm).
 * cuBLAS/cuBLASLt: column-major products with fp32 accumulation, checking their arguments as the library
 * documents them (leading dimensions, layouts against the operation's shape, the alignment promised to the
 * heuristic against the pointers later passed).
 * NCCL (builds with MPI): each rank a process, each collective done over MPI when it is queued, its sums in
 * the order and precision of a ring's.
 * Streams are synchronous (everything runs in issue order), so what this cannot find: races between
 * streams, races between threads that both orders of EMU_SCHEDULE miss, the memory model, speed.
 */
#pragma once
#define CUDA_EMULATION 1
#define __shared__ static  // a block's shared variables: blocks run one at a time
#define __launch_bounds__(...)

#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <map>
#include <vector>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include "../../common.h"  // GIB

[[noreturn]] static void emu_fail(const char *what, const char *detail) {
    fprintf(stderr, "error: CUDA emulator: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

// ----------------------------------------------------------------------------------------------------
// The SIMT machine: built-in variables, fibers, barriers.

inline uint3 threadIdx, blockIdx;  // threadIdx: of the fiber running now (set at every switch)
inline dim3 blockDim, gridDim;

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline float __fmul_rn(float a, float b) { return a * b; }  // the build has no FMA contraction to forbid

enum { EMU_MAX_THREADS = 1024, EMU_STACK = 256 * 1024 };

// Switching between the scheduler and a fiber. On x86-64 (except under AddressSanitizer, which must see stack
// switches through the C library's longjmp) emu_switch saves the callee-saved registers on the running stack and
// the stack pointer in *from, then continues the context saved in to: a few instructions, where setjmp/longjmp
// also save and check what a fiber never changes (signal masks, cancellation handlers). A new fiber's stack starts
// as if emu_switch had saved it on entry to emu_fiber_main. Elsewhere: setjmp/longjmp, the first entry by ucontext.
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define EMU_SWITCH_ASM 1
extern "C" void emu_switch(void **from, void *to);
asm(".text\n.weak emu_switch\n.type emu_switch, @function\nemu_switch:\n"
    "pushq %rbp\npushq %rbx\npushq %r12\npushq %r13\npushq %r14\npushq %r15\n"
    "movq %rsp, (%rdi)\nmovq %rsi, %rsp\n"
    "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbx\npopq %rbp\nret\n"
    ".size emu_switch, .-emu_switch\n");
#endif

struct EmuFiber {
#ifdef EMU_SWITCH_ASM
    void *sp;            // its saved stack pointer
#else
    jmp_buf jb;          // where the fiber continues
    ucontext_t start;    // its first entry (the only switch through ucontext)
#endif
    char *stack;
    int started, done;
    unsigned waiting;    // the barrier phase it waits to see change, plus one (0: not waiting)
};

struct EmuBarrier {
    int count, arrived;
    unsigned phase;
};

struct EmuMachine {
    EmuFiber fibers[EMU_MAX_THREADS];
#ifdef EMU_SWITCH_ASM
    void *scheduler_sp;
#else
    jmp_buf scheduler;
#endif
    int running, nthreads;
    const char *kernel;                 // the name of the kernel being run, for messages
    void (*body)(void *);               // what every fiber runs, with body_arg
    void *body_arg;
    unsigned long progress;             // barrier arrivals and finished threads (deadlock detection)
    EmuBarrier block_barrier, warp_barrier[EMU_MAX_THREADS / 32];
    unsigned char *dyn_smem;            // the dynamic shared memory of the running block
    size_t dyn_smem_size;               // allocated
    size_t dyn_smem_launch;             // what the running kernel was launched with
    std::map<const void *, int> max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel
    cudaError_t last_error;
};
inline EmuMachine emu;

// Back to the scheduler, which sets threadIdx when it resumes this fiber.
static void emu_yield() {
#ifdef EMU_SWITCH_ASM
    emu_switch(&emu.fibers[emu.running].sp, emu.scheduler_sp);
#else
    if (!_setjmp(emu.fibers[emu.running].jb)) _longjmp(emu.scheduler, 1);
#endif
}

// A fiber runs the body for every block it takes part in; between blocks it waits in emu_yield.
static void emu_fiber_main() {
    for (;;) {
        emu.body(emu.body_arg);
        emu.fibers[emu.running].done = 1;
        emu.progress++;
        emu_yield();
    }
}

static void emu_barrier_wait(EmuBarrier &b) {
    emu.progress++;
    if (++b.arrived == b.count) {
        b.arrived = 0;
        b.phase++;
        return;
    }
    unsigned phase = b.phase;
    emu.fibers[emu.running].waiting = phase + 1;
    while (b.phase == phase) emu_yield();
    emu.fibers[emu.running].waiting = 0;
}

static inline int emu_linear_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

static inline void __syncthreads() { emu_barrier_wait(emu.block_barrier); }
static inline void __syncwarp(unsigned = 0xFFFFFFFFu) { emu_barrier_wait(emu.warp_barrier[emu_linear_tid() / 32]); }

// Warp shuffles: every lane posts its value, waits for the others, reads its source lane's (lanes of a
// partial last warp read only lanes that exist). Two slot sets used in turn make one barrier per shuffle
// enough: a lane can post into a set again only after the next shuffle's barrier, which every lane reaches
// after reading.
static uint64_t emu_shuffle_slots[2][EMU_MAX_THREADS];
static unsigned char emu_shuffle_turn[EMU_MAX_THREADS];
template <typename T> static T emu_shuffle(T v, int src_lane) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    int tid = emu_linear_tid(), base = tid / 32 * 32, turn = emu_shuffle_turn[tid] ^= 1;
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof(T));
    emu_shuffle_slots[turn][tid] = bits;
    __syncwarp();
    int width = emu.warp_barrier[tid / 32].count;
    if (src_lane < 0 || src_lane >= width) src_lane = tid - base;  // outside the warp: own value, as CUDA does
    bits = emu_shuffle_slots[turn][base + src_lane];
    T r;
    memcpy(&r, &bits, sizeof(T));
    return r;
}
template <typename T> static inline T __shfl_xor_sync(unsigned, T v, int mask, int = 32) { return emu_shuffle(v, (emu_linear_tid() % 32) ^ mask); }
template <typename T> static inline T __shfl_sync(unsigned, T v, int src, int = 32) { return emu_shuffle(v, src % 32); }
template <typename T> static inline T __shfl_down_sync(unsigned, T v, unsigned d, int = 32) {
    int lane = emu_linear_tid() % 32;
    return emu_shuffle(v, lane + (int)d < 32 ? lane + (int)d : lane);
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: every lane posts its fragments, then computes its own
// four outputs. The fragment layouts of the PTX ISA are written here from the matrix element's side (which
// lane and register hold element (r, c)) while the kernels use them from the lane's side: the two must agree
// for the products to come out right.
static uint32_t emu_mma_a[2][EMU_MAX_THREADS][4], emu_mma_b[2][EMU_MAX_THREADS][2];  // two sets in turn, as the shuffles
static unsigned char emu_mma_turn[EMU_MAX_THREADS];
static float emu_bf16_half(uint32_t reg, int high) {
    uint32_t bits = (high ? reg >> 16 : reg & 0xFFFFu) << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static void emu_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    int tid = emu_linear_tid(), base = tid / 32 * 32, lane = tid - base, turn = emu_mma_turn[tid] ^= 1;
    if (emu.warp_barrier[tid / 32].count != 32) emu_fail("mma.sync in a partial warp", emu.kernel);
    uint32_t(*fa)[4] = emu_mma_a[turn], (*fb)[2] = emu_mma_b[turn];
    memcpy(fa[tid], a, sizeof(fa[tid]));
    memcpy(fb[tid], b, sizeof(fb[tid]));
    __syncwarp();
    // A (16 x 16) element (r, c): lane 4 (r % 8) + (c % 8) / 2, register (r / 8) + 2 (c / 8), half c % 2
    // B (16 x 8) element (k, n): lane 4 n + (k % 8) / 2, register k / 8, half k % 2
    // C (16 x 8) element e of a lane: row lane / 4 + 8 (e / 2), column 2 (lane % 4) + e % 2
    for (int e = 0; e < 4; e++) {
        int r = lane / 4 + 8 * (e / 2), n = 2 * (lane % 4) + e % 2;
        float acc = 0.0f;
        for (int k = 0; k < 16; k++)
            acc += emu_bf16_half(fa[base + 4 * (r % 8) + (k % 8) / 2][r / 8 + 2 * (k / 8)], k % 2) *
                   emu_bf16_half(fb[base + 4 * n + (k % 8) / 2][k / 8], k % 2);
        d[e] += acc;
    }
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: every lane posts the address of one 16-byte row (lane 8 i + j:
// row j of matrix i), then lane 4 g + t takes in register i the elements (g, 2t), (g, 2t + 1) of matrix i, or with
// .trans (2t, g), (2t + 1, g), low half first. Rows must be 16-byte aligned and inside the block's dynamic shared
// memory (the only shared memory the kernels use it on).
static const unsigned char *emu_ldmatrix_rows[2][EMU_MAX_THREADS];
static unsigned char emu_ldmatrix_turn[EMU_MAX_THREADS];
static void emu_ldmatrix_x4_any(uint32_t r[4], const void *row, int trans) {
    int tid = emu_linear_tid(), base = tid / 32 * 32, lane = tid - base, turn = emu_ldmatrix_turn[tid] ^= 1;
    if (emu.warp_barrier[tid / 32].count != 32) emu_fail("ldmatrix in a partial warp", emu.kernel);
    const unsigned char *p = (const unsigned char *)row;
    if ((uintptr_t)p % 16) emu_fail("ldmatrix: a row address that is not 16-byte aligned", emu.kernel);
    if (p < emu.dyn_smem || p + 16 > emu.dyn_smem + emu.dyn_smem_launch)
        emu_fail("ldmatrix: a row outside the block's dynamic shared memory", emu.kernel);
    emu_ldmatrix_rows[turn][tid] = p;
    __syncwarp();
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
        const unsigned char *const *rows = emu_ldmatrix_rows[turn] + base + 8 * i;
        uint16_t lo, hi;
        memcpy(&lo, trans ? rows[2 * t] + 2 * g : rows[g] + 4 * t, 2);
        memcpy(&hi, trans ? rows[2 * t + 1] + 2 * g : rows[g] + 4 * t + 2, 2);
        r[i] = (uint32_t)lo | (uint32_t)hi << 16;
    }
}
static void emu_ldmatrix_x4(uint32_t r[4], const void *row) { emu_ldmatrix_x4_any(r, row, 0); }
static void emu_ldmatrix_x4_trans(uint32_t r[4], const void *row) { emu_ldmatrix_x4_any(r, row, 1); }

// EMU_SCHEDULE=reverse runs the threads of a block in the opposite order (last thread first), and each warp
// as far as it can go (to a block barrier) before the next: a kernel free of races between its threads gives
// the same bits either way.
static int emu_reverse() {
    static int reverse = -1;
    if (reverse < 0) {
        const char *s = getenv("EMU_SCHEDULE");
        if (s && strcmp(s, "reverse") && strcmp(s, "forward")) emu_fail("EMU_SCHEDULE must be forward or reverse", s);
        reverse = s && !strcmp(s, "reverse");
    }
    return reverse;
}

// cp.async (global to shared, 4 or 16 bytes, zero-filled when the source size is 0), cp.async.commit_group and
// cp.async.wait_group N. A copy lands at one of the two extremes CUDA allows, by EMU_SCHEDULE: forward, at the
// latest, when a wait_group leaves fewer groups pending than are newer than its own (a kernel that reads a
// buffer before waiting for it reads the NaN bytes the buffer held); reverse, at once (a kernel that refills a
// buffer while other threads may still read it gives them the new tile). Copies never waited for are dropped
// at the next block.
struct EmuCopy {
    unsigned char *dst;
    const unsigned char *src;
    int bytes, src_bytes, group;  // group: its commit number, or -1 while not yet committed
};
static void emu_copy_land(const EmuCopy &c) {  // the bytes past src_bytes are zero
    memset(c.dst, 0, c.bytes);
    memcpy(c.dst, c.src, c.src_bytes);
}
static std::vector<EmuCopy> emu_copies[EMU_MAX_THREADS];
static int emu_copy_groups[EMU_MAX_THREADS];  // groups committed by each thread since its block began
static void emu_cp_async(void *dst, const void *src, int bytes, int src_bytes) {
    int tid = emu_linear_tid();
    unsigned char *d = (unsigned char *)dst;
    if ((uintptr_t)d % bytes || (uintptr_t)src % bytes) emu_fail("cp.async: an address not aligned to the copy's size", emu.kernel);
    if (d < emu.dyn_smem || d + bytes > emu.dyn_smem + emu.dyn_smem_launch)
        emu_fail("cp.async: a destination outside the block's dynamic shared memory", emu.kernel);
    EmuCopy c = {d, (const unsigned char *)src, bytes, src_bytes, -1};
    if (emu_reverse()) emu_copy_land(c);
    else emu_copies[tid].push_back(c);
}
static void emu_cp_async_commit() {
    int tid = emu_linear_tid();
    for (EmuCopy &c : emu_copies[tid])
        if (c.group < 0) c.group = emu_copy_groups[tid];
    emu_copy_groups[tid]++;
}
static void emu_cp_async_wait(int pending) {
    int tid = emu_linear_tid();
    std::vector<EmuCopy> &q = emu_copies[tid], left;
    for (EmuCopy &c : q) {
        if (c.group < 0 || c.group >= emu_copy_groups[tid] - pending) {
            left.push_back(c);
            continue;
        }
        emu_copy_land(c);
    }
    q.swap(left);
}
static void emu_copies_reset() {
    for (int i = 0; i < EMU_MAX_THREADS; i++) emu_copies[i].clear(), emu_copy_groups[i] = 0;
}

static unsigned char *emu_dynamic_shared() { return emu.dyn_smem; }

// Runs f() as every thread of every block of the grid (the rewritten form of kernel<<<grid, block, smem>>>).
template <typename F> static void emu_run(const char *name, dim3 grid, dim3 block, size_t smem, F &f) {
    emu.kernel = name;
    emu.nthreads = (int)(block.x * block.y * block.z);
    gridDim = grid;
    blockDim = block;
    emu.body = [](void *p) { (*(F *)p)(); };
    emu.body_arg = &f;
    emu.dyn_smem_launch = smem;
    if (smem > emu.dyn_smem_size) {
        free(emu.dyn_smem);
        emu.dyn_smem = (unsigned char *)aligned_alloc(256, (smem + 255) / 256 * 256);
        emu.dyn_smem_size = smem;
    }
    for (int i = 0; i < emu.nthreads; i++) {
        EmuFiber &fb = emu.fibers[i];
        if (!fb.stack) {
            fb.stack = (char *)malloc(EMU_STACK);
            if (!fb.stack) emu_fail("out of memory for the fibers' stacks", name);
        }
    }
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = make_uint3(x, y, z);
                if (smem) memset(emu.dyn_smem, 0xFF, smem);
                emu_copies_reset();
                emu.block_barrier = {emu.nthreads, 0, 0};
                for (int w = 0; w * 32 < emu.nthreads; w++) emu.warp_barrier[w] = {min(32, emu.nthreads - 32 * w), 0, 0};
                for (int i = 0; i < emu.nthreads; i++) emu.fibers[i].done = 0, emu.fibers[i].waiting = 0;
                auto resume = [&](int i) {  // runs thread i until it waits or ends
                    EmuFiber &fb = emu.fibers[i];
                    if (fb.done) return;
                    emu.running = i;
                    threadIdx.x = i % block.x, threadIdx.y = i / block.x % block.y, threadIdx.z = i / (block.x * block.y);
#ifdef EMU_SWITCH_ASM
                    if (!fb.started) {  // six zero registers and emu_fiber_main's address, below a 16-byte aligned top
                        fb.started = 1;
                        void **top = (void **)((uintptr_t)(fb.stack + EMU_STACK) & ~(uintptr_t)15);
                        fb.sp = top - 8;
                        memset(fb.sp, 0, 6 * sizeof(void *));
                        top[-2] = (void *)emu_fiber_main;
                    }
                    emu_switch(&emu.scheduler_sp, fb.sp);
#else
                    if (!_setjmp(emu.scheduler)) {
                        if (fb.started) _longjmp(fb.jb, 1);
                        fb.started = 1;
                        ucontext_t here;
                        getcontext(&fb.start);
                        fb.start.uc_stack.ss_sp = fb.stack;
                        fb.start.uc_stack.ss_size = EMU_STACK;
                        fb.start.uc_link = NULL;  // never returns: emu_fiber_main loops
                        makecontext(&fb.start, emu_fiber_main, 0);
                        swapcontext(&here, &fb.start);
                    }
#endif
                };
                int nwarps = (emu.nthreads + 31) / 32;
                for (int alive = emu.nthreads; alive > 0;) {
                    unsigned long before = emu.progress;
                    if (!emu_reverse()) {  // forward: the threads in turn, each to its next wait (warps in step)
                        for (int i = 0; i < emu.nthreads; i++) resume(i);
                    } else {  // reverse: the last warp first, each as far as it goes before the next starts; when a
                              // block barrier opens, the last warp again
                        unsigned phase = emu.block_barrier.phase;
                        for (int w = nwarps - 1; w >= 0 && emu.block_barrier.phase == phase; w--) {
                            unsigned long warp_before;
                            do {
                                warp_before = emu.progress;
                                for (int i = min(emu.nthreads, 32 * w + 32) - 1; i >= 32 * w; i--) resume(i);
                            } while (emu.progress != warp_before && emu.block_barrier.phase == phase);
                        }
                    }
                    alive = 0;
                    for (int i = 0; i < emu.nthreads; i++) alive += !emu.fibers[i].done;
                    if (alive && emu.progress == before) {
                        char where[512];
                        snprintf(where, sizeof(where), "%s, block (%u, %u, %u): %d threads wait at a barrier that others of their block or warp never reach",
                                 name, x, y, z, alive);
                        emu_fail("deadlock", where);
                    }
                }
            }
}

template <typename F>
static void emu_launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t, F f) {
    size_t threads = (size_t)block.x * block.y * block.z;
    int allowed = emu.max_dyn_smem.count(fn) ? emu.max_dyn_smem[fn] : 48 * 1024;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u ||
        grid.y > 65535 || grid.z > 65535)
        emu.last_error = cudaErrorInvalidConfiguration;
    else if (smem > (size_t)allowed)
        emu.last_error = cudaErrorInvalidValue;
    else
        emu_run(name, grid, block, smem, f);
    if (emu.last_error != cudaSuccess)
        fprintf(stderr, "CUDA emulator: launch of %s refused: grid (%u, %u, %u), block (%u, %u, %u), %zu bytes of shared memory (allowed %d)\n",
                name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, allowed);
}

// ----------------------------------------------------------------------------------------------------
// The runtime API: device memory is host memory; streams and events are synchronous.

inline size_t emu_mem_used;
inline std::map<void *, size_t> emu_allocations;
static size_t emu_mem_total() {
    const char *s = getenv("EMU_GPU_MEM_GIB");  // the emulated card's size (default 16 GiB)
    return (size_t)((s ? atof(s) : 16.0) * GIB);
}

cudaError_t cudaMalloc(void **p, size_t n) {
    if (emu_mem_used + n > emu_mem_total()) return emu.last_error = cudaErrorMemoryAllocation;
    if (n >= ((size_t)1 << 30)) {  // a large block (--gpu-mem-limit's hold-back): reserved, never touched
        *p = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (*p == MAP_FAILED) return emu.last_error = cudaErrorMemoryAllocation;
    } else {
        if (posix_memalign(p, 256, n ? n : 1)) return emu.last_error = cudaErrorMemoryAllocation;  // exactly n: a sanitizer sees overruns
        memset(*p, 0xFF, n);  // NaN in fp32 and bf16: reading memory never written shows
    }
    emu_allocations[*p] = n;
    emu_mem_used += n;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = emu_allocations.find(p);
    if (it == emu_allocations.end()) return emu.last_error = cudaErrorInvalidValue;
    if (it->second >= ((size_t)1 << 30)) munmap(p, it->second);
    else free(p);
    emu_mem_used -= it->second;
    emu_allocations.erase(it);
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total_b) {
    *total_b = emu_mem_total();
    *free_b = *total_b - emu_mem_used;
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind) {
    memmove(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t) { return cudaMemcpy(dst, src, n, kind); }
// height rows of width bytes, with CUDA's argument checks (pitches at least the width)
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height, cudaMemcpyKind) {
    if (dpitch < width || spitch < width) return emu.last_error = cudaErrorInvalidPitchValue;
    for (size_t i = 0; i < height; i++) memmove((char *)dst + i * dpitch, (const char *)src + i * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t) {
    return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}
cudaError_t cudaMemset(void *p, int v, size_t n) {
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { return cudaMemset(p, v, n); }
cudaError_t cudaStreamCreate(cudaStream_t *s) {
    static uintptr_t next = 1;
    *s = (cudaStream_t)(next++ * 16);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }  // its work ran when it was queued
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
// An event is the host time at which it was recorded: work runs when it is launched here, so that is when the
// stream reached it.
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t) new double(0.0);
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete (double *)e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    *(double *)e = ts.tv_sec + 1e-9 * ts.tv_nsec;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(1000.0 * (*(double *)b - *(double *)a));
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : (emu.last_error = cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "CPU emulator of CUDA (dev/emu)");
    p->totalGlobalMem = emu_mem_total();
    p->multiProcessorCount = 132;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    p->maxThreadsPerBlock = 1024;
    p->warpSize = 32;
    p->major = 9;
    return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void *fn, cudaFuncAttribute attr, int value) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > 227 * 1024) return emu.last_error = cudaErrorInvalidValue;
        emu.max_dyn_smem[fn] = value;
    }
    return cudaSuccess;
}
template <typename T> cudaError_t cudaFuncSetAttribute(T *fn, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute((const void *)fn, attr, value);
}
cudaError_t cudaGetLastError() {
    cudaError_t e = emu.last_error;
    emu.last_error = cudaSuccess;
    return e;
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    default: return "unknown error";
    }
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    default: return "cudaErrorUnknown";
    }
}

// ----------------------------------------------------------------------------------------------------
// cuBLAS and cuBLASLt: D = alpha op(A) op(B) + beta C in column-major terms, fp32 accumulation.

static float emu_load(const void *p, cudaDataType t, size_t i) {
    return t == CUDA_R_32F ? ((const float *)p)[i] : __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}
static void emu_store(void *p, cudaDataType t, size_t i, float v) {
    if (t == CUDA_R_32F) ((float *)p)[i] = v;
    else ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
}

// The fp32 dot product of the emulated products: eight partial sums over k (element p into sum p mod 8), added
// pairwise at the end. A GPU's blocked products also sum in several partial sequences; independent sums let the
// compiler keep them in one vector register (a single running sum is bound by the latency of each addition).
static float emu_dot(const float *x, const float *y, int k) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int p = 0;
    for (; p + 8 <= k; p += 8)
        for (int l = 0; l < 8; l++) s[l] += x[p + l] * y[p + l];
    for (int l = 0; p < k; p++, l++) s[l] += x[p] * y[p];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// EMU_GEMM_ROUND_PRODUCT=1 rounds alpha op(A) op(B) to bf16 before beta C is added, as some cuBLAS kernels do
// for products of a few tokens: dev/cuda/matmul.cu's bounds allow for it, and t_emu_kernels checks that they do
static cublasStatus_t emu_gemm(int transa, int transb, int m, int n, int k, float alpha, const void *A, cudaDataType ta, long lda,
                               const void *B, cudaDataType tb, long ldb, float beta, void *C, cudaDataType tc, long ldc) {
    static const int round_product = getenv("EMU_GEMM_ROUND_PRODUCT") && !strcmp(getenv("EMU_GEMM_ROUND_PRODUCT"), "1");
    if (m < 0 || n < 0 || k < 0 || lda < (transa ? k : m) || lda < 1 || ldb < (transb ? n : k) || ldb < 1 || ldc < m || ldc < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (ta != tb || (ta != CUDA_R_32F && ta != CUDA_R_16BF) || (tc != CUDA_R_32F && tc != ta)) return CUBLAS_STATUS_NOT_SUPPORTED;
    // op(A) as rows of k (a[i][p]) and op(B) as columns of k (b[j][p]), in fp32, then dot products
    float *a = (float *)malloc(sizeof(float) * ((size_t)m * k + 1)), *b = (float *)malloc(sizeof(float) * ((size_t)n * k + 1));
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++) a[(size_t)i * k + p] = emu_load(A, ta, transa ? p + (size_t)i * lda : i + (size_t)p * lda);
    for (int j = 0; j < n; j++)
        for (int p = 0; p < k; p++) b[(size_t)j * k + p] = emu_load(B, tb, transb ? j + (size_t)p * ldb : p + (size_t)j * ldb);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float acc = emu_dot(a + (size_t)i * k, b + (size_t)j * k, k);
            size_t at = i + (size_t)j * ldc;
            float product = alpha * acc;
            if (round_product && beta != 0.0f && tc == CUDA_R_16BF) product = __bfloat162float(__float2bfloat16(product));
            emu_store(C, tc, at, product + (beta != 0.0f ? beta * emu_load(C, tc, at) : 0.0f));  // beta 0: C is not read
        }
    free(a);
    free(b);
    return CUBLAS_STATUS_SUCCESS;
}

struct EmuLtDesc { int transa, transb; };
struct EmuLtLayout { cudaDataType type; uint64_t rows, cols; int64_t ld; int32_t batch; int64_t stride; };
struct EmuLtPref { uint32_t align[4]; uint64_t workspace; };

cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)malloc(1);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
// the emulated products sum in fp32 (emu_dot): no reduction in the output type to forbid
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb, const void *beta,
                            void *C, cudaDataType ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    return emu_gemm(ta != CUBLAS_OP_N, tb != CUBLAS_OP_N, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb,
                    *(const float *)beta, C, ct, ldc);
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = (cublasLtHandle_t)malloc(1);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    *d = (cublasLtMatmulDesc_t)calloc(1, sizeof(EmuLtDesc));
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    free(d);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const void *buf, size_t size) {
    EmuLtDesc *e = (EmuLtDesc *)d;
    if ((attr != CUBLASLT_MATMUL_DESC_TRANSA && attr != CUBLASLT_MATMUL_DESC_TRANSB) || size != sizeof(cublasOperation_t))
        return CUBLAS_STATUS_NOT_SUPPORTED;  // only what grass.c uses
    int t = *(const cublasOperation_t *)buf != CUBLAS_OP_N;
    (attr == CUBLASLT_MATMUL_DESC_TRANSA ? e->transa : e->transb) = t;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld) {
    if (ld < (int64_t)rows || ld < 1) return CUBLAS_STATUS_INVALID_VALUE;
    EmuLtLayout *e = (EmuLtLayout *)malloc(sizeof(EmuLtLayout));
    *e = {type, rows, cols, ld, 1, 0};
    *l = (cublasLtMatrixLayout_t)e;
    return CUBLAS_STATUS_SUCCESS;
}
// A strided batch: BATCH_COUNT (int32) products, the matrix of product i STRIDED_BATCH_OFFSET (int64) elements
// after that of product i - 1 (0 by default: the same matrix for every product).
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, const void *buf, size_t size) {
    EmuLtLayout *e = (EmuLtLayout *)l;
    if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && size == sizeof(int32_t) && *(const int32_t *)buf >= 1)
        e->batch = *(const int32_t *)buf;
    else if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET && size == sizeof(int64_t) && *(const int64_t *)buf >= 0)
        e->stride = *(const int64_t *)buf;
    else
        return CUBLAS_STATUS_NOT_SUPPORTED;  // only what grass.c uses
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    EmuLtPref *e = (EmuLtPref *)calloc(1, sizeof(EmuLtPref));
    for (int i = 0; i < 4; i++) e->align[i] = 256;  // the library's default assumption
    *p = (cublasLtMatmulPreference_t)e;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    EmuLtPref *e = (EmuLtPref *)p;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: e->workspace = *(const uint64_t *)buf; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: e->align[0] = *(const uint32_t *)buf; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: e->align[1] = *(const uint32_t *)buf; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: e->align[2] = *(const uint32_t *)buf; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: e->align[3] = *(const uint32_t *)buf; break;
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: break;  // no split-K here (CUBLASLT_REDUCTION_SCHEME_NONE), which any mask allows
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return size == 4 || size == 8 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

// The shape m x n x k of a product from its layouts, as cuBLASLt derives it; 0 when they disagree.
static int emu_lt_shape(const EmuLtDesc *d, const EmuLtLayout *a, const EmuLtLayout *b, const EmuLtLayout *c, const EmuLtLayout *dd,
                        uint64_t *m, uint64_t *n, uint64_t *k) {
    *m = c->rows, *n = c->cols, *k = d->transa ? a->rows : a->cols;
    uint64_t am = d->transa ? a->cols : a->rows, bk = d->transb ? b->cols : b->rows, bn = d->transb ? b->rows : b->cols;
    return am == *m && bk == *k && bn == *n && dd->rows == c->rows && dd->cols == c->cols && dd->type == c->type &&
           a->batch == c->batch && b->batch == c->batch && dd->batch == c->batch;  // one batch count throughout
}

// The heuristic offers one algorithm, which records the alignments it was promised (checked at each product).
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                                              cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t *results, int *count) {
    uint64_t m, n, k;
    if (requested < 1 || !emu_lt_shape((EmuLtDesc *)op, (EmuLtLayout *)A, (EmuLtLayout *)B, (EmuLtLayout *)C, (EmuLtLayout *)D, &m, &n, &k))
        return CUBLAS_STATUS_INVALID_VALUE;
    memset(results, 0, sizeof(*results));
    memcpy(results->algo.data, ((EmuLtPref *)pref)->align, sizeof(((EmuLtPref *)pref)->align));
    results->state = CUBLAS_STATUS_SUCCESS;
    results->wavesCount = 1.0f;
    *count = 1;
    return CUBLAS_STATUS_SUCCESS;
}

// The one algorithm's configuration: id 0, no tile named, no split of K.
cublasStatus_t cublasLtMatmulAlgoConfigGetAttribute(const cublasLtMatmulAlgo_t *, cublasLtMatmulAlgoConfigAttributes_t attr, void *buf,
                                                    size_t size, size_t *written) {
    if (attr == CUBLASLT_ALGO_CONFIG_ID && size == 4) *(int32_t *)buf = 0;
    else if (attr == CUBLASLT_ALGO_CONFIG_TILE_ID && size == 4) *(uint32_t *)buf = CUBLASLT_MATMUL_TILE_UNDEFINED;
    else if (attr == CUBLASLT_ALGO_CONFIG_SPLITK_NUM && size == 4) *(int32_t *)buf = 1;
    else return CUBLAS_STATUS_NOT_SUPPORTED;  // only what grass.c uses
    if (written) *written = size;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t op, const void *alpha, const void *A, cublasLtMatrixLayout_t Al,
                              const void *B, cublasLtMatrixLayout_t Bl, const void *beta, const void *C, cublasLtMatrixLayout_t Cl,
                              void *D, cublasLtMatrixLayout_t Dl, const cublasLtMatmulAlgo_t *algo, void *, size_t, cudaStream_t) {
    const EmuLtDesc *d = (const EmuLtDesc *)op;
    const EmuLtLayout *a = (const EmuLtLayout *)Al, *b = (const EmuLtLayout *)Bl, *c = (const EmuLtLayout *)Cl, *dd = (const EmuLtLayout *)Dl;
    uint64_t m, n, k;
    if (!emu_lt_shape(d, a, b, c, dd, &m, &n, &k)) return CUBLAS_STATUS_INVALID_VALUE;
    if (c->ld != dd->ld || c->stride != dd->stride || c->type != dd->type) return CUBLAS_STATUS_NOT_SUPPORTED;  // grass.c gives C and D one layout
    uint32_t align[4];
    memcpy(align, algo->data, sizeof(align));
    const EmuLtLayout *layouts[4] = {a, b, c, dd};
    const void *base[4] = {A, B, C, D};
    for (int p = 0; p < c->batch; p++) {  // the products of a batch one after the other
        const void *ptr[4];
        for (int i = 0; i < 4; i++) {
            const EmuLtLayout *l = layouts[i];
            ptr[i] = (const char *)base[i] + p * l->stride * (l->type == CUDA_R_32F ? 4 : 2);
            if ((uintptr_t)ptr[i] % align[i]) {
                fprintf(stderr, "CUDA emulator: cublasLtMatmul: matrix %c of product %d at %p is not aligned to the %u bytes "
                        "promised to the heuristic\n", "ABCD"[i], p, ptr[i], align[i]);
                return CUBLAS_STATUS_INVALID_VALUE;
            }
        }
        if (ptr[2] != ptr[3]) {  // D = alpha op(A) op(B) + beta C: C first copied into D, column by column
            size_t esize = c->type == CUDA_R_32F ? 4 : 2;
            for (uint64_t j = 0; j < n; j++)
                memcpy((char *)ptr[3] + j * c->ld * esize, (const char *)ptr[2] + j * c->ld * esize, m * esize);
        }
        cublasStatus_t st = emu_gemm(d->transa, d->transb, (int)m, (int)n, (int)k, *(const float *)alpha, ptr[0], a->type, a->ld,
                                     ptr[1], b->type, b->ld, *(const float *)beta, (void *)ptr[3], c->type, c->ld);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// ----------------------------------------------------------------------------------------------------
// NCCL, for builds with MPI: every rank is a process of its own (device memory is host memory), and a
// collective is done when it is queued: the point where the real one would start, after the work queued before
// it on the compute stream (the trainer's event). A buffer queued before its gradient is complete therefore
// comes out wrong here too. Precision: all-reduce and reduce-scatter give each element the value of a ring
// reduction, the ranks' values added one at a time in rank order 0, 1, ..., n-1, the partial sum rounded to the
// buffer's type after every addition (in NCCL's ring the partial sums travel between hops in that type: bf16
// for bf16 buffers), ncclAvg as NCCL does it for floating types (emu_nccl_reduce); both collectives give the
// same value for the same element. Not modelled: the order of NCCL's ring (each chunk starts at another rank;
// trees and NVLS add in other orders) and any multiply-add its compiler fuses, so the values are NCCL's in
// where and how often they round, not bit for bit.
#if defined(USE_NCCL) && defined(USE_MPI)
#include <mpi.h>
#include <nccl.h>
#include <vector>

struct ncclComm {
    int nranks, rank;
};
ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    memset(id, 0, sizeof(*id));
    snprintf(id->internal, sizeof(id->internal), "cuda_emu");
    return ncclSuccess;
}
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (strcmp(id.internal, "cuda_emu") || nranks != world || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    *comm = new ncclComm{nranks, rank};
    return ncclSuccess;
}
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    delete comm;
    return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t comm) {  // nothing is ever in flight to abort
    delete comm;
    return ncclSuccess;
}
const char *ncclGetErrorString(ncclResult_t r) { return r == ncclSuccess ? "no error" : "invalid argument (the CUDA emulator's NCCL)"; }
// Groups only matter for operations that must progress together; here each one is complete when it returns.
ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }

// The size of an element of the types the emulator's NCCL takes, 0 for any other type, and the type as the
// cuBLAS one that emu_load/emu_store read and write.
static size_t emu_nccl_type(ncclDataType_t type, cudaDataType *t) {
    *t = type == ncclFloat ? CUDA_R_32F : CUDA_R_16BF;
    return type == ncclFloat ? 4 : type == ncclBfloat16 ? 2 : 0;
}

// Every rank's `bytes` bytes at `send` into all[rank * bytes ...] of every rank (MPI_Allgather), or, with
// to_each, the bytes at send + q * bytes into all[rank * bytes ...] of rank q (MPI_Alltoall: every rank gets
// its own block of each rank's buffer). In pieces of at most 1 GiB, MPI's counts being ints: a piece of each
// rank's block is one element of a type whose extent is the whole block, so that it lands at its rank's place.
static ncclResult_t emu_nccl_exchange(const void *send, std::vector<char> &all, size_t bytes, bool to_each, int nranks) {
    all.resize(bytes * nranks);
    for (size_t at = 0; at < bytes; at += (size_t)1 << 30) {
        int n = (int)(bytes - at < ((size_t)1 << 30) ? bytes - at : (size_t)1 << 30);
        MPI_Datatype piece, block;
        MPI_Type_contiguous(n, MPI_BYTE, &piece);
        MPI_Type_create_resized(piece, 0, (MPI_Aint)bytes, &block);
        MPI_Type_commit(&block);
        const char *from = (const char *)send + at;
        int rc = to_each ? MPI_Alltoall(from, 1, block, all.data() + at, 1, block, MPI_COMM_WORLD)
                         : MPI_Allgather(from, 1, block, all.data() + at, 1, block, MPI_COMM_WORLD);
        MPI_Type_free(&block);
        MPI_Type_free(&piece);
        if (rc != MPI_SUCCESS) return ncclSystemError;
    }
    return ncclSuccess;
}

// The reduction of both reducing collectives, so that they agree element for element: n elements of every
// rank (send of an all-reduce; with to_each, the rank's own block of each rank's send, for a reduce-scatter)
// gathered (emu_nccl_exchange) and added as a ring adds them: rank 0's value, then each next rank's added to
// the partial sum, rounded to the buffer's type after each addition. ncclAvg is NCCL's PreMulSum for floating
// types (src/enqueue.cc, hostToDevRedOp: the scalar 1/nranks in the element type, float(1.0 / nranks) for
// fp32, that rounded to bf16 for bf16; src/device/reduce_kernel.h, Apply_PreOp of FuncPreMulSum, and
// common_kernel.h, reduceCopyPacks: each rank's input multiplied by it, in its type, as it is read, before it
// joins the sum): sum(round(x_r * round(1/n))), no division at the end. ncclSum's scale 1 leaves x_r exact.
static ncclResult_t emu_nccl_reduce(const void *send, void *recv, size_t n, bool to_each, ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm) {
    cudaDataType t;
    size_t esize = emu_nccl_type(type, &t);
    if (!esize || (op != ncclSum && op != ncclAvg)) return ncclInvalidArgument;
    std::vector<char> all;
    ncclResult_t r = emu_nccl_exchange(send, all, n * esize, to_each, comm->nranks);
    if (r != ncclSuccess) return r;
    auto round = [t](float v) { return t == CUDA_R_32F ? v : __bfloat162float(__float2bfloat16(v)); };
    float scale = round(op == ncclAvg ? (float)(1.0 / comm->nranks) : 1.0f);
    for (size_t i = 0; i < n; i++) {
        float sum = 0.0f;
        for (int q = 0; q < comm->nranks; q++) {
            float x = round(emu_load(all.data(), t, q * n + i) * scale);
            sum = q == 0 ? x : round(sum + x);
        }
        emu_store(recv, t, i, sum);
    }
    return ncclSuccess;
}

// Every rank's count elements at send, reduced (emu_nccl_reduce), into recv of every rank (in place when
// recv == send).
ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
    return emu_nccl_reduce(send, recv, count, false, type, op, comm);
}

// Elements [rank * recvcount, (rank + 1) * recvcount) of every rank's send, reduced (emu_nccl_reduce), into
// recv of that rank (in place when recv == send + rank * recvcount elements).
ncclResult_t ncclReduceScatter(const void *send, void *recv, size_t recvcount, ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
    return emu_nccl_reduce(send, recv, recvcount, true, type, op, comm);
}

// Every rank's sendcount elements at send into recv of every rank, rank q's at q * sendcount (in place when
// send == recv + rank * sendcount elements: gathered into a buffer of its own before recv is written).
ncclResult_t ncclAllGather(const void *send, void *recv, size_t sendcount, ncclDataType_t type, ncclComm_t comm, cudaStream_t) {
    cudaDataType t;
    size_t esize = emu_nccl_type(type, &t);
    if (!esize) return ncclInvalidArgument;
    std::vector<char> all;
    ncclResult_t r = emu_nccl_exchange(send, all, sendcount * esize, false, comm->nranks);
    if (r == ncclSuccess && !all.empty()) memcpy(recv, all.data(), all.size());
    return r;
}
#endif
