/*
 * kernels/common.cuh: what every kernel header needs. The storage type floatX (bf16 by default, fp32 when
 * compiled with -DENABLE_FP32, for tight comparison with the CPU trainer) with its load/store helpers,
 * checks for CUDA and cuBLAS calls, warp and block reductions, and deterministic stochastic rounding to
 * bf16 (a stateless hash of (seed, index), so a rerun or a resumed run rounds exactly the same way).
 *
 * The kernel headers are included by one translation unit (the GPU trainer, or a file in dev/cuda/), as
 * in llm.c: every function here is static or inline.
 */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <initializer_list>
#include <type_traits>
#include <cublas_api.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

// ----------------------------------------------------------------------------------------------------
// Error checks: one line "error: ..." naming the call site, then exit 1 (the project's error convention).

static inline void cuda_check(cudaError_t err, const char *file, int line) {
    if (err != cudaSuccess) {
        fprintf(stderr, "error: CUDA: %s (%s) at %s:%d\n", cudaGetErrorString(err), cudaGetErrorName(err), file, line);
        exit(1);
    }
}
#define cudaCheck(call) cuda_check((call), __FILE__, __LINE__)
// after a kernel launch: reports a bad launch configuration at the launch site
#define cudaCheckLaunch() cuda_check(cudaGetLastError(), __FILE__, __LINE__)

static inline void cublas_check(cublasStatus_t status, const char *file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "error: cuBLAS status %d at %s:%d\n", (int)status, file, line);
        exit(1);
    }
}
#define cublasCheck(call) cublas_check((call), __FILE__, __LINE__)

// A precondition of a launcher that the caller got wrong (unsupported size, misaligned pointer).
#define kernelRequire(cond, ...)                                            \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "error: ");                                     \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);              \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

// ----------------------------------------------------------------------------------------------------
// Precision: weights, activations and gradients are stored as floatX; every reduction, GEMM, norm
// statistic, softmax statistic and loss is computed in fp32 (or double).

#ifdef ENABLE_FP32
typedef float floatX;
#define PRECISION_NAME "fp32"
#else
typedef __nv_bfloat16 floatX;
#define PRECISION_NAME "bf16"
#endif

__host__ __device__ inline float to_float(float x) { return x; }
__host__ __device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// Round-to-nearest-even store of an fp32 value into T (float or bf16).
template <typename T> __host__ __device__ inline T from_float(float x);
template <> __host__ __device__ inline float from_float<float>(float x) { return x; }
template <> __host__ __device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

template <typename T> __host__ __device__ constexpr T ceil_div(T a, T b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over n elements: enough to fill any GPU, capped so the grid stays legal.
static inline unsigned grid_stride_blocks(size_t n, int block) {
    size_t blocks = ceil_div(n, (size_t)block);
    return (unsigned)(blocks < 65536 ? blocks : 65536);
}

// ----------------------------------------------------------------------------------------------------
// Vector access. The memory-bound kernels are templates on K, the consecutive elements a thread moves at once:
// K = VEC makes every floatX access 16 bytes (8 bf16 or 4 fp32; fp32 state beside bf16 data moves 32 bytes in
// two 16-byte accesses), so that a warp keeps several times more bytes in flight than with 2-byte accesses.
// A launcher takes K = VEC (vec_dispatch) when vec_fits says the element counts and every pointer allow it,
// else K = 1 (odd sizes); both are the same code with the same per-element arithmetic, so the two give the
// same bits wherever the order of a sum does not change with K.

#define VEC (16 / (int)sizeof(floatX))

template <typename T, int K> struct alignas(sizeof(T) * K) Vec { T x[K]; };

template <int K, typename T> __device__ inline Vec<T, K> vec_load(const T *p) {
#ifdef CUDA_EMULATION  // a misaligned vector access faults on a GPU and not on the host: dev/emu says so
    if ((uintptr_t)p % sizeof(Vec<T, K>)) emu_fail("vector load from a misaligned address", emu.kernel);
#endif
    return *reinterpret_cast<const Vec<T, K> *>(p);
}

template <int K, typename T> __device__ inline void vec_store(T *p, const Vec<T, K> &v) {
#ifdef CUDA_EMULATION
    if ((uintptr_t)p % sizeof(Vec<T, K>)) emu_fail("vector store to a misaligned address", emu.kernel);
#endif
    *reinterpret_cast<Vec<T, K> *>(p) = v;
}

// Set by dev/cuda's --version 1 only: every launcher takes K = 1, so its timing shows what K = VEC gains.
static int kernels_scalar = 0;

// false, saying once on stderr that some kernel moves one element per access (correct, slower; the trainer's
// presets never do, and the GPU tests check that this line stays away, as for unaligned matrix products).
static inline bool vec_refused(void) {
    static int said = 0;
    if (!said && !kernels_scalar) {
        fprintf(stderr, "kernels: a size or buffer that is not a multiple of %d elements: memory-bound kernels move one "
                        "element per access there\n", VEC);
        said = 1;
    }
    return false;
}

// Whether a kernel may move VEC elements at a time: every count (elements in all, or per row) a multiple of
// VEC and every pointer (NULL for an absent tensor) aligned to VEC of its elements.
template <typename... P> static inline bool vec_fits(std::initializer_list<size_t> counts, const P *...ptrs) {
    bool aligned = ((((uintptr_t)ptrs % (sizeof(P) * VEC)) == 0) && ... && true);
    for (size_t c : counts) aligned = aligned && c % VEC == 0;
    return aligned ? !kernels_scalar : vec_refused();
}

// f(k) with k a std::integral_constant<int, K>, K = VEC if `fits`, else 1: a launcher's body written once, as
// vec_dispatch(vec_fits({n}, out, inp), [&](auto k) { launch of kernel<k.value> over n / k.value threads });
template <typename F> static void vec_dispatch(bool fits, F f) {
    if (fits) f(std::integral_constant<int, VEC>());
    else f(std::integral_constant<int, 1>());
}

// dst [n] = src [n] in dst's type (round to nearest even), e.g. fp32 gradients to floatX for an all-reduce.
template <int K, typename D, typename S>
__global__ void convert_kernel(D *dst, const S *src, size_t n) {
    for (size_t i = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i < n; i += K * (size_t)gridDim.x * blockDim.x) {
        Vec<S, K> s = vec_load<K>(src + i);
        Vec<D, K> d;
        for (int k = 0; k < K; k++) d.x[k] = from_float<D>(to_float(s.x[k]));
        vec_store<K>(dst + i, d);
    }
}

template <typename D, typename S> static void convert(D *dst, const S *src, size_t n, cudaStream_t stream) {
    // dst [n] = src [n] rounded to D
    if (n == 0) return;
    vec_dispatch(vec_fits({n}, dst, src), [&](auto k) {
        convert_kernel<k.value><<<grid_stride_blocks(n / k.value, 256), 256, 0, stream>>>(dst, src, n);
    });
    cudaCheckLaunch();
}

// ----------------------------------------------------------------------------------------------------
// Stochastic rounding. random_u32 is SplitMix64's output mix applied to seed + (index + 1) * golden ratio:
// stateless, so element i of a tensor always draws the same bits for a given seed. Callers derive one
// seed per (step, tensor) on the host (e.g. with rng.h), which also decorrelates nearby seeds.

__host__ __device__ inline uint32_t random_u32(uint64_t seed, uint64_t index) {
    uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

// x rounded to one of its two bf16 neighbours, up with probability equal to the distance from the lower
// one (in units of the bf16 spacing), using the low 16 bits of `random`: adding them to the fp32 bits and
// truncating carries into the kept bits exactly that often. Unbiased: E[result] = x. inf and NaN are
// converted normally (adding to a NaN's low bits could turn it into inf).
__host__ __device__ inline __nv_bfloat16 bf16_round_stochastic(float x, uint32_t random) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    if ((bits & 0x7F800000u) == 0x7F800000u) return __float2bfloat16(x);
    bits += random & 0xFFFFu;
    __nv_bfloat16_raw raw;
    raw.x = (unsigned short)(bits >> 16);
    return __nv_bfloat16(raw);
}

// Store into T: stochastic rounding for bf16, exact for fp32.
template <typename T> __host__ __device__ inline T round_stochastic(float x, uint32_t random);
template <> __host__ __device__ inline float round_stochastic<float>(float x, uint32_t) { return x; }
template <> __host__ __device__ inline __nv_bfloat16 round_stochastic<__nv_bfloat16>(float x, uint32_t random) {
    return bf16_round_stochastic(x, random);
}

// ----------------------------------------------------------------------------------------------------
// Reductions. The butterfly (xor) order gives every lane the same bits, and the block reduction adds
// the warp sums in warp order: results are deterministic for a fixed launch configuration.

template <typename T> __device__ inline T warp_reduce_sum(T v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
    return v;
}

__device__ inline float warp_reduce_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
    return v;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32; every thread of the
// block must call it (it synchronises).
template <typename T> __device__ inline T block_reduce_sum(T v) {
    __shared__ T warp_sums[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
    v = warp_reduce_sum(v);
    __syncthreads();  // a previous call may still be reading warp_sums
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = lane < num_warps ? warp_sums[lane] : (T)0;
    return warp_reduce_sum(v);
}
