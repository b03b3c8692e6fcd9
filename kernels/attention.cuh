/*
 * kernels/attention.cuh: causal multi-head attention with GQA (query head h reads key/value head
 * h / (H / KV)), scale 1/sqrt(hd), in the flash-attention way: tiles of queries and keys, an online softmax,
 * and no [T, T] matrix in memory. The forward stores the logsumexp lse [B, H, T] (fp32) of every query row;
 * the backward recomputes the probabilities P = exp(q.k * scale - lse) and uses D = rowsum(dout * out)
 * (attention_backward_prep) for dS = P (dP - D), the same math as attention_backward in train_llama.c.
 *
 * Layouts as the CPU trainer: q, out, dq [B, T, H, hd]; k, v, dk, dv [B, T, KV, hd].
 *
 * The backward is deterministic and uses no atomics: one kernel owns a tile of keys and accumulates its dk
 * and dv over every query tile and every query head of its group (in a fixed order), another owns a tile of
 * queries and accumulates dq over the key tiles. The price is computing Q K^T and dO V^T twice.
 *
 * Two implementations, same results up to rounding:
 *  - tensor cores (bf16 builds): mma.sync m16n8k16, bf16 inputs, fp32 accumulators; P and dS are rounded to
 *    bf16 before their products, softmax statistics stay fp32. Needs sm_80 or newer, 16-byte aligned
 *    tensors, and hd in {16, 32, 64, 128}.
 *  - scalar (the fp32 build, and a reference version in dev/cuda/attention.cu): one warp per query (or key)
 *    row, fp32 throughout.
 */
#pragma once

#include <math.h>
#include <type_traits>
#include "common.cuh"

#define ATTN_LOG2E 1.4426950408889634f

// D [B, H, T] = sum over the head dim of dout * out; one warp per row (b, t, h) of [B, T, H, hd].
__global__ void attention_backward_prep_kernel(float *D, const floatX *dout, const floatX *out, int B, int T, int H, int hd) {
    int lane = threadIdx.x % 32;
    long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= (long long)B * T * H) return;
    const floatX *o = out + row * hd, *d = dout + row * hd;
    float acc = 0.0f;
    for (int i = lane; i < hd; i += 32) acc += to_float(d[i]) * to_float(o[i]);
    acc = warp_reduce_sum(acc);
    int h = (int)(row % H), t = (int)(row / H % T), b = (int)(row / H / T);
    if (lane == 0) D[((size_t)b * H + h) * T + t] = acc;
}

// ----------------------------------------------------------------------------------------------------
// Scalar path. Blocks of 4 warps, one row per warp; lane l owns dims l, l + 32, ... of the accumulators.
// Keys (or queries) go by chunks of 32, one per lane for the dot products, then broadcast by shuffles.
// Each warp keeps its own row(s) in fp32 in the block's dynamic shared memory.

#define ATTN_SCALAR_ROWS 4

template <int HD>
__global__ void attention_forward_scalar_kernel(floatX *out, float *lse, const floatX *q, const floatX *k, const floatX *v,
                                                int T, int H, int KV) {
    constexpr int DPL = (HD + 31) / 32;  // dims per lane
    extern __shared__ __align__(16) unsigned char attn_smem[];
    float *q_s = (float *)attn_smem + (threadIdx.x / 32) * HD;  // [ATTN_SCALAR_ROWS][HD]: this warp's query
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int t = blockIdx.x * ATTN_SCALAR_ROWS + warp, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    if (t >= T) return;
    float scale = 1.0f / sqrtf((float)HD);
    size_t kv_stride = (size_t)KV * HD;
    const floatX *qt = q + (((size_t)b * T + t) * H + h) * HD;
    const floatX *kb = k + (size_t)b * T * kv_stride + kvh * HD, *vb = v + (size_t)b * T * kv_stride + kvh * HD;
    for (int i = lane; i < HD; i += 32) q_s[i] = to_float(qt[i]);
    __syncwarp();
    float m = -INFINITY, l = 0.0f, o[DPL];
    for (int j = 0; j < DPL; j++) o[j] = 0.0f;
    for (int k0 = 0; k0 <= t; k0 += 32) {
        int t2 = k0 + lane;
        float s = -INFINITY;
        if (t2 <= t) {
            const floatX *kr = kb + t2 * kv_stride;
            float dot = 0.0f;
            for (int i = 0; i < HD; i++) dot += q_s[i] * to_float(kr[i]);
            s = dot * scale;
        }
        float m_new = fmaxf(m, warp_reduce_max(s));  // finite: key k0 <= t is in every chunk
        float alpha = expf(m - m_new);
        float p = t2 <= t ? expf(s - m_new) : 0.0f;
        l = l * alpha + warp_reduce_sum(p);
        for (int j = 0; j < DPL; j++) o[j] *= alpha;
        int count = min(32, t - k0 + 1);
        for (int jj = 0; jj < count; jj++) {
            float pj = __shfl_sync(0xFFFFFFFFu, p, jj);
            const floatX *vr = vb + (k0 + jj) * kv_stride;
            for (int j = 0; j < DPL; j++)
                if (lane + 32 * j < HD) o[j] += pj * to_float(vr[lane + 32 * j]);
        }
        m = m_new;
    }
    floatX *ot = out + (((size_t)b * T + t) * H + h) * HD;
    for (int j = 0; j < DPL; j++)
        if (lane + 32 * j < HD) ot[lane + 32 * j] = from_float<floatX>(o[j] / l);
    if (lane == 0) lse[((size_t)b * H + h) * T + t] = m + logf(l);
}

// One warp per key row j of kv head kvh: dk, dv summed over the heads of the group and the queries t >= j.
template <int HD>
__global__ void attention_backward_dkdv_scalar_kernel(floatX *dk, floatX *dv, const floatX *dout, const floatX *q,
                                                      const floatX *k, const floatX *v, const float *lse, const float *D,
                                                      int T, int H, int KV) {
    constexpr int DPL = (HD + 31) / 32;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    float *k_s = (float *)attn_smem + (threadIdx.x / 32) * 2 * HD, *v_s = k_s + HD;  // this warp's key and value
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int j = blockIdx.x * ATTN_SCALAR_ROWS + warp, kvh = blockIdx.y, b = blockIdx.z, group = H / KV;
    if (j >= T) return;
    float scale = 1.0f / sqrtf((float)HD);
    size_t kv_at = (((size_t)b * T + j) * KV + kvh) * HD;
    for (int i = lane; i < HD; i += 32) {
        k_s[i] = to_float(k[kv_at + i]);
        v_s[i] = to_float(v[kv_at + i]);
    }
    __syncwarp();
    float dk_acc[DPL], dv_acc[DPL];
    for (int d = 0; d < DPL; d++) dk_acc[d] = dv_acc[d] = 0.0f;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        const float *lse_h = lse + ((size_t)b * H + h) * T, *D_h = D + ((size_t)b * H + h) * T;
        for (int t0 = j; t0 < T; t0 += 32) {
            int t = t0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (t < T) {
                size_t at = (((size_t)b * T + t) * H + h) * HD;
                float s = 0.0f, dp = 0.0f;
                for (int i = 0; i < HD; i++) {
                    s += to_float(q[at + i]) * k_s[i];
                    dp += to_float(dout[at + i]) * v_s[i];
                }
                p = expf(s * scale - lse_h[t]);
                ds = p * (dp - D_h[t]);
            }
            int count = min(32, T - t0);
            for (int jj = 0; jj < count; jj++) {
                float pj = __shfl_sync(0xFFFFFFFFu, p, jj), dsj = __shfl_sync(0xFFFFFFFFu, ds, jj);
                size_t at = (((size_t)b * T + t0 + jj) * H + h) * HD;
                for (int d = 0; d < DPL; d++)
                    if (lane + 32 * d < HD) {
                        dv_acc[d] += pj * to_float(dout[at + lane + 32 * d]);
                        dk_acc[d] += dsj * to_float(q[at + lane + 32 * d]);
                    }
            }
        }
    }
    for (int d = 0; d < DPL; d++)
        if (lane + 32 * d < HD) {
            dk[kv_at + lane + 32 * d] = from_float<floatX>(dk_acc[d] * scale);
            dv[kv_at + lane + 32 * d] = from_float<floatX>(dv_acc[d]);
        }
}

// One warp per query row t of head h: dq summed over the keys <= t.
template <int HD>
__global__ void attention_backward_dq_scalar_kernel(floatX *dq, const floatX *dout, const floatX *q, const floatX *k,
                                                    const floatX *v, const float *lse, const float *D, int T, int H, int KV) {
    constexpr int DPL = (HD + 31) / 32;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    float *q_s = (float *)attn_smem + (threadIdx.x / 32) * 2 * HD, *do_s = q_s + HD;  // this warp's query and dout
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int t = blockIdx.x * ATTN_SCALAR_ROWS + warp, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    if (t >= T) return;
    float scale = 1.0f / sqrtf((float)HD);
    size_t q_at = (((size_t)b * T + t) * H + h) * HD, kv_stride = (size_t)KV * HD;
    const floatX *kb = k + (size_t)b * T * kv_stride + kvh * HD, *vb = v + (size_t)b * T * kv_stride + kvh * HD;
    for (int i = lane; i < HD; i += 32) {
        q_s[i] = to_float(q[q_at + i]);
        do_s[i] = to_float(dout[q_at + i]);
    }
    __syncwarp();
    float L = lse[((size_t)b * H + h) * T + t], Dt = D[((size_t)b * H + h) * T + t], dq_acc[DPL];
    for (int d = 0; d < DPL; d++) dq_acc[d] = 0.0f;
    for (int k0 = 0; k0 <= t; k0 += 32) {
        int t2 = k0 + lane;
        float ds = 0.0f;
        if (t2 <= t) {
            const floatX *kr = kb + t2 * kv_stride, *vr = vb + t2 * kv_stride;
            float s = 0.0f, dp = 0.0f;
            for (int i = 0; i < HD; i++) {
                s += q_s[i] * to_float(kr[i]);
                dp += do_s[i] * to_float(vr[i]);
            }
            ds = expf(s * scale - L) * (dp - Dt);
        }
        int count = min(32, t - k0 + 1);
        for (int jj = 0; jj < count; jj++) {
            float dsj = __shfl_sync(0xFFFFFFFFu, ds, jj);
            const floatX *kr = kb + (k0 + jj) * kv_stride;
            for (int d = 0; d < DPL; d++)
                if (lane + 32 * d < HD) dq_acc[d] += dsj * to_float(kr[lane + 32 * d]);
        }
    }
    for (int d = 0; d < DPL; d++)
        if (lane + 32 * d < HD) dq[q_at + lane + 32 * d] = from_float<floatX>(dq_acc[d] * scale);
}

// ----------------------------------------------------------------------------------------------------
// Tensor-core path (bf16 only). Blocks of 4 warps; each warp owns 16 rows of the block's tile.
//
// Fragments of mma.m16n8k16 with bf16 inputs (PTX ISA), lane = 4 g + t (g = lane / 4, t = lane % 4); each
// 32-bit register holds two bf16, the lower column (or k) in the low half:
//   A (16 x 16, m x k): a[0] = (row g, cols 2t, 2t+1), a[1] = (g + 8, 2t..), a[2] = (g, 2t + 8..), a[3] = (g + 8, 2t + 8..)
//   B (16 x 8, k x n):  b[0] = (k 2t, 2t+1; n g), b[1] = (k 2t + 8, 2t + 9; n g)
//   C (16 x 8, fp32):   c[0], c[1] = (row g, cols 2t, 2t+1), c[2], c[3] = (row g + 8, cols 2t, 2t+1)
// so the accumulators of two adjacent 8-column tiles are, once rounded, the A fragment of their 16 x 16
// block (frag_a_from_acc): P and dS go from one product to the next without leaving registers.
//
// Tiles sit in shared memory as row-major bf16 with a row stride of hd + 8 elements: rows stay 16-byte
// aligned for vector loads and ldmatrix, and the 32 words a warp's fragment load touches (8 rows g, 4 words t;
// or ldmatrix's 8 rows of 4 words) fall in distinct banks for every supported hd.
//
// Template parameter LDM (the trainer's choice; dev/cuda/attention.cu times both): the B fragments of a tile
// that holds B as is (V in P V, K in dS K, Q and dO in dK and dV) come from ldmatrix.trans, one instruction
// for two fragments, instead of eight 16-bit loads that each take a whole shared-memory wavefront for half
// its bytes. The fragments, and so the results, are the same bits either way.

#ifndef ENABLE_FP32

#define ATTN_PAD 8

__device__ inline uint32_t bf16x2_load(const __nv_bfloat16 *p) { return *reinterpret_cast<const uint32_t *>(p); }

__device__ inline uint32_t bf16x2_pack(__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return (uint32_t)__bfloat16_as_ushort(lo) | ((uint32_t)__bfloat16_as_ushort(hi) << 16);
}

__device__ inline uint32_t bf16x2_from_floats(float lo, float hi) {
    return bf16x2_pack(__float2bfloat16(lo), __float2bfloat16(hi));
}

// d += a b (16 x 8 += 16 x 16 by 16 x 8)
__device__ inline void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef CUDA_EMULATION  // dev/emu/cuda_emu.h
    emu_mma_bf16_16816(d, a, b);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// A = tile[r0 .. r0 + 16][c0 .. c0 + 16]
__device__ inline void frag_a(uint32_t a[4], const __nv_bfloat16 *tile, int S, int r0, int c0, int g, int t) {
    a[0] = bf16x2_load(tile + (r0 + g) * S + c0 + 2 * t);
    a[1] = bf16x2_load(tile + (r0 + g + 8) * S + c0 + 2 * t);
    a[2] = bf16x2_load(tile + (r0 + g) * S + c0 + 8 + 2 * t);
    a[3] = bf16x2_load(tile + (r0 + g + 8) * S + c0 + 8 + 2 * t);
}

// B[kk][n] = tile[n0 + n][k0 + kk]: the tile holds B transposed (its rows are the n index), as K in Q K^T.
__device__ inline void frag_b(uint32_t b[2], const __nv_bfloat16 *tile, int S, int n0, int k0, int g, int t) {
    b[0] = bf16x2_load(tile + (n0 + g) * S + k0 + 2 * t);
    b[1] = bf16x2_load(tile + (n0 + g) * S + k0 + 8 + 2 * t);
}

// B[kk][n] = tile[k0 + kk][n0 + n]: the tile holds B as is (its rows are the k index), as V in P V.
__device__ inline void frag_b_rows(uint32_t b[2], const __nv_bfloat16 *tile, int S, int k0, int n0, int g, int t) {
    const __nv_bfloat16 *p = tile + (k0 + 2 * t) * S + n0 + g;
    b[0] = bf16x2_pack(p[0], p[S]);
    b[1] = bf16x2_pack(p[8 * S], p[9 * S]);
}

// ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16: lane 8 i + j gives the address of row j (16 bytes) of 8 x 8
// matrix i; lane 4 g + t receives in r[i] the elements (2t, g) and (2t + 1, g) of matrix i, low half first.
__device__ inline void ldmatrix_x4_trans(uint32_t r[4], const __nv_bfloat16 *row) {
#ifdef CUDA_EMULATION  // dev/emu/cuda_emu.h
    emu_ldmatrix_x4_trans(r, row);
#else
    unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
#endif
}

// frag_b_rows for columns n0 and n0 + 8 at once: b[0] and b[1]. With LDM by one ldmatrix.x4.trans whose matrix
// i covers rows k0 + 8 (i % 2) and columns n0 + 8 (i / 2): lane L points at row k0 + L % 8 + 8 (L / 8 % 2),
// column n0 + 8 (L / 16), and each matrix comes back as a B fragment's register ((2t, g), (2t + 1, g)).
template <bool LDM>
__device__ inline void frag_b_rows_pair(uint32_t b[2][2], const __nv_bfloat16 *tile, int S, int k0, int n0, int lane) {
    if (LDM) {
        uint32_t r[4];
        ldmatrix_x4_trans(r, tile + (k0 + (lane & 7) + (lane & 8)) * S + n0 + (lane >> 4) * 8);
        b[0][0] = r[0], b[0][1] = r[1], b[1][0] = r[2], b[1][1] = r[3];
    } else {
        frag_b_rows(b[0], tile, S, k0, n0, lane / 4, lane % 4);
        frag_b_rows(b[1], tile, S, k0, n0 + 8, lane / 4, lane % 4);
    }
}

// The 16 x 16 block made of accumulator tiles c0 (columns 0..7) and c1 (8..15), rounded, as an A fragment.
__device__ inline void frag_a_from_acc(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = bf16x2_from_floats(c0[0], c0[1]);
    a[1] = bf16x2_from_floats(c0[2], c0[3]);
    a[2] = bf16x2_from_floats(c1[0], c1[1]);
    a[3] = bf16x2_from_floats(c1[2], c1[3]);
}

// Rows [0, rows) of a tile whose row r is at src + r * stride, into dst [rows][HD + ATTN_PAD]; rows from
// `valid` on are zero (past the end of the sequence).
template <int HD>
__device__ inline void tile_load(__nv_bfloat16 *dst, const __nv_bfloat16 *src, size_t stride, int rows, int valid) {
    constexpr int CHUNKS = HD / 8;  // 16-byte chunks per row
    for (int i = threadIdx.x; i < rows * CHUNKS; i += blockDim.x) {
        int r = i / CHUNKS, c = (i % CHUNKS) * 8;
        uint4 val = make_uint4(0u, 0u, 0u, 0u);
        if (r < valid) val = *reinterpret_cast<const uint4 *>(src + r * stride + c);
        *reinterpret_cast<uint4 *>(dst + r * (HD + ATTN_PAD) + c) = val;
    }
}

#define ATTN_BQ 64  // query rows per block (forward and dq)
#define ATTN_BK 64  // key rows per tile

// Block (query tile, head, batch); the query tiles run in reverse so the longest (last) ones start first.
template <int HD, bool LDM>
__global__ void __launch_bounds__(128) attention_forward_mma_kernel(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q,
                                                                   const __nv_bfloat16 *k, const __nv_bfloat16 *v, int T,
                                                                   int H, int KV, float scale_log2) {
    constexpr int S = HD + ATTN_PAD;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)attn_smem, *Ks = Qs + ATTN_BQ * S, *Vs = Ks + ATTN_BK * S;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    int q0 = qt * ATTN_BQ;
    size_t q_stride = (size_t)H * HD, kv_stride = (size_t)KV * HD;
    const __nv_bfloat16 *qb = q + (size_t)b * T * q_stride + h * HD;
    const __nv_bfloat16 *kb = k + (size_t)b * T * kv_stride + kvh * HD, *vb = v + (size_t)b * T * kv_stride + kvh * HD;

    tile_load<HD>(Qs, qb + q0 * q_stride, q_stride, ATTN_BQ, min(ATTN_BQ, T - q0));
    __syncthreads();
    uint32_t qf[HD / 16][4];
    for (int kk = 0; kk < HD / 16; kk++) frag_a(qf[kk], Qs, S, warp * 16, kk * 16, g, t);

    int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};  // this thread's query rows
    float o[HD / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // m in log2 units; l: this thread's columns
    for (int dt = 0; dt < HD / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    for (int kt = 0; kt <= qt; kt++) {  // key tiles up to the diagonal (ATTN_BK == ATTN_BQ)
        int k0 = kt * ATTN_BK;
        __syncthreads();  // everyone is done with the previous K, V tiles
        tile_load<HD>(Ks, kb + k0 * kv_stride, kv_stride, ATTN_BK, min(ATTN_BK, T - k0));
        tile_load<HD>(Vs, vb + k0 * kv_stride, kv_stride, ATTN_BK, min(ATTN_BK, T - k0));
        __syncthreads();
        float s[ATTN_BK / 8][4];
        for (int nt = 0; nt < ATTN_BK / 8; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        for (int kk = 0; kk < HD / 16; kk++)
            for (int nt = 0; nt < ATTN_BK / 8; nt++) {
                uint32_t bf[2];
                frag_b(bf, Ks, S, nt * 8, kk * 16, g, t);
                mma_bf16_16816(s[nt], qf[kk], bf);
            }
        float mx[2] = {-INFINITY, -INFINITY};
        for (int nt = 0; nt < ATTN_BK / 8; nt++)
            for (int e = 0; e < 4; e++) {
                int col = k0 + nt * 8 + 2 * t + (e & 1);
                float x = col <= row[e >> 1] && col < T ? s[nt][e] * scale_log2 : -INFINITY;
                s[nt][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        float alpha[2], base[2], sum[2] = {0.0f, 0.0f};
        for (int i = 0; i < 2; i++) {  // the 4 threads of a group hold the columns of the same rows
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xFFFFFFFFu, mx[i], 1));
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xFFFFFFFFu, mx[i], 2));
            float m_new = fmaxf(m[i], mx[i]);
            base[i] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing unmasked yet stays at zero
            alpha[i] = exp2f(m[i] - base[i]);
            m[i] = m_new;
        }
        for (int nt = 0; nt < ATTN_BK / 8; nt++)
            for (int e = 0; e < 4; e++) {
                s[nt][e] = exp2f(s[nt][e] - base[e >> 1]);
                sum[e >> 1] += s[nt][e];
            }
        for (int i = 0; i < 2; i++) l[i] = l[i] * alpha[i] + sum[i];
        for (int dt = 0; dt < HD / 8; dt++) {
            o[dt][0] *= alpha[0], o[dt][1] *= alpha[0];
            o[dt][2] *= alpha[1], o[dt][3] *= alpha[1];
        }
        for (int kk = 0; kk < ATTN_BK / 16; kk++) {
            uint32_t pa[4];
            frag_a_from_acc(pa, s[2 * kk], s[2 * kk + 1]);
            for (int dt = 0; dt < HD / 8; dt += 2) {
                uint32_t bf[2][2];
                frag_b_rows_pair<LDM>(bf, Vs, S, kk * 16, dt * 8, lane);
                mma_bf16_16816(o[dt], pa, bf[0]);
                mma_bf16_16816(o[dt + 1], pa, bf[1]);
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        l[i] += __shfl_xor_sync(0xFFFFFFFFu, l[i], 1);
        l[i] += __shfl_xor_sync(0xFFFFFFFFu, l[i], 2);
        if (row[i] >= T) continue;
        float inv = 1.0f / l[i];
        __nv_bfloat16 *orow = out + ((size_t)b * T + row[i]) * q_stride + h * HD;
        for (int dt = 0; dt < HD / 8; dt++)
            *reinterpret_cast<uint32_t *>(orow + dt * 8 + 2 * t) = bf16x2_from_floats(o[dt][2 * i] * inv, o[dt][2 * i + 1] * inv);
        if (t == 0) lse[((size_t)b * H + h) * T + row[i]] = (m[i] + log2f(l[i])) / ATTN_LOG2E;
    }
}

// The two score products of the backward for one warp's 16 rows (a_row on) of the shared tiles A1, A2
// [.., HD + ATTN_PAD]: acc1 = A1 B1^T and acc2 = A2 B2^T over HD, for the NT x 8 rows of B1, B2. The dq kernel
// takes (Q, dO) against (K, V) for S and dP; the dk/dv kernel (K, V) against (Q, dO) for S^T and dP^T.
template <int HD, int NT>
__device__ __forceinline__ void attention_two_products(float acc1[NT][4], float acc2[NT][4], const __nv_bfloat16 *A1,
                                                       const __nv_bfloat16 *A2, const __nv_bfloat16 *B1,
                                                       const __nv_bfloat16 *B2, int a_row, int g, int t) {
    constexpr int S = HD + ATTN_PAD;
    for (int nt = 0; nt < NT; nt++)
        for (int e = 0; e < 4; e++) acc1[nt][e] = acc2[nt][e] = 0.0f;
    for (int kk = 0; kk < HD / 16; kk++) {
        uint32_t a1[4], a2[4];
        frag_a(a1, A1, S, a_row, kk * 16, g, t);
        frag_a(a2, A2, S, a_row, kk * 16, g, t);
        for (int nt = 0; nt < NT; nt++) {
            uint32_t bf[2];
            frag_b(bf, B1, S, nt * 8, kk * 16, g, t);
            mma_bf16_16816(acc1[nt], a1, bf);
            frag_b(bf, B2, S, nt * 8, kk * 16, g, t);
            mma_bf16_16816(acc2[nt], a2, bf);
        }
    }
}

// Block (query tile, head, batch): dq for 64 query rows, over the key tiles up to the diagonal.
template <int HD, bool LDM>
__global__ void __launch_bounds__(128) attention_backward_dq_mma_kernel(__nv_bfloat16 *dq, const __nv_bfloat16 *dout,
                                                                       const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                                                       const __nv_bfloat16 *v, const float *lse,
                                                                       const float *D, int T, int H, int KV,
                                                                       float scale_log2, float scale) {
    constexpr int S = HD + ATTN_PAD;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)attn_smem, *dOs = Qs + ATTN_BQ * S, *Ks = dOs + ATTN_BQ * S, *Vs = Ks + ATTN_BK * S;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    int q0 = qt * ATTN_BQ;
    size_t q_stride = (size_t)H * HD, kv_stride = (size_t)KV * HD;
    const __nv_bfloat16 *kb = k + (size_t)b * T * kv_stride + kvh * HD, *vb = v + (size_t)b * T * kv_stride + kvh * HD;
    size_t q_at = ((size_t)b * T + q0) * q_stride + h * HD;  // row q0 of head h
    tile_load<HD>(Qs, q + q_at, q_stride, ATTN_BQ, min(ATTN_BQ, T - q0));
    tile_load<HD>(dOs, dout + q_at, q_stride, ATTN_BQ, min(ATTN_BQ, T - q0));

    int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    float lse2[2], Dr[2];  // lse in log2 units, D, for this thread's rows
    for (int i = 0; i < 2; i++) {
        size_t at = ((size_t)b * H + h) * T + row[i];
        lse2[i] = row[i] < T ? lse[at] * ATTN_LOG2E : 0.0f;
        Dr[i] = row[i] < T ? D[at] : 0.0f;
    }
    float dqa[HD / 8][4];
    for (int dt = 0; dt < HD / 8; dt++) dqa[dt][0] = dqa[dt][1] = dqa[dt][2] = dqa[dt][3] = 0.0f;
    for (int kt = 0; kt <= qt; kt++) {
        int k0 = kt * ATTN_BK;
        __syncthreads();
        tile_load<HD>(Ks, kb + k0 * kv_stride, kv_stride, ATTN_BK, min(ATTN_BK, T - k0));
        tile_load<HD>(Vs, vb + k0 * kv_stride, kv_stride, ATTN_BK, min(ATTN_BK, T - k0));
        __syncthreads();
        float s[ATTN_BK / 8][4], dp[ATTN_BK / 8][4];
        attention_two_products<HD, ATTN_BK / 8>(s, dp, Qs, dOs, Ks, Vs, warp * 16, g, t);  // S = Q K^T, dP = dO V^T
        for (int nt = 0; nt < ATTN_BK / 8; nt++)
            for (int e = 0; e < 4; e++) {
                int col = k0 + nt * 8 + 2 * t + (e & 1), r = row[e >> 1];
                float p = col <= r && col < T && r < T ? exp2f(s[nt][e] * scale_log2 - lse2[e >> 1]) : 0.0f;
                s[nt][e] = p * (dp[nt][e] - Dr[e >> 1]);  // dS
            }
        for (int kk = 0; kk < ATTN_BK / 16; kk++) {
            uint32_t a[4];
            frag_a_from_acc(a, s[2 * kk], s[2 * kk + 1]);
            for (int dt = 0; dt < HD / 8; dt += 2) {
                uint32_t bf[2][2];
                frag_b_rows_pair<LDM>(bf, Ks, S, kk * 16, dt * 8, lane);
                mma_bf16_16816(dqa[dt], a, bf[0]);  // dQ += dS K
                mma_bf16_16816(dqa[dt + 1], a, bf[1]);
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (row[i] >= T) continue;
        __nv_bfloat16 *drow = dq + ((size_t)b * T + row[i]) * q_stride + h * HD;
        for (int dt = 0; dt < HD / 8; dt++)
            *reinterpret_cast<uint32_t *>(drow + dt * 8 + 2 * t) = bf16x2_from_floats(dqa[dt][2 * i] * scale, dqa[dt][2 * i + 1] * scale);
    }
}

// Query rows per inner tile of the dk/dv kernel: smaller for hd 128 to keep the accumulators in registers.
template <int HD> struct AttnDkdvTile { static constexpr int BQ = HD <= 64 ? 64 : 32; };

// Block (key tile, kv head, batch): dk, dv for 64 key rows, over the query heads of the group and the query
// tiles from the diagonal on. The first key tiles have the most work and come first.
template <int HD, bool LDM>
__global__ void __launch_bounds__(128) attention_backward_dkdv_mma_kernel(__nv_bfloat16 *dk, __nv_bfloat16 *dv,
                                                                         const __nv_bfloat16 *dout, const __nv_bfloat16 *q,
                                                                         const __nv_bfloat16 *k, const __nv_bfloat16 *v,
                                                                         const float *lse, const float *D, int T, int H,
                                                                         int KV, float scale_log2, float scale) {
    constexpr int S = HD + ATTN_PAD, BQ = AttnDkdvTile<HD>::BQ;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)attn_smem, *Vs = Ks + ATTN_BK * S, *Qs = Vs + ATTN_BK * S, *dOs = Qs + BQ * S;
    float *lse_s = (float *)(dOs + BQ * S), *D_s = lse_s + BQ;  // [BQ] each; lse in log2 units
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    int kt = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, group = H / KV;
    int k0 = kt * ATTN_BK;
    size_t q_stride = (size_t)H * HD, kv_stride = (size_t)KV * HD;
    size_t kv_at = ((size_t)b * T + k0) * kv_stride + kvh * HD;  // row k0 of kv head kvh
    tile_load<HD>(Ks, k + kv_at, kv_stride, ATTN_BK, min(ATTN_BK, T - k0));
    tile_load<HD>(Vs, v + kv_at, kv_stride, ATTN_BK, min(ATTN_BK, T - k0));

    int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};  // this thread's key rows
    float dka[HD / 8][4], dva[HD / 8][4];
    for (int dt = 0; dt < HD / 8; dt++)
        for (int e = 0; e < 4; e++) dka[dt][e] = dva[dt][e] = 0.0f;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        const float *lse_h = lse + ((size_t)b * H + h) * T, *D_h = D + ((size_t)b * H + h) * T;
        for (int q0 = k0; q0 < T; q0 += BQ) {  // k0 is a multiple of BQ: the first tile holds the diagonal
            __syncthreads();  // everyone is done with the previous Q, dO tiles
            size_t q_at = ((size_t)b * T + q0) * q_stride + h * HD;
            tile_load<HD>(Qs, q + q_at, q_stride, BQ, min(BQ, T - q0));
            tile_load<HD>(dOs, dout + q_at, q_stride, BQ, min(BQ, T - q0));
            for (int i = threadIdx.x; i < BQ; i += blockDim.x) {
                lse_s[i] = q0 + i < T ? lse_h[q0 + i] * ATTN_LOG2E : 0.0f;
                D_s[i] = q0 + i < T ? D_h[q0 + i] : 0.0f;
            }
            __syncthreads();
            float st[BQ / 8][4], dpt[BQ / 8][4];  // S^T = K Q^T and dP^T = V dO^T: rows keys, columns queries
            attention_two_products<HD, BQ / 8>(st, dpt, Ks, Vs, Qs, dOs, warp * 16, g, t);
            for (int nt = 0; nt < BQ / 8; nt++)
                for (int e = 0; e < 4; e++) {
                    int qc = nt * 8 + 2 * t + (e & 1), qi = q0 + qc, kr = key[e >> 1];
                    float p = qi >= kr && qi < T && kr < T ? exp2f(st[nt][e] * scale_log2 - lse_s[qc]) : 0.0f;
                    st[nt][e] = p;                           // P^T
                    dpt[nt][e] = p * (dpt[nt][e] - D_s[qc]);  // dS^T
                }
            for (int kq = 0; kq < BQ / 16; kq++) {
                uint32_t pa[4], sa[4];
                frag_a_from_acc(pa, st[2 * kq], st[2 * kq + 1]);
                frag_a_from_acc(sa, dpt[2 * kq], dpt[2 * kq + 1]);
                for (int dt = 0; dt < HD / 8; dt += 2) {
                    uint32_t bf[2][2];
                    frag_b_rows_pair<LDM>(bf, dOs, S, kq * 16, dt * 8, lane);
                    mma_bf16_16816(dva[dt], pa, bf[0]);  // dV += P^T dO
                    mma_bf16_16816(dva[dt + 1], pa, bf[1]);
                    frag_b_rows_pair<LDM>(bf, Qs, S, kq * 16, dt * 8, lane);
                    mma_bf16_16816(dka[dt], sa, bf[0]);  // dK += dS^T Q
                    mma_bf16_16816(dka[dt + 1], sa, bf[1]);
                }
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        if (key[i] >= T) continue;
        size_t at = ((size_t)b * T + key[i]) * kv_stride + kvh * HD;
        for (int dt = 0; dt < HD / 8; dt++) {
            *reinterpret_cast<uint32_t *>(dk + at + dt * 8 + 2 * t) = bf16x2_from_floats(dka[dt][2 * i] * scale, dka[dt][2 * i + 1] * scale);
            *reinterpret_cast<uint32_t *>(dv + at + dt * 8 + 2 * t) = bf16x2_from_floats(dva[dt][2 * i], dva[dt][2 * i + 1]);
        }
    }
}

#endif  // !ENABLE_FP32

// ----------------------------------------------------------------------------------------------------
// Launchers.

// The head dims the kernels are instantiated for (attention_dispatch_hd), as the message of a trainer that
// refuses others before it starts.
#define ATTENTION_HEAD_DIMS "16, 32, 64 or 128"
static int attention_head_dim_supported(int hd) { return hd == 16 || hd == 32 || hd == 64 || hd == 128; }

// Calls f(std::integral_constant<int, HD>()) for the supported head dims.
template <typename F> static void attention_dispatch_hd(int hd, F f) {
    switch (hd) {
        case 16: f(std::integral_constant<int, 16>()); break;
        case 32: f(std::integral_constant<int, 32>()); break;
        case 64: f(std::integral_constant<int, 64>()); break;
        case 128: f(std::integral_constant<int, 128>()); break;
        default: kernelRequire(false, "attention: head dim %d is not supported (" ATTENTION_HEAD_DIMS ")", hd);
    }
}

static void attention_check_shape(int H, int KV) {
    kernelRequire(H > 0 && KV > 0 && H % KV == 0, "attention: %d query heads are not a multiple of %d kv heads", H, KV);
}

static void attention_backward_prep(float *D, const floatX *dout, const floatX *out, int B, int T, int H, int hd,
                                    cudaStream_t stream) {
    long long rows = (long long)B * T * H;
    attention_backward_prep_kernel<<<(unsigned)ceil_div(rows, 8LL), 256, 0, stream>>>(D, dout, out, B, T, H, hd);
    cudaCheckLaunch();
}

static void attention_forward_scalar(floatX *out, float *lse, const floatX *q, const floatX *k, const floatX *v, int B,
                                     int T, int H, int KV, int hd, cudaStream_t stream) {
    attention_check_shape(H, KV);
    if (B == 0 || T == 0) return;
    dim3 grid(ceil_div(T, ATTN_SCALAR_ROWS), H, B);
    attention_dispatch_hd(hd, [&](auto HDc) {
        constexpr int HD = decltype(HDc)::value;
        size_t smem = sizeof(float) * ATTN_SCALAR_ROWS * HD;
        attention_forward_scalar_kernel<HD><<<grid, 32 * ATTN_SCALAR_ROWS, smem, stream>>>(out, lse, q, k, v, T, H, KV);
    });
    cudaCheckLaunch();
}

static void attention_backward_scalar(floatX *dq, floatX *dk, floatX *dv, float *D, const floatX *dout, const floatX *out,
                                      const floatX *q, const floatX *k, const floatX *v, const float *lse, int B, int T,
                                      int H, int KV, int hd, cudaStream_t stream) {
    attention_check_shape(H, KV);
    if (B == 0 || T == 0) return;
    attention_backward_prep(D, dout, out, B, T, H, hd, stream);
    dim3 grid_kv(ceil_div(T, ATTN_SCALAR_ROWS), KV, B), grid_q(ceil_div(T, ATTN_SCALAR_ROWS), H, B);
    attention_dispatch_hd(hd, [&](auto HDc) {
        constexpr int HD = decltype(HDc)::value;
        size_t smem = sizeof(float) * ATTN_SCALAR_ROWS * 2 * HD;
        attention_backward_dkdv_scalar_kernel<HD><<<grid_kv, 32 * ATTN_SCALAR_ROWS, smem, stream>>>(dk, dv, dout, q, k, v, lse, D, T, H, KV);
        cudaCheckLaunch();
        attention_backward_dq_scalar_kernel<HD><<<grid_q, 32 * ATTN_SCALAR_ROWS, smem, stream>>>(dq, dout, q, k, v, lse, D, T, H, KV);
    });
    cudaCheckLaunch();
}

#ifndef ENABLE_FP32

// Opts a kernel into more than the default 48 KiB of dynamic shared memory when it needs it.
template <typename K> static void attention_smem_attribute(K kernel, size_t bytes) {
    if (bytes > 48 * 1024) cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

static void attention_check_aligned(const void *p, const char *name) {
    kernelRequire(((uintptr_t)p & 15) == 0, "attention: %s is not 16-byte aligned", name);
}

template <bool LDM>
static void attention_forward_mma(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                  const __nv_bfloat16 *v, int B, int T, int H, int KV, int hd, cudaStream_t stream) {
    attention_check_shape(H, KV);
    attention_check_aligned(out, "out"), attention_check_aligned(q, "q");
    attention_check_aligned(k, "k"), attention_check_aligned(v, "v");
    if (B == 0 || T == 0) return;
    float scale_log2 = ATTN_LOG2E * (1.0f / sqrtf((float)hd));  // as the backward computes it
    dim3 grid(ceil_div(T, ATTN_BQ), H, B);
    attention_dispatch_hd(hd, [&](auto HDc) {
        constexpr int HD = decltype(HDc)::value;
        size_t smem = sizeof(__nv_bfloat16) * (ATTN_BQ + 2 * ATTN_BK) * (HD + ATTN_PAD);
        attention_smem_attribute(attention_forward_mma_kernel<HD, LDM>, smem);
        attention_forward_mma_kernel<HD, LDM><<<grid, 128, smem, stream>>>(out, lse, q, k, v, T, H, KV, scale_log2);
    });
    cudaCheckLaunch();
}

template <bool LDM>
static void attention_backward_mma(__nv_bfloat16 *dq, __nv_bfloat16 *dk, __nv_bfloat16 *dv, float *D,
                                   const __nv_bfloat16 *dout, const __nv_bfloat16 *out, const __nv_bfloat16 *q,
                                   const __nv_bfloat16 *k, const __nv_bfloat16 *v, const float *lse, int B, int T, int H,
                                   int KV, int hd, cudaStream_t stream) {
    attention_check_shape(H, KV);
    attention_check_aligned(dq, "dq"), attention_check_aligned(dk, "dk"), attention_check_aligned(dv, "dv");
    attention_check_aligned(dout, "dout"), attention_check_aligned(q, "q");
    attention_check_aligned(k, "k"), attention_check_aligned(v, "v");
    if (B == 0 || T == 0) return;
    attention_backward_prep(D, dout, out, B, T, H, hd, stream);
    float scale = 1.0f / sqrtf((float)hd), scale_log2 = ATTN_LOG2E * scale;
    attention_dispatch_hd(hd, [&](auto HDc) {
        constexpr int HD = decltype(HDc)::value, BQ = AttnDkdvTile<HD>::BQ;
        size_t smem_kv = sizeof(__nv_bfloat16) * (2 * ATTN_BK + 2 * BQ) * (HD + ATTN_PAD) + sizeof(float) * 2 * BQ;
        attention_smem_attribute(attention_backward_dkdv_mma_kernel<HD, LDM>, smem_kv);
        attention_backward_dkdv_mma_kernel<HD, LDM><<<dim3(ceil_div(T, ATTN_BK), KV, B), 128, smem_kv, stream>>>(
            dk, dv, dout, q, k, v, lse, D, T, H, KV, scale_log2, scale);
        cudaCheckLaunch();
        size_t smem_q = sizeof(__nv_bfloat16) * (2 * ATTN_BQ + 2 * ATTN_BK) * (HD + ATTN_PAD);
        attention_smem_attribute(attention_backward_dq_mma_kernel<HD, LDM>, smem_q);
        attention_backward_dq_mma_kernel<HD, LDM><<<dim3(ceil_div(T, ATTN_BQ), H, B), 128, smem_q, stream>>>(
            dq, dout, q, k, v, lse, D, T, H, KV, scale_log2, scale);
    });
    cudaCheckLaunch();
}

#endif  // !ENABLE_FP32

// ----------------------------------------------------------------------------------------------------
// The trainer's entry points: tensor cores (with ldmatrix) in bf16 builds, the scalar path in the fp32 build.

static void attention_forward(floatX *out, float *lse, const floatX *q, const floatX *k, const floatX *v, int B, int T,
                              int H, int KV, int hd, cudaStream_t stream) {
    // out [B, T, H, hd], lse [B, H, T] fp32; q [B, T, H, hd]; k, v [B, T, KV, hd]
#ifdef ENABLE_FP32
    attention_forward_scalar(out, lse, q, k, v, B, T, H, KV, hd, stream);
#else
    attention_forward_mma<true>(out, lse, q, k, v, B, T, H, KV, hd, stream);
#endif
}

static void attention_backward(floatX *dq, floatX *dk, floatX *dv, float *scratch, const floatX *dout, const floatX *out,
                               const floatX *q, const floatX *k, const floatX *v, const float *lse, int B, int T, int H,
                               int KV, int hd, cudaStream_t stream) {
    // dq [B, T, H, hd], dk, dv [B, T, KV, hd]: written (=), not accumulated; scratch [B, H, T] fp32;
    // dout, out, q [B, T, H, hd]; k, v [B, T, KV, hd]; lse [B, H, T] from attention_forward
#ifdef ENABLE_FP32
    attention_backward_scalar(dq, dk, dv, scratch, dout, out, q, k, v, lse, B, T, H, KV, hd, stream);
#else
    attention_backward_mma<true>(dq, dk, dv, scratch, dout, out, q, k, v, lse, B, T, H, KV, hd, stream);
#endif
}
