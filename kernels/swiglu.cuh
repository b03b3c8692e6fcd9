/*
 * kernels/swiglu.cuh: the LLaMA MLP activation out = silu(gate) * up, elementwise over [N, ffn], and its
 * backward, with the formulas of swiglu_forward/swiglu_backward in train_llama.c (fp32 math per element).
 */
#pragma once

#include "common.cuh"

__global__ void swiglu_forward_kernel(floatX *out, const floatX *gate, const floatX *up, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = to_float(gate[i]);
        out[i] = from_float<floatX>(g / (1.0f + expf(-g)) * to_float(up[i]));
    }
}

// Each thread reads gate[i], up[i], dout[i] before writing, so dgate may alias gate and dup may alias up.
__global__ void swiglu_backward_kernel(floatX *dgate, floatX *dup, const floatX *dout, const floatX *gate, const floatX *up,
                                       size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = to_float(gate[i]), u = to_float(up[i]), d = to_float(dout[i]);
        float sig = 1.0f / (1.0f + expf(-g));
        dgate[i] = from_float<floatX>(d * u * sig * (1.0f + g * (1.0f - sig)));
        dup[i] = from_float<floatX>(d * g * sig);
    }
}

static void swiglu_forward(floatX *out, const floatX *gate, const floatX *up, size_t n, cudaStream_t stream) {
    // out, gate, up [N, ffn] (n = N * ffn elements)
    if (n == 0) return;
    swiglu_forward_kernel<<<grid_stride_blocks(n, 256), 256, 0, stream>>>(out, gate, up, n);
    cudaCheckLaunch();
}

static void swiglu_backward(floatX *dgate, floatX *dup, const floatX *dout, const floatX *gate, const floatX *up, size_t n,
                            cudaStream_t stream) {
    // dgate, dup (=), dout, gate, up [N, ffn]; dgate may be gate and dup may be up (in place)
    if (n == 0) return;
    swiglu_backward_kernel<<<grid_stride_blocks(n, 256), 256, 0, stream>>>(dgate, dup, dout, gate, up, n);
    cudaCheckLaunch();
}
