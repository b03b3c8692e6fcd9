/*
 * kernels/rmsnorm.cuh: RMSNorm forward and backward, out = x / sqrt(mean(x^2) + eps) * w, with the same
 * formulas as rmsnorm_forward/rmsnorm_backward in train_llama.c. Statistics are fp32.
 *
 * The weight gradient is deterministic without atomics: a fixed number of blocks (a function of N only,
 * not of the GPU) each own a contiguous range of rows and sum their dw contribution in fp32 in shared memory
 * (each thread owns its columns), write it to a scratch row, and a second kernel adds the rows in block
 * order into dweight.
 */
#pragma once

#include "common.cuh"

// One warp per row, K consecutive elements per lane and access. out [N, C]; rstd [N] fp32 = 1 / sqrt(mean(x^2) + eps)
template <int K>
__global__ void rmsnorm_forward_kernel(floatX *out, float *rstd, const floatX *inp, const floatX *weight, int N, int C,
                                       float eps) {
    int lane = threadIdx.x % 32;
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const floatX *x = inp + (size_t)row * C;
    float ss = 0.0f;
    for (int i = lane * K; i < C; i += 32 * K) {
        Vec<floatX, K> v = vec_load<K>(x + i);
        for (int k = 0; k < K; k++) ss += to_float(v.x[k]) * to_float(v.x[k]);
    }
    ss = warp_reduce_sum(ss);
    float r = 1.0f / sqrtf(ss / C + eps);
    if (lane == 0) rstd[row] = r;
    floatX *o = out + (size_t)row * C;
    for (int i = lane * K; i < C; i += 32 * K) {
        Vec<floatX, K> v = vec_load<K>(x + i), w = vec_load<K>(weight + i), y;
        for (int k = 0; k < K; k++) y.x[k] = from_float<floatX>(to_float(v.x[k]) * r * to_float(w.x[k]));
        vec_store<K>(o + i, y);
    }
}

static void rmsnorm_forward(floatX *out, float *rstd, const floatX *inp, const floatX *weight, int N, int C, float eps,
                            cudaStream_t stream) {
    // out [N, C], rstd [N], inp [N, C], weight [C]
    const int block = 256, rows_per_block = block / 32;
    if (N == 0) return;
    vec_dispatch(vec_fits({(size_t)C}, out, inp, weight), [&](auto k) {
        rmsnorm_forward_kernel<k.value><<<ceil_div(N, rows_per_block), block, 0, stream>>>(out, rstd, inp, weight, N, C, eps);
    });
    cudaCheckLaunch();
}

// The number of partial dweight rows the backward writes: fixed by N, so results do not depend on the GPU.
static int rmsnorm_backward_blocks(int N) { return N < 512 ? N : 512; }

// Scratch the backward needs, in floats: [rmsnorm_backward_blocks(N), C].
static size_t rmsnorm_backward_scratch_floats(int N, int C) { return (size_t)rmsnorm_backward_blocks(N) * C; }

// Threads per block of the backward: 8 warps, so its rows go in groups of 8, one per warp for the dot product.
#define RMSNORM_BACKWARD_WARPS 8

// Block b owns rows [b N / G, (b + 1) N / G), taken in groups of one row per warp: each warp sums its row's
// dot product (dout . weight . x) alone, then the whole block, each thread K consecutive columns at a time,
// updates dinp and its dw sums for the group's rows in order. Two barriers a group, not two a row, and the
// group's loads in the second pass do not wait for each other. dinp [N, C] +=; partial [G, C] = this block's
// sum of dw.
template <int K>
__global__ void __launch_bounds__(32 * RMSNORM_BACKWARD_WARPS) rmsnorm_backward_kernel(floatX *dinp, float *partial,
        const floatX *dout, const floatX *inp, const floatX *weight, const float *rstd, int N, int C) {
    constexpr int W = RMSNORM_BACKWARD_WARPS;
    extern __shared__ __align__(32) float dw[];  // [C]: thread t owns columns [t K, t K + K), then + blockDim.x K, ...
    __shared__ float coef[W];                    // the group's dot * rstd^3 / C, a row per warp
    int G = gridDim.x, b = blockIdx.x, step = blockDim.x * K, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int row0 = (int)((long long)N * b / G), row1 = (int)((long long)N * (b + 1) / G);
    for (int i = threadIdx.x * K; i < C; i += step) vec_store<K>(dw + i, Vec<float, K>{});
    for (int g0 = row0; g0 < row1; g0 += W) {
        int n = min(W, row1 - g0);  // rows in this group
        if (warp < n) {
            int row = g0 + warp;
            const floatX *x = inp + (size_t)row * C, *g = dout + (size_t)row * C;
            float dot = 0.0f, r = rstd[row];
            for (int i = lane * K; i < C; i += 32 * K) {
                Vec<floatX, K> gv = vec_load<K>(g + i), wv = vec_load<K>(weight + i), xv = vec_load<K>(x + i);
                for (int k = 0; k < K; k++) dot += to_float(gv.x[k]) * to_float(wv.x[k]) * to_float(xv.x[k]);
            }
            dot = warp_reduce_sum(dot);
            if (lane == 0) coef[warp] = dot * r * r * r / C;
        }
        __syncthreads();
        for (int i = threadIdx.x * K; i < C; i += step) {
            Vec<floatX, K> wv = vec_load<K>(weight + i);
            Vec<float, K> acc = vec_load<K>(dw + i);
            #pragma unroll
            for (int j = 0; j < W; j++) {
                if (j >= n) break;
                size_t at = (size_t)(g0 + j) * C + i;
                float r = rstd[g0 + j], c = coef[j];
                Vec<floatX, K> gv = vec_load<K>(dout + at), xv = vec_load<K>(inp + at), dxv = vec_load<K>(dinp + at);
                for (int k = 0; k < K; k++) {
                    float gi = to_float(gv.x[k]), xi = to_float(xv.x[k]);
                    dxv.x[k] = from_float<floatX>(to_float(dxv.x[k]) + gi * to_float(wv.x[k]) * r - xi * c);
                    acc.x[k] += gi * xi * r;
                }
                vec_store<K>(dinp + at, dxv);
            }
            vec_store<K>(dw + i, acc);
        }
        __syncthreads();  // the next group rewrites coef
    }
    for (int i = threadIdx.x * K; i < C; i += step) vec_store<K>(partial + (size_t)b * C + i, vec_load<K>(dw + i));
}

// dweight [C] += sum over the G partial rows, in row order
__global__ void rmsnorm_dweight_reduce_kernel(floatX *dweight, const float *partial, int G, int C) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= C) return;
    float acc = 0.0f;
    for (int b = 0; b < G; b++) acc += partial[(size_t)b * C + i];
    dweight[i] = from_float<floatX>(to_float(dweight[i]) + acc);
}

static void rmsnorm_backward(floatX *dinp, floatX *dweight, float *scratch, const floatX *dout, const floatX *inp,
                             const floatX *weight, const float *rstd, int N, int C, cudaStream_t stream) {
    // dinp [N, C] +=, dweight [C] +=, scratch [rmsnorm_backward_scratch_floats(N, C)],
    // dout [N, C], inp [N, C] (the forward's input), weight [C], rstd [N] (from the forward)
    if (N == 0) return;
    const int block = 32 * RMSNORM_BACKWARD_WARPS;
    int G = rmsnorm_backward_blocks(N);
    size_t smem = sizeof(float) * C;
    vec_dispatch(vec_fits({(size_t)C}, dinp, scratch, dout, inp, weight), [&](auto k) {
        if (smem > 48 * 1024)
            cudaCheck(cudaFuncSetAttribute(rmsnorm_backward_kernel<k.value>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        rmsnorm_backward_kernel<k.value><<<G, block, smem, stream>>>(dinp, scratch, dout, inp, weight, rstd, N, C);
    });
    cudaCheckLaunch();
    rmsnorm_dweight_reduce_kernel<<<ceil_div(C, block), block, 0, stream>>>(dweight, scratch, G, C);
    cudaCheckLaunch();
}
