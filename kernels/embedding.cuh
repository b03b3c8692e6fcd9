/*
 * kernels/embedding.cuh: the token embedding lookup and its backward.
 *
 * The backward is deterministic and free of atomics: on the host, embedding_buckets groups the positions of
 * the micro-batch by token id (one sort of N keys; the trainer has the tokens on the host anyway), then one
 * thread per (distinct token, K columns) adds that token's rows of dout in position order in fp32 and adds the
 * sum to the gradient row once. A token that occurs k times costs its thread k loads; threads never share
 * an output element, so no ordering depends on scheduling.
 */
#pragma once

#include <algorithm>
#include "common.cuh"

// out [N, C] = rows tokens[n] of emb [V, C]; tokens in [0, V). K consecutive columns per thread.
template <int K>
__global__ void embedding_forward_kernel(floatX *out, const int *tokens, const floatX *emb, int N, int C) {
    size_t total = (size_t)N * C;
    for (size_t i = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i < total; i += K * (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C, c = i % C;
        vec_store<K>(out + i, vec_load<K>(emb + (size_t)tokens[n] * C + c));
    }
}

static void embedding_forward(floatX *out, const int *tokens, const floatX *emb, int N, int C, cudaStream_t stream) {
    // out [N, C]; tokens [N] on the device; emb [V, C]
    size_t n = (size_t)N * C;
    if (n == 0) return;
    vec_dispatch(vec_fits({(size_t)C}, out, emb), [&](auto k) {
        embedding_forward_kernel<k.value><<<grid_stride_blocks(n / k.value, 256), 256, 0, stream>>>(out, tokens, emb, N, C);
    });
    cudaCheckLaunch();
}

// Host side of the backward. Writes buckets [N + 2U + 1]: order [N] (the positions n sorted by (token, n)),
// start [U + 1] (the positions of distinct token u are order[start[u] .. start[u+1])), id [U] (the token of u).
// Returns U, the number of distinct tokens. Copy buckets to the device before embedding_backward.
static int embedding_buckets(int *buckets, const int *tokens, int N) {
    uint64_t *keys = (uint64_t *)malloc(sizeof(uint64_t) * (N > 0 ? N : 1));
    if (!keys) { fprintf(stderr, "error: out of host memory in embedding_buckets\n"); exit(1); }
    for (int n = 0; n < N; n++) keys[n] = ((uint64_t)(uint32_t)tokens[n] << 32) | (uint32_t)n;
    std::sort(keys, keys + N);  // keys are distinct, so the order is fully determined
    int *order = buckets, *start = buckets + N;
    int U = 0;
    for (int i = 0; i < N; i++) {
        order[i] = (int)(uint32_t)keys[i];
        if (i == 0 || (keys[i] >> 32) != (keys[i - 1] >> 32)) start[U++] = i;
    }
    start[U] = N;
    int *id = start + U + 1;  // after the U + 1 starts
    for (int u = 0; u < U; u++) id[u] = (int)(keys[start[u]] >> 32);
    free(keys);
    return U;
}

// demb[id[u], c] += sum over the positions n of token u (in increasing n) of dout[n, c], for K consecutive c
// per thread
template <int K>
__global__ void embedding_backward_kernel(floatX *demb, const floatX *dout, const int *buckets, int U, int N, int C) {
    int u = blockIdx.x, c = (blockIdx.y * blockDim.x + threadIdx.x) * K;
    if (c >= C) return;
    const int *order = buckets, *start = buckets + N, *id = buckets + N + U + 1;
    float acc[K] = {};
    for (int i = start[u]; i < start[u + 1]; i++) {
        Vec<floatX, K> g = vec_load<K>(dout + (size_t)order[i] * C + c);
        for (int k = 0; k < K; k++) acc[k] += to_float(g.x[k]);
    }
    size_t at = (size_t)id[u] * C + c;
    Vec<floatX, K> d = vec_load<K>(demb + at);
    for (int k = 0; k < K; k++) d.x[k] = from_float<floatX>(to_float(d.x[k]) + acc[k]);
    vec_store<K>(demb + at, d);
}

static void embedding_backward(floatX *demb, const floatX *dout, const int *buckets, int U, int N, int C,
                               cudaStream_t stream) {
    // demb [V, C] +=; dout [N, C]; buckets [N + 2U + 1] on the device, from embedding_buckets
    if (U == 0) return;
    const int block = 128;
    vec_dispatch(vec_fits({(size_t)C}, demb, dout), [&](auto k) {
        dim3 grid(U, ceil_div(C / k.value, block));
        embedding_backward_kernel<k.value><<<grid, block, 0, stream>>>(demb, dout, buckets, U, N, C);
    });
    cudaCheckLaunch();
}
