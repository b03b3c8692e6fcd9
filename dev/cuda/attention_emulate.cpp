/*
 * dev/cuda/attention_emulate.cpp: runs the attention kernels of kernels/attention.cuh (the tensor-core and
 * the scalar ones, unchanged) on the CPU and checks them against the reference, so that their indexing
 * (mma fragments, tiles, masks, partial tiles, GQA) is tested on machines without a GPU. Built by the host
 * C++ compiler, not nvcc.
 *
 * It is a small SIMT emulator: the threads of one block are fibers (ucontext) on one OS thread, switched at
 * the points where CUDA threads communicate (__syncthreads, __syncwarp, the warp shuffles, mma.sync), and
 * the blocks run one after the other. mma.sync m16n8k16 is computed from the fragment layouts of the PTX
 * ISA, written here from the matrix element's side (which lane and register hold element (r, c)), while the
 * kernels use them from the lane's side: the two must agree for the products to come out right. What this
 * cannot check is the hardware itself (timing, memory model, bank conflicts): dev/cuda/bin/attention does.
 *   make -C dev/cuda && dev/cuda/bin/attention_emulate
 */
// CUDA's qualifiers mean nothing here: every kernel and device function is a plain host function, and
// the one shared array the kernels declare is the global attn_smem below.
#define __host__
#define __device__
#define __global__
#define __shared__
#define __launch_bounds__(...)
#include <stdint.h>
#include <string.h>
#include <ucontext.h>
#include <vector>
#include <cuda_runtime.h>
#include <cuda_bf16.h>

// The CUDA built-ins the kernels use, for one block at a time.
static inline int min(int a, int b) { return a < b ? a : b; }
uint3 threadIdx, blockIdx;  // threadIdx: of the fiber running now (set by the scheduler at every switch)
dim3 blockDim, gridDim;
alignas(16) unsigned char attn_smem[160 * 1024];  // the dynamic shared memory of the running block

struct Fiber {
    ucontext_t ctx;
    uint3 tid;
    bool done;
    std::vector<char> stack;
};
static std::vector<Fiber> fibers;
static ucontext_t scheduler;
static int running;            // the fiber running now
static void (*block_body)();   // what every fiber of the block runs

struct Barrier {
    int count, arrived;
    unsigned long phase;
};
static Barrier block_barrier, warp_barrier[32];

// The last of `count` arrivals opens the barrier; the others give way to the scheduler until it opens.
static void barrier_wait(Barrier &b) {
    unsigned long phase = b.phase;
    if (++b.arrived == b.count) {
        b.arrived = 0;
        b.phase++;
        return;
    }
    while (b.phase == phase) swapcontext(&fibers[running].ctx, &scheduler);
}

void __syncthreads() { barrier_wait(block_barrier); }
void __syncwarp(unsigned = 0xFFFFFFFFu) { barrier_wait(warp_barrier[threadIdx.x / 32]); }

static float shuffle_slots[32][32];  // [warp][lane]

static float shuffle(float v, int src_of_lane_xor, bool is_xor) {
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    shuffle_slots[w][lane] = v;
    __syncwarp();
    float r = shuffle_slots[w][is_xor ? lane ^ src_of_lane_xor : src_of_lane_xor];
    __syncwarp();
    return r;
}
float __shfl_xor_sync(unsigned, float v, int mask, int = 32) { return shuffle(v, mask, true); }
float __shfl_sync(unsigned, float v, int src, int = 32) { return shuffle(v, src, false); }

// mma.sync.m16n8k16 bf16 -> fp32: every lane posts its fragments, then computes its own four outputs.
static uint32_t mma_a[32][32][4], mma_b[32][32][2];  // [warp][lane][register]

static float bf16_half(uint32_t reg, int high) {
    uint32_t bits = (high ? reg >> 16 : reg & 0xFFFFu) << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
// A (16 x 16) element (r, c): lane 4 (r % 8) + (c % 8) / 2, register (r / 8) + 2 (c / 8), half c % 2
static float mma_a_at(int w, int r, int c) { return bf16_half(mma_a[w][4 * (r % 8) + (c % 8) / 2][r / 8 + 2 * (c / 8)], c % 2); }
// B (16 x 8) element (k, n): lane 4 n + (k % 8) / 2, register k / 8, half k % 2
static float mma_b_at(int w, int k, int n) { return bf16_half(mma_b[w][4 * n + (k % 8) / 2][k / 8], k % 2); }

void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    memcpy(mma_a[w][lane], a, sizeof(mma_a[w][lane]));
    memcpy(mma_b[w][lane], b, sizeof(mma_b[w][lane]));
    __syncwarp();
    for (int e = 0; e < 4; e++) {  // C (16 x 8) element e of this lane: row lane / 4 + 8 (e / 2), column 2 (lane % 4) + e % 2
        int r = lane / 4 + 8 * (e / 2), n = 2 * (lane % 4) + e % 2;
        float acc = 0.0f;
        for (int k = 0; k < 16; k++) acc += mma_a_at(w, r, k) * mma_b_at(w, k, n);
        d[e] += acc;
    }
    __syncwarp();
}

#define ATTENTION_CPU_EMULATION
#include "dev_common.cuh"
#include "../../kernels/attention.cuh"
#include "attention_ref.h"

static void fiber_entry(int i) {
    block_body();
    fibers[i].done = true;  // returning resumes the scheduler (uc_link)
}

// Runs body() as every thread of every block of grid, `threads` threads per block. Shared memory starts
// as NaN bytes in every block, so reading what was never written shows.
static void emulate(dim3 grid, int threads, void (*body)()) {
    gridDim = grid;
    blockDim = dim3(threads, 1, 1);
    block_body = body;
    fibers.resize(threads);
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = make_uint3(x, y, z);
                memset(attn_smem, 0xFF, sizeof(attn_smem));
                block_barrier = {threads, 0, 0};
                for (int w = 0; w < 32; w++) warp_barrier[w] = {32, 0, 0};
                for (int i = 0; i < threads; i++) {
                    Fiber &f = fibers[i];
                    f.stack.resize(256 * 1024);
                    f.tid = make_uint3(i, 0, 0);
                    f.done = false;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack.data();
                    f.ctx.uc_stack.ss_size = f.stack.size();
                    f.ctx.uc_link = &scheduler;
                    makecontext(&f.ctx, (void (*)())fiber_entry, 1, i);
                }
                for (int alive = threads; alive > 0;) {
                    alive = 0;
                    for (int i = 0; i < threads; i++) {
                        if (fibers[i].done) continue;
                        running = i;
                        threadIdx = fibers[i].tid;
                        swapcontext(&scheduler, &fibers[i].ctx);
                        alive += !fibers[i].done;
                    }
                }
            }
}

// The arguments of the kernel being emulated (body() takes none).
static struct {
    AttnShape s;
    __nv_bfloat16 *q, *k, *v, *dout, *out, *dq, *dk, *dv;
    float *lse, *D, scale, scale_log2;
} args;

template <int HD> static void forward_mma() {
    attention_forward_mma_kernel<HD>(args.out, args.lse, args.q, args.k, args.v, args.s.T, args.s.H, args.s.KV, args.scale_log2);
}
template <int HD> static void dkdv_mma() {
    attention_backward_dkdv_mma_kernel<HD>(args.dk, args.dv, args.dout, args.q, args.k, args.v, args.lse, args.D, args.s.T,
                                           args.s.H, args.s.KV, args.scale_log2, args.scale);
}
template <int HD> static void dq_mma() {
    attention_backward_dq_mma_kernel<HD>(args.dq, args.dout, args.q, args.k, args.v, args.lse, args.D, args.s.T, args.s.H,
                                         args.s.KV, args.scale_log2, args.scale);
}
template <int HD> static void forward_scalar() {
    attention_forward_scalar_kernel<HD>(args.out, args.lse, args.q, args.k, args.v, args.s.T, args.s.H, args.s.KV);
}
template <int HD> static void dkdv_scalar() {
    attention_backward_dkdv_scalar_kernel<HD>(args.dk, args.dv, args.dout, args.q, args.k, args.v, args.lse, args.D,
                                              args.s.T, args.s.H, args.s.KV);
}
template <int HD> static void dq_scalar() {
    attention_backward_dq_scalar_kernel<HD>(args.dq, args.dout, args.q, args.k, args.v, args.lse, args.D, args.s.T,
                                            args.s.H, args.s.KV);
}
static void prep() {
    attention_backward_prep_kernel(args.D, args.dout, args.out, args.s.B, args.s.T, args.s.H, args.s.hd);
}

static std::vector<__nv_bfloat16> to_bf16(const std::vector<float> &x) {
    std::vector<__nv_bfloat16> y(x.size());
    for (size_t i = 0; i < x.size(); i++) y[i] = __float2bfloat16(x[i]);
    return y;
}

static std::vector<float> to_floats(const std::vector<__nv_bfloat16> &x) {
    std::vector<float> y(x.size());
    for (size_t i = 0; i < x.size(); i++) y[i] = __bfloat162float(x[i]);
    return y;
}

// The grids and block sizes are those of the launchers in attention.cuh.
template <int HD> static void run_case(AttnShape s, bool tensor_cores) {
    printf("  %s, B %d, T %d, H %d, KV %d, hd %d\n", tensor_cores ? "tensor cores" : "scalar", s.B, s.T, s.H, s.KV, s.hd);
    AttnCase c = attention_case(s, 400);
    std::vector<__nv_bfloat16> q = to_bf16(c.q), k = to_bf16(c.k), v = to_bf16(c.v), dout = to_bf16(c.dout);
    std::vector<__nv_bfloat16> out(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
    std::vector<float> lse(attn_lse_size(s)), D(attn_lse_size(s));
    args = {s, q.data(), k.data(), v.data(), dout.data(), out.data(), dq.data(), dk.data(), dv.data(), lse.data(), D.data(),
            1.0f / sqrtf((float)HD), ATTN_LOG2E * (1.0f / sqrtf((float)HD))};
    if (tensor_cores) {
        emulate(dim3(ceil_div(s.T, ATTN_BQ), s.H, s.B), 128, forward_mma<HD>);
        emulate(dim3((unsigned)ceil_div((long long)s.B * s.T * s.H, 8LL)), 256, prep);
        emulate(dim3(ceil_div(s.T, ATTN_BK), s.KV, s.B), 128, dkdv_mma<HD>);
        emulate(dim3(ceil_div(s.T, ATTN_BQ), s.H, s.B), 128, dq_mma<HD>);
    } else {
        emulate(dim3(ceil_div(s.T, ATTN_SCALAR_ROWS), s.H, s.B), 32 * ATTN_SCALAR_ROWS, forward_scalar<HD>);
        emulate(dim3((unsigned)ceil_div((long long)s.B * s.T * s.H, 8LL)), 256, prep);
        emulate(dim3(ceil_div(s.T, ATTN_SCALAR_ROWS), s.KV, s.B), 32 * ATTN_SCALAR_ROWS, dkdv_scalar<HD>);
        emulate(dim3(ceil_div(s.T, ATTN_SCALAR_ROWS), s.H, s.B), 32 * ATTN_SCALAR_ROWS, dq_scalar<HD>);
    }
    attention_check_case(c, s, to_floats(out), lse, to_floats(dq), to_floats(dk), to_floats(dv));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, "1 scalar, 2 tensor cores (both run by default)");
    printf("attention kernels emulated on the CPU (bf16), against the CPU reference\n");
    for (int tc = 0; tc < 2; tc++) {
        if (!dev_version_selected(&opt, tc + 1)) continue;
        run_case<16>({2, 33, 4, 2, 16}, tc);
        run_case<32>({1, 100, 2, 2, 32}, tc);
        run_case<64>({1, 130, 4, 1, 64}, tc);
        run_case<128>({1, 70, 2, 2, 128}, tc);
    }
    return dev_finish();
}
