/*
 * kernels/crossentropy.cuh: the lm_head and the cross-entropy loss fused, so that the [N, V] logits never
 * exist at once (N = 16K tokens x 32K vocab would be 1 GiB in bf16). Tokens go through in chunks of
 * chunk_rows: the chunk's logits (cuBLASLt, into a [chunk_rows, V] floatX buffer), then one kernel that
 * computes each token's loss in fp32 (logsumexp minus the target logit) and overwrites the logits with
 * d(loss)/d(logits) = (softmax - onehot) * dloss, then the two products of the lm_head backward for the
 * chunk (dinp rows =, dweight +=). The same math as crossentropy_forward/backward in train_llama.c.
 *
 * The logits are rounded to floatX by the GEMM; the softmax statistics and the loss are fp32 from there.
 * dweight accumulates once per chunk (one floatX rounding per chunk), so larger chunks are more accurate.
 */
#pragma once

#include <math.h>
#include "common.cuh"
#include "matmul.cuh"

// Merges the softmax statistic (m2, s2) into (m, s), where s is the sum of exp(x - m) over a set of x with
// maximum m. An empty set is (-inf, 0).
__device__ inline void softmax_stat_merge(float &m, float &s, float m2, float s2) {
    float mx = fmaxf(m, m2);
    if (mx == -INFINITY) return;
    s = s * expf(m - mx) + s2 * expf(m2 - mx);
    m = mx;
}

// One block per row of logits [R, V], K consecutive logits per thread and access: losses[r] = logsumexp(row) -
// row[target]; with write_grad the row becomes (softmax(row) - onehot(target)) * dloss.
template <int K>
__global__ void crossentropy_kernel(float *losses, floatX *logits, const int *targets, int V, float dloss, int write_grad) {
    __shared__ float warp_m[32], warp_s[32];
    __shared__ float target_logit;
    floatX *row = logits + (size_t)blockIdx.x * V;
    int target = targets[blockIdx.x];
    if (threadIdx.x == 0) target_logit = to_float(row[target]);  // read before any thread overwrites the row
    float m = -INFINITY, s = 0.0f;
    for (int i = threadIdx.x * K; i < V; i += blockDim.x * K) {
        Vec<floatX, K> z = vec_load<K>(row + i);
        for (int k = 0; k < K; k++) {
            float zk = to_float(z.x[k]);
            if (zk > m) {
                s = s * expf(m - zk) + 1.0f;
                m = zk;
            } else {
                s += expf(zk - m);
            }
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1)
        softmax_stat_merge(m, s, __shfl_xor_sync(0xFFFFFFFFu, m, offset), __shfl_xor_sync(0xFFFFFFFFu, s, offset));
    if (threadIdx.x % 32 == 0) {
        warp_m[threadIdx.x / 32] = m;
        warp_s[threadIdx.x / 32] = s;
    }
    __syncthreads();
    m = -INFINITY, s = 0.0f;
    for (int w = 0; w < (int)blockDim.x / 32; w++) softmax_stat_merge(m, s, warp_m[w], warp_s[w]);  // same order everywhere
    float lse = m + logf(s);
    if (threadIdx.x == 0) losses[blockIdx.x] = lse - target_logit;
    if (!write_grad) return;
    for (int i = threadIdx.x * K; i < V; i += blockDim.x * K) {
        Vec<floatX, K> z = vec_load<K>(row + i);
        for (int k = 0; k < K; k++) {
            float p = expf(to_float(z.x[k]) - lse);
            z.x[k] = from_float<floatX>((p - (i + k == target ? 1.0f : 0.0f)) * dloss);
        }
        vec_store<K>(row + i, z);
    }
}

static void crossentropy_forward_backward(Matmul *mm, float *losses, floatX *dinp, floatX *dweight, floatX *logits,
                                          int chunk_rows, const floatX *inp, const floatX *weight, const int *targets,
                                          int N, int C, int V, float dloss, cudaStream_t stream) {
    // losses [N] fp32 = -log softmax(inp @ weight^T)[target], per token;
    // dinp [N, C] = d(loss)/d(inp) and dweight [V, C] += d(loss)/d(weight), for loss = dloss * sum of losses;
    // with dinp and dweight both NULL, only the losses (evaluation).
    // logits [chunk_rows, V] scratch; inp [N, C] (the final norm's output); weight [V, C] (lm_head);
    // targets [N] on the device, in [0, V).
    kernelRequire(chunk_rows > 0, "crossentropy: chunk_rows must be positive");
    int backward = dinp != NULL || dweight != NULL;
    for (int n0 = 0; n0 < N; n0 += chunk_rows) {
        int R = N - n0 < chunk_rows ? N - n0 : chunk_rows;
        const floatX *x = inp + (size_t)n0 * C;
        matmul_forward(mm, logits, x, weight, R, C, V, stream);
        vec_dispatch(vec_fits({(size_t)V}, logits), [&](auto k) {
            crossentropy_kernel<k.value><<<R, 512, 0, stream>>>(losses + n0, logits, targets + n0, V, dloss, backward);
        });
        cudaCheckLaunch();
        if (backward) matmul_backward(mm, dinp ? dinp + (size_t)n0 * C : NULL, dweight, logits, x, weight, R, C, V, 0, stream);
    }
}
