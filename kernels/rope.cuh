/*
 * kernels/rope.cuh: rotary position embedding in the HF rotate_half layout (element i of a head is paired
 * with element i + hd/2), forward and backward. The backward applies the inverse rotation (the transpose),
 * exactly as rope_apply with sign -1 in train_llama.c. The cos/sin tables come from llama_rope_tables, the
 * host code the CPU trainer uses (the frequencies of the model's RoPE scaling, fp32 angle = t * inv_freq),
 * uploaded once, so both trainers rotate by bit-identical angles.
 */
#pragma once

#include "../llama_config.h"
#include "common.cuh"

// Device tables cos_dev, sin_dev [T, hd/2] fp32, computed on the host (synchronous upload).
static void rope_tables_init(float *cos_dev, float *sin_dev, const LlamaConfig *c, int T) {
    size_t bytes = sizeof(float) * (size_t)T * (llama_head_dim(c) / 2);
    float *cosb = (float *)xmalloc(bytes), *sinb = (float *)xmalloc(bytes);
    llama_rope_tables(c, cosb, sinb, T);
    cudaCheck(cudaMemcpy(cos_dev, cosb, bytes, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(sin_dev, sinb, bytes, cudaMemcpyHostToDevice));
    free(cosb);
    free(sinb);
}

// One thread per K consecutive pairs (row n, head h, i .. i + K - 1 < hd/2); position t = n % T. sign +1 rotates,
// -1 rotates back. out may alias inp: each thread reads its pairs before writing them.
template <int K>
__global__ void rope_kernel(floatX *out, const floatX *inp, const float *cosb, const float *sinb, int N, int T, int nh,
                            int hd, float sign) {
    int half = hd / 2, chunks = half / K;
    size_t total = (size_t)N * nh * chunks;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        size_t head = idx / chunks;  // n * nh + h
        int i = (int)(idx % chunks) * K, t = (int)((head / nh) % T);
        size_t at = head * hd + i;
        Vec<floatX, K> a = vec_load<K>(inp + at), b = vec_load<K>(inp + at + half), ra, rb;
        Vec<float, K> c = vec_load<K>(cosb + (size_t)t * half + i), s = vec_load<K>(sinb + (size_t)t * half + i);
        for (int k = 0; k < K; k++) {
            float ak = to_float(a.x[k]), bk = to_float(b.x[k]), sk = sign * s.x[k];
            ra.x[k] = from_float<floatX>(ak * c.x[k] - bk * sk);
            rb.x[k] = from_float<floatX>(bk * c.x[k] + ak * sk);
        }
        vec_store<K>(out + at, ra);
        vec_store<K>(out + at + half, rb);
    }
}

static void rope_launch(floatX *out, const floatX *inp, const float *cosb, const float *sinb, int N, int T, int nh,
                        int hd, float sign, cudaStream_t stream) {
    size_t pairs = (size_t)N * nh * (hd / 2);
    if (pairs == 0) return;
    vec_dispatch(vec_fits({(size_t)hd / 2}, out, inp, cosb, sinb), [&](auto k) {
        rope_kernel<k.value><<<grid_stride_blocks(pairs / k.value, 256), 256, 0, stream>>>(out, inp, cosb, sinb, N, T, nh, hd,
                                                                                         sign);
    });
    cudaCheckLaunch();
}

static void rope_forward(floatX *out, const floatX *inp, const float *cosb, const float *sinb, int N, int T, int nh,
                         int hd, cudaStream_t stream) {
    // out, inp [N = B*T, nh, hd] (may be the same buffer); cosb, sinb [T, hd/2]
    rope_launch(out, inp, cosb, sinb, N, T, nh, hd, 1.0f, stream);
}

static void rope_backward(floatX *dinp, const floatX *dout, const float *cosb, const float *sinb, int N, int T, int nh,
                          int hd, cudaStream_t stream) {
    // dinp, dout [N = B*T, nh, hd] (may be the same buffer): dinp = R^T dout
    rope_launch(dinp, dout, cosb, sinb, N, T, nh, hd, -1.0f, stream);
}
