/*
 * kernels/swiglu.cuh: the LLaMA MLP activation out = silu(gate) * up, elementwise over [N, ffn], and its
 * backward, with the formulas of swiglu_forward/swiglu_backward in train_llama.c (fp32 math per element).
 */
#pragma once

#include "common.cuh"

// K consecutive elements per thread (kernels/common.cuh: vector access)
template <int K>
__global__ void swiglu_forward_kernel(floatX *out, const floatX *gate, const floatX *up, size_t n) {
    for (size_t i = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i < n; i += K * (size_t)gridDim.x * blockDim.x) {
        Vec<floatX, K> g = vec_load<K>(gate + i), u = vec_load<K>(up + i), o;
        for (int k = 0; k < K; k++) {
            float gk = to_float(g.x[k]);
            o.x[k] = from_float<floatX>(gk / (1.0f + expf(-gk)) * to_float(u.x[k]));
        }
        vec_store<K>(out + i, o);
    }
}

// Each thread reads gate, up, dout before writing, so dgate may alias gate and dup may alias up.
template <int K>
__global__ void swiglu_backward_kernel(floatX *dgate, floatX *dup, const floatX *dout, const floatX *gate, const floatX *up,
                                       size_t n) {
    for (size_t i = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i < n; i += K * (size_t)gridDim.x * blockDim.x) {
        Vec<floatX, K> gv = vec_load<K>(gate + i), uv = vec_load<K>(up + i), dv = vec_load<K>(dout + i), dg, du;
        for (int k = 0; k < K; k++) {
            float g = to_float(gv.x[k]), u = to_float(uv.x[k]), d = to_float(dv.x[k]);
            float sig = 1.0f / (1.0f + expf(-g));
            dg.x[k] = from_float<floatX>(d * u * sig * (1.0f + g * (1.0f - sig)));
            du.x[k] = from_float<floatX>(d * g * sig);
        }
        vec_store<K>(dgate + i, dg);
        vec_store<K>(dup + i, du);
    }
}

static void swiglu_forward(floatX *out, const floatX *gate, const floatX *up, size_t n, cudaStream_t stream) {
    // out, gate, up [N, ffn] (n = N * ffn elements)
    if (n == 0) return;
    vec_dispatch(vec_fits({n}, out, gate, up), [&](auto k) {
        swiglu_forward_kernel<k.value><<<grid_stride_blocks(n / k.value, 256), 256, 0, stream>>>(out, gate, up, n);
    });
    cudaCheckLaunch();
}

static void swiglu_backward(floatX *dgate, floatX *dup, const floatX *dout, const floatX *gate, const floatX *up, size_t n,
                            cudaStream_t stream) {
    // dgate, dup (=), dout, gate, up [N, ffn]; dgate may be gate and dup may be up (in place)
    if (n == 0) return;
    vec_dispatch(vec_fits({n}, dgate, dup, dout, gate, up), [&](auto k) {
        swiglu_backward_kernel<k.value><<<grid_stride_blocks(n / k.value, 256), 256, 0, stream>>>(dgate, dup, dout, gate, up, n);
    });
    cudaCheckLaunch();
}
