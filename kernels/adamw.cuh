/*
 * kernels/adamw.cuh: the AdamW update with torch.optim.AdamW semantics, the formulas of adamw_update in
 * train_llama.c (bias corrections computed on the host in fp32 exactly as there):
 *     m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
 *     p = p (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^step.
 * Two variants, chosen by the `master` argument: with fp32 master weights (master updated, params rewritten
 * as its round-to-nearest copy), or without (`--master-weights 0`: the floatX params are updated in place
 * with stochastic rounding, which keeps small updates unbiased instead of losing them to rounding). The
 * moments are float or bf16 (MomT, `--state-dtype`); bf16 moments are stochastically rounded too. All
 * random bits come from random_u32(seed, index), so an update is deterministic given its seed.
 *
 * Also the global gradient norm for clipping, deterministic in two stages (fixed grid, per-block double
 * sums in a partials buffer, then one ordered sum), and an in-place scale.
 */
#pragma once

#include <math.h>
#include "common.cuh"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    float grad_scale;  // the gradient is multiplied by this first (clipping: max_norm / norm; else 1)
    int step;          // 1-based count of updates of these moments
    uint64_t seed;     // stochastic rounding; use a different one per (step, tensor)
} AdamWParams;

// Elements [lo, lo + count) of each of gridDim.y tensors of n elements (a kind's layers): master, mom and var hold the
// part only (the owned part, --shard-optimizer), mpitch apart; params and grads hold the part at plo of tensors ppitch
// apart (the whole tensors, which follow each other: n, lo; the parts alone, --shard-weights: mpitch, 0). Element i of the tensors (counted from the first tensor's first) draws random_u32(seed, 3 i + ...) whatever
// the part and K. K consecutive elements per thread (kernels/common.cuh: vector access).
template <int K, typename MomT>
__global__ void adamw_kernel(floatX *params, float *master, const floatX *grads, MomT *mom, MomT *var, size_t lo, size_t count,
                             size_t n, size_t mpitch, size_t ppitch, size_t plo, float beta1, float beta2, float step_size,
                             float decay, float bc2_sqrt, float eps, float grad_scale, uint64_t seed) {
    size_t first = blockIdx.y * n + lo;  // the index of this part's first element
    params += blockIdx.y * ppitch + plo, grads += blockIdx.y * ppitch + plo, mom += blockIdx.y * mpitch, var += blockIdx.y * mpitch;
    if (master) master += blockIdx.y * mpitch;
    for (size_t i0 = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i0 < count; i0 += K * (size_t)gridDim.x * blockDim.x) {
        Vec<floatX, K> gv = vec_load<K>(grads + i0), pv = vec_load<K>(params + i0);
        Vec<MomT, K> mv = vec_load<K>(mom + i0), vv = vec_load<K>(var + i0);
        Vec<float, K> wv;
        if (master) wv = vec_load<K>(master + i0);
        for (int k = 0; k < K; k++) {
            size_t i = first + i0 + k;
            float g = to_float(gv.x[k]) * grad_scale;
            float m = beta1 * to_float(mv.x[k]) + (1.0f - beta1) * g;
            float v = beta2 * to_float(vv.x[k]) + (1.0f - beta2) * g * g;
            mv.x[k] = round_stochastic<MomT>(m, random_u32(seed, 3 * i + 1));
            vv.x[k] = round_stochastic<MomT>(v, random_u32(seed, 3 * i + 2));
            float p = master ? wv.x[k] : to_float(pv.x[k]);
            p = p * decay - step_size * m / (sqrtf(v) / bc2_sqrt + eps);
            if (master) {
                wv.x[k] = p;
                pv.x[k] = from_float<floatX>(p);
            } else {
                pv.x[k] = round_stochastic<floatX>(p, random_u32(seed, 3 * i));
            }
        }
        vec_store<K>(mom + i0, mv);
        vec_store<K>(var + i0, vv);
        vec_store<K>(params + i0, pv);
        if (master) vec_store<K>(master + i0, wv);
    }
}

// AdamW on elements [lo, hi) of each of `tensors` tensors of n elements, whose parts master (fp32 master weights, or NULL
// to update params with stochastic rounding), mom and var (float or __nv_bfloat16) hold mpitch apart; params and grads
// hold whole tensors that follow each other (parts_only 0) or the parts alone, mpitch apart (--shard-weights).
template <typename MomT>
static void adamw_update_part(floatX *params, float *master, const floatX *grads, MomT *mom, MomT *var, size_t n, int tensors,
                              size_t lo, size_t hi, size_t mpitch, int parts_only, const AdamWParams *hp, cudaStream_t stream) {
    size_t count = hi - lo, ppitch = parts_only ? mpitch : n, plo = parts_only ? 0 : lo;
    if (count == 0 || tensors == 0) return;
    float bc1 = 1.0f - powf(hp->beta1, (float)hp->step), bc2_sqrt = sqrtf(1.0f - powf(hp->beta2, (float)hp->step));
    float step_size = hp->lr / bc1, decay = 1.0f - hp->lr * hp->weight_decay;
    vec_dispatch(vec_fits({count, lo, n, mpitch, ppitch, plo}, params, master, grads, mom, var), [&](auto k) {
        adamw_kernel<k.value><<<dim3(grid_stride_blocks(count / k.value, 256), tensors), 256, 0, stream>>>(
            params, master, grads, mom, var, lo, count, n, mpitch, ppitch, plo, hp->beta1, hp->beta2, step_size, decay, bc2_sqrt,
            hp->eps, hp->grad_scale, hp->seed);
    });
    cudaCheckLaunch();
}

// AdamW on all of params [n] (floatX), master [n] fp32 master weights or NULL, grads [n], mom, var [n].
template <typename MomT>
static void adamw_update(floatX *params, float *master, const floatX *grads, MomT *mom, MomT *var, size_t n,
                         const AdamWParams *hp, cudaStream_t stream) {
    adamw_update_part(params, master, grads, mom, var, n, 1, 0, n, n, 0, hp, stream);
}

// ----------------------------------------------------------------------------------------------------
// Global norm. The grid is fixed (not sized to the GPU) so the summation order, and the result, are the
// same on every run and every device.

#define NORM_BLOCKS 512
#define NORM_THREADS 512

template <int K, typename T>
__global__ void norm_squared_kernel(double *partials, const T *x, size_t n, int accumulate) {
    double acc = 0.0;
    for (size_t i = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i < n; i += K * (size_t)gridDim.x * blockDim.x) {
        Vec<T, K> v = vec_load<K>(x + i);
        for (int k = 0; k < K; k++) acc += (double)to_float(v.x[k]) * to_float(v.x[k]);
    }
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = (accumulate ? partials[blockIdx.x] : 0.0) + acc;
}

// The sums of squares of x over ranges [ranges[2k], ranges[2k + 1]) for k < n (a rank's own parts of many tensors),
// into partials as norm_squared_kernel: one launch, whatever the number of ranges, each range walked by the whole grid.
template <typename T>
__global__ void norm_squared_ranges_kernel(double *partials, const T *x, const size_t *ranges, int n, int accumulate) {
    double acc = 0.0;
    for (int k = 0; k < n; k++)
        for (size_t i = ranges[2 * k] + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < ranges[2 * k + 1]; i += (size_t)gridDim.x * blockDim.x)
            acc += (double)to_float(x[i]) * to_float(x[i]);
    acc = block_reduce_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = (accumulate ? partials[blockIdx.x] : 0.0) + acc;
}

template <typename T>
static void global_norm_squared_ranges(double *partials, const T *x, const size_t *ranges, int n, int accumulate, cudaStream_t stream) {
    // partials [NORM_BLOCKS] doubles = (accumulate 0) or += (1) the sums of squares of x over the n ranges (device
    // array [2n] of element offsets: start, end), for global_norm_squared_finish
    norm_squared_ranges_kernel<<<NORM_BLOCKS, NORM_THREADS, 0, stream>>>(partials, x, ranges, n, accumulate);
    cudaCheckLaunch();
}

template <typename O>
__global__ void norm_squared_finish_kernel(O *out, const double *partials) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < NORM_BLOCKS; i += 32) acc += partials[i];
    acc = warp_reduce_sum(acc);
    if (threadIdx.x == 0) *out = (O)acc;
}

template <typename T>
static void global_norm_squared(double *partials, const T *x, size_t n, int accumulate, cudaStream_t stream) {
    // partials [NORM_BLOCKS] doubles: = (accumulate 0) or += (accumulate 1) the sums of x[i]^2 over x [n]
    // (float or bf16); call once per tensor, then global_norm_squared_finish
    vec_dispatch(vec_fits({n}, x), [&](auto k) {
        norm_squared_kernel<k.value><<<NORM_BLOCKS, NORM_THREADS, 0, stream>>>(partials, x, n, accumulate);
    });
    cudaCheckLaunch();
}

template <typename O>
static void global_norm_squared_finish(O *out, const double *partials, cudaStream_t stream) {
    // out [1] (device, float or double) = the sum of the partials: the squared norm over every tensor added so far
    norm_squared_finish_kernel<<<1, 32, 0, stream>>>(out, partials);
    cudaCheckLaunch();
}

template <int K, typename T>
__global__ void scale_kernel(T *x, size_t n, float scale) {
    for (size_t i = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i < n; i += K * (size_t)gridDim.x * blockDim.x) {
        Vec<T, K> v = vec_load<K>(x + i);
        for (int k = 0; k < K; k++) v.x[k] = from_float<T>(to_float(v.x[k]) * scale);
        vec_store<K>(x + i, v);
    }
}

template <typename T>
static void scale_tensor(T *x, size_t n, float scale, cudaStream_t stream) {
    // x [n] *= scale (float or bf16, rounded to nearest)
    if (n == 0) return;
    vec_dispatch(vec_fits({n}, x), [&](auto k) {
        scale_kernel<k.value><<<grid_stride_blocks(n / k.value, 256), 256, 0, stream>>>(x, n, scale);
    });
    cudaCheckLaunch();
}
