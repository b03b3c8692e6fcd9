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
#define ATTN_BQ 64  // query rows per block of the tensor-core dq kernel (and of the forward up to version 5)
#define ATTN_BK 64  // key rows per tile of the tensor-core kernels

// Where version 7 stores dS: for each (b, h) the causal tiles (query tile qt, key tile kt <= qt) in the order
// (0, 0), (1, 0), (1, 1), (2, 0), ..., so the tiles a dq block reads follow each other; each tile is dS^T,
// [ATTN_BK keys][ATTN_BQ queries] bf16, row-major. nt = ceil(T / 64) tiles per sequence.
__host__ __device__ inline size_t attention_ds_offset(int b, int h, int qt, int kt, int H, int nt) {
    return (((size_t)b * H + h) * ((size_t)nt * (nt + 1) / 2) + (size_t)qt * (qt + 1) / 2 + kt) * (ATTN_BQ * ATTN_BK);
}

// The floats of D [B, H, T] at the start of the backward's scratch, rounded up to 16 bytes.
static size_t attention_d_floats(int B, int T, int H) { return ((size_t)B * H * T + 3) / 4 * 4; }

// The backward's scratch for a version (1: the scalar path), in floats: D, then from version 7 on the stored dS
// tiles (bf16).
static size_t attention_scratch_floats(int version, int B, int T, int H) {
    size_t ds = version < 7 ? 0 : attention_ds_offset(B, 0, 0, 0, H, (T + ATTN_BQ - 1) / ATTN_BQ) / 2;
    return attention_d_floats(B, T, H) + ds;
}

// D [B, H, T] = sum over the head dim of dout * out, for the rows (b, t, h) of [B, T, H, HD]: G = HD / K threads per
// row, each with one 16-byte load of each tensor (K elements, summed in order), then the G sums by shuffles. (One
// warp per row with an element per lane would move 2 bytes a load: a quarter of a 32-byte sector per lane.)
template <int HD>
__global__ void attention_backward_prep_kernel(float *D, const floatX *dout, const floatX *out, int B, int T, int H) {
    constexpr int K = 16 / sizeof(floatX), G = HD / K;
    static_assert(HD % K == 0 && G <= 32 && 32 % G == 0, "a row is a power-of-two part of a warp");
    long long row = ((long long)blockIdx.x * blockDim.x + threadIdx.x) / G;
    int part = threadIdx.x % G;
    bool valid = row < (long long)B * T * H;  // the others still take part in the shuffles
    float acc = 0.0f;
    if (valid) {
        Vec<floatX, K> o = vec_load<K>(out + row * HD + part * K), d = vec_load<K>(dout + row * HD + part * K);
        for (int k = 0; k < K; k++) acc += to_float(d.x[k]) * to_float(o.x[k]);
    }
    for (int offset = G / 2; offset > 0; offset >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, offset);
    if (!valid || part != 0) return;
    int h = (int)(row % H), t = (int)(row / H % T), b = (int)(row / H / T);
    D[((size_t)b * H + h) * T + t] = acc;
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
// Template parameter V, the version (dev/cuda/attention.cu times them; the results are the same bits in all):
//  2: fragments from 32-bit shared loads, the B fragments of a tile that holds B as is (V in P V, K in dS K, Q and
//     dO in dK and dV) from 16-bit loads, each taking a whole shared-memory wavefront for half its bytes; tiles
//     loaded synchronously between two barriers.
//  3: those B fragments from ldmatrix.trans, two fragments per instruction.
//  4: every fragment from ldmatrix (four 8 x 8 matrices per instruction instead of four 32-bit loads), and the
//     streamed tiles (K and V; Q, dO, lse and D in the dk/dv kernel) double-buffered with cp.async: the next
//     tile's copy is in flight while the current one is computed.
//  5: 4 with register budgets for more blocks per SM at hd 64 (AttnMinBlocks; a few spilled registers).
//  6: 5 with a forward of 32 query rows per warp up to hd 64 (AttnForwardTile): each B fragment read from shared
//     memory feeds two products.
//  7: 6 with dq from a stored dS: the dk/dv kernel writes the bf16 dS tiles it computes (the values its dK product
//     takes) to the backward's scratch, and the dq kernel reads them instead of recomputing S and dP, so the
//     backward does 5 products instead of 7 (attention_backward_dq_stored_kernel). The scratch grows by the causal
//     tiles of dS: B H nt (nt + 1) / 2 tiles of 64 x 64 bf16 for nt = ceil(T / 64) (285 MB at 1b, 8 x 1024).
// Every version masks only the tiles that need it (the diagonal, and tiles past the end of the sequence), with a
// select per element in those tiles and no test in the others, and computes each probability as one fused
// multiply-add and one ex2 (attn_exp2), so that the loops stay lean: an SM quarter issues one instruction a
// clock and its tensor core takes at least 4 clocks for an m16n8k16 (sm_90's peak), so a loop of more than 4
// instructions per mma cannot keep the tensor cores busy. dev/cuda/sass_loops.py counts the instructions per mma
// of these loops in a build (dev/bench/RESULTS.md has the counts).

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

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane 8 i + j gives the address of row j (16 bytes) of 8 x 8
// matrix i; lane 4 g + t receives in r[i] the elements (g, 2t) and (g, 2t + 1) of matrix i, or with TRANS
// (2t, g) and (2t + 1, g), low half first.
template <bool TRANS> __device__ inline void ldmatrix_x4(uint32_t r[4], const __nv_bfloat16 *row) {
#ifdef CUDA_EMULATION  // dev/emu/cuda_emu.h
    TRANS ? emu_ldmatrix_x4_trans(r, row) : emu_ldmatrix_x4(r, row);
#else
    unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    if (TRANS)
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(addr));
    else
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                     : "r"(addr));
#endif
}

// Where lane L points ldmatrix.x4 for the 16 x 16 block at (r0, c0) of a tile: matrix i = L / 8 covers rows
// r0 + 8 (i % 2) and columns c0 + 8 (i / 2).
__device__ inline const __nv_bfloat16 *ldmatrix_row(const __nv_bfloat16 *tile, int S, int r0, int c0, int lane) {
    return tile + (r0 + (lane & 7) + (lane & 8)) * S + c0 + (lane >> 4) * 8;
}

// A = tile[r0 .. r0 + 16][c0 .. c0 + 16]; with ldmatrix (V 4 on) matrix i is register a[i].
template <int V>
__device__ inline void frag_a(uint32_t a[4], const __nv_bfloat16 *tile, int S, int r0, int c0, int lane) {
    if (V >= 4) {
        ldmatrix_x4<false>(a, ldmatrix_row(tile, S, r0, c0, lane));
        return;
    }
    int g = lane / 4, t = lane % 4;
    a[0] = bf16x2_load(tile + (r0 + g) * S + c0 + 2 * t);
    a[1] = bf16x2_load(tile + (r0 + g + 8) * S + c0 + 2 * t);
    a[2] = bf16x2_load(tile + (r0 + g) * S + c0 + 8 + 2 * t);
    a[3] = bf16x2_load(tile + (r0 + g + 8) * S + c0 + 8 + 2 * t);
}

// The B fragments b[0], b[1] of columns n0 and n0 + 8, B[kk][n] = tile[n + ..][k0 + kk]: the tile holds B
// transposed (its rows are the n index), as K in Q K^T. With ldmatrix (V 4 on) matrix i covers rows n0 + 8 (i / 2)
// and columns k0 + 8 (i % 2), so that b[0] = (r[0], r[1]) and b[1] = (r[2], r[3]) sit in the consecutive
// registers mma takes (the other order costs register moves).
template <int V>
__device__ inline void frag_b_pair(uint32_t b[2][2], const __nv_bfloat16 *tile, int S, int n0, int k0, int lane) {
    if (V >= 4) {
        uint32_t r[4];
        ldmatrix_x4<false>(r, tile + (n0 + (lane & 7) + (lane >> 4) * 8) * S + k0 + (lane & 8));
        b[0][0] = r[0], b[0][1] = r[1], b[1][0] = r[2], b[1][1] = r[3];
        return;
    }
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 2; i++) {
        b[i][0] = bf16x2_load(tile + (n0 + 8 * i + g) * S + k0 + 2 * t);
        b[i][1] = bf16x2_load(tile + (n0 + 8 * i + g) * S + k0 + 8 + 2 * t);
    }
}

// The B fragments of columns n0 and n0 + 8, B[kk][n] = tile[k0 + kk][n + ..]: the tile holds B as is (its rows
// are the k index), as V in P V. With ldmatrix.trans (V 3 on) matrix i covers rows k0 + 8 (i % 2) and columns
// n0 + 8 (i / 2), each a B fragment's register ((2t, g), (2t + 1, g)): b[0] = (r[0], r[1]), b[1] = (r[2], r[3]).
template <int V>
__device__ inline void frag_b_rows_pair(uint32_t b[2][2], const __nv_bfloat16 *tile, int S, int k0, int n0, int lane) {
    if (V >= 3) {
        uint32_t r[4];
        ldmatrix_x4<true>(r, ldmatrix_row(tile, S, k0, n0, lane));
        b[0][0] = r[0], b[0][1] = r[1], b[1][0] = r[2], b[1][1] = r[3];
        return;
    }
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 2; i++) {
        const __nv_bfloat16 *p = tile + (k0 + 2 * t) * S + n0 + 8 * i + g;
        b[i][0] = bf16x2_pack(p[0], p[S]);
        b[i][1] = bf16x2_pack(p[8 * S], p[9 * S]);
    }
}

// 2^x for the softmax: one ex2.approx.ftz (MUFU.EX2). exp2f is the same instruction for x >= -126, but wraps it in
// a range test and two multiplies to keep results below 2^-126 subnormal; here they are 0, which a probability
// of 1e-38 makes no difference to. 2^-inf = 0.
__device__ inline float attn_exp2(float x) {
#ifdef CUDA_EMULATION  // dev/emu/cuda_emu.h
    return x < -126.0f ? 0.0f : exp2f(x);
#else
    float r;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x));
    return r;
#endif
}

// The 16 x 16 block made of accumulator tiles c0 (columns 0..7) and c1 (8..15), rounded, as an A fragment.
__device__ inline void frag_a_from_acc(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = bf16x2_from_floats(c0[0], c0[1]);
    a[1] = bf16x2_from_floats(c0[2], c0[3]);
    a[2] = bf16x2_from_floats(c1[0], c1[1]);
    a[3] = bf16x2_from_floats(c1[2], c1[3]);
}

// BYTES (4 or 16) from global src to shared dst, zeros instead when !valid (src is then not read, but must be
// a real, aligned address). ASYNC: by cp.async, landing by the cp_async_wait that covers its commit group;
// otherwise now.
template <int BYTES, bool ASYNC> __device__ inline void copy_to_shared(void *dst, const void *src, bool valid) {
    static_assert(BYTES == 4 || BYTES == 16, "cp.async copies 4, 8 or 16 bytes; 4 and 16 are used");
    if (ASYNC) {
#ifdef CUDA_EMULATION
        emu_cp_async(dst, src, BYTES, valid ? BYTES : 0);
#else
        unsigned addr = (unsigned)__cvta_generic_to_shared(dst);
        if (BYTES == 16)  // .cg: through L2 only, as the tiles are read once per block
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(src), "r"(valid ? 16 : 0));
        else
            asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(addr), "l"(src), "r"(valid ? 4 : 0));
#endif
    } else if (BYTES == 16) {
        *reinterpret_cast<uint4 *>(dst) = valid ? *reinterpret_cast<const uint4 *>(src) : make_uint4(0u, 0u, 0u, 0u);
    } else {
        *reinterpret_cast<uint32_t *>(dst) = valid ? *reinterpret_cast<const uint32_t *>(src) : 0u;
    }
}

// Closes the group of this thread's cp.async copies issued since the last commit (an empty group is legal).
template <bool ASYNC> __device__ inline void cp_async_commit() {
    if (!ASYNC) return;
#ifdef CUDA_EMULATION
    emu_cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N of this thread's newest commit groups are still in flight (then a barrier makes every
// thread's copies visible to the block).
template <bool ASYNC, int N> __device__ inline void cp_async_wait() {
    if (!ASYNC) return;
#ifdef CUDA_EMULATION
    emu_cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// Threads per block of every tensor-core kernel (4 warps).
#define ATTN_THREADS 128

// Rows [0, ROWS) of a tile whose row r is at src + r * stride, into dst [ROWS][HD + ATTN_PAD]; rows from
// `valid` (>= 1) on are zero (past the end of the sequence). Thread i copies the 16-byte chunk i % (HD / 8) of
// rows i / (HD / 8), + ATTN_THREADS / (HD / 8), ...: ROWS / STEP copies, counted by the pass and not by the row
// (whose bound the compiler cannot see, so it would test and branch at every copy), one pointer step per copy.
template <int HD, int ROWS, bool ASYNC>
__device__ inline void tile_load(__nv_bfloat16 *dst, const __nv_bfloat16 *src, size_t stride, int valid) {
    constexpr int CHUNKS = HD / 8, STEP = ATTN_THREADS / CHUNKS;  // 16-byte chunks per row, rows per pass
    static_assert(ROWS % STEP == 0, "a tile is whole passes of the block's threads");
    int r = threadIdx.x / CHUNKS, c = threadIdx.x % CHUNKS * 8;
    const __nv_bfloat16 *from = src + r * stride + c;
    __nv_bfloat16 *to = dst + r * (HD + ATTN_PAD) + c;
    #pragma unroll
    for (int pass = 0; pass < ROWS / STEP; pass++, r += STEP, from += STEP * stride, to += STEP * (HD + ATTN_PAD))
        copy_to_shared<16, ASYNC>(to, r < valid ? from : src, r < valid);
}

// Blocks per SM that ptxas must fit in registers (64K per SM): with V 5 at hd 64 (LLaMA's head dim up to 13b),
// 4 forward and dq blocks (at most 128 registers a thread) and 3 dk/dv blocks (170), which their shared memory
// also allows (228 KiB per SM on sm_90); left to itself ptxas uses more registers and fits fewer blocks. The price
// is a few spilled registers (ptxas -v prints them; dev/bench/RESULTS.md has the counts).
// 0 (no minimum) leaves ptxas its own choice, as for versions 2 to 4.
template <int HD, int V> struct AttnMinBlocks {
    static constexpr int DQ = V >= 5 && HD == 64 ? 4 : 0, DKDV = V >= 5 && HD == 64 ? 3 : 0;
    static constexpr int FORWARD = V >= 6 && HD == 64 ? 2 : DQ;  // version 6's forward: twice the rows per warp
};

// Query rows of a forward block: 4 warps of MT m16 tiles each. With MT 2 (V 6, hd up to 64) a warp's B fragments
// of K and V serve two tiles of rows, half the shared-memory reads per product (the accumulators of hd 128 would
// not fit in registers).
template <int HD, int V> struct AttnForwardTile {
    static constexpr int MT = V >= 6 && HD <= 64 ? 2 : 1, BQ = 64 * MT;
};

// Block (query tile, head, batch); the query tiles run in reverse so the longest (last) ones start first.
// Shared memory: Q, then K and V (two of each from V 4: the tile computed and the next one, in flight). A row
// sees the key tiles that start at or before it, in order, whatever the block size, so every version gives the
// same bits; a warp skips the key tiles that lie wholly after its rows.
template <int HD, int V>
__global__ void __launch_bounds__(ATTN_THREADS, AttnMinBlocks<HD, V>::FORWARD) attention_forward_mma_kernel(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q,
                                                                   const __nv_bfloat16 *k, const __nv_bfloat16 *v, int T,
                                                                   int H, int KV, float scale_log2) {
    constexpr int S = HD + ATTN_PAD, MT = AttnForwardTile<HD, V>::MT, BQ = AttnForwardTile<HD, V>::BQ;
    constexpr bool ASYNC = V >= 4;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)attn_smem, *KVs = Qs + BQ * S;  // KVs: [buffers][K, V][ATTN_BK][S]
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    int q0 = qt * BQ, last_kt = (min(q0 + BQ, T) - 1) / ATTN_BK;  // key tiles 0 .. last_kt
    size_t q_stride = (size_t)H * HD, kv_stride = (size_t)KV * HD;
    const __nv_bfloat16 *qb = q + (size_t)b * T * q_stride + h * HD;
    const __nv_bfloat16 *kb = k + (size_t)b * T * kv_stride + kvh * HD, *vb = v + (size_t)b * T * kv_stride + kvh * HD;
    auto load_kv = [&](int kt) {  // key tile kt into its buffer
        __nv_bfloat16 *Ks = KVs + (ASYNC ? kt & 1 : 0) * 2 * ATTN_BK * S;
        int k0 = kt * ATTN_BK;
        tile_load<HD, ATTN_BK, ASYNC>(Ks, kb + k0 * kv_stride, kv_stride, min(ATTN_BK, T - k0));
        tile_load<HD, ATTN_BK, ASYNC>(Ks + ATTN_BK * S, vb + k0 * kv_stride, kv_stride, min(ATTN_BK, T - k0));
    };

    tile_load<HD, BQ, ASYNC>(Qs, qb + q0 * q_stride, q_stride, min(BQ, T - q0));
    cp_async_commit<ASYNC>();
    if (ASYNC) load_kv(0);
    cp_async_commit<ASYNC>();
    cp_async_wait<ASYNC, 1>();  // Q
    __syncthreads();
    uint32_t qf[MT][HD / 16][4];
    int r0[MT], row[MT][2];  // the first row of each m16 tile of this warp, and this thread's rows in it
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        r0[mt] = q0 + (warp * MT + mt) * 16;
        row[mt][0] = r0[mt] + g, row[mt][1] = r0[mt] + g + 8;
        for (int kk = 0; kk < HD / 16; kk++) frag_a<V>(qf[mt][kk], Qs, S, (warp * MT + mt) * 16, kk * 16, lane);
    }
    float o[MT][HD / 8][4], m[MT][2], l[MT][2];  // m in log2 units; l: this thread's columns
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
        for (int dt = 0; dt < HD / 8; dt++) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
    }
    for (int kt = 0; kt <= last_kt; kt++) {
        int k0 = kt * ATTN_BK;
        __syncthreads();  // everyone is done with the tiles the next load overwrites
        if (!ASYNC) load_kv(kt);
        else if (kt < last_kt) load_kv(kt + 1);
        cp_async_commit<ASYNC>();
        cp_async_wait<ASYNC, 1>();  // tile kt (the group just committed may go on)
        __syncthreads();
        // A warp's 16 MT rows start at a multiple of 16 MT, which divides ATTN_BK: a key tile lies either wholly
        // after them (with MT 2, the last tile of a block for its first two warps: skipped) or starts at or before
        // the first. So every m16 tile computes, with no test around the mma.sync instructions (with MT 1, none
        // at all: BQ = ATTN_BK).
        static_assert(ATTN_BK % (16 * MT) == 0, "a warp's rows must not straddle a key tile's start");
        if (MT > 1 && k0 > r0[MT - 1] + 15) continue;
        const __nv_bfloat16 *Ks = KVs + (ASYNC ? kt & 1 : 0) * 2 * ATTN_BK * S, *Vs = Ks + ATTN_BK * S;
        float s[MT][ATTN_BK / 8][4];  // the scores q.k, unscaled
        #pragma unroll
        for (int mt = 0; mt < MT; mt++)
            for (int nt = 0; nt < ATTN_BK / 8; nt++) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
        for (int kk = 0; kk < HD / 16; kk++)
            for (int nt = 0; nt < ATTN_BK / 8; nt += 2) {
                uint32_t bf[2][2];
                frag_b_pair<V>(bf, Ks, S, nt * 8, kk * 16, lane);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16_16816(s[mt][nt], qf[mt][kk], bf[0]);
                    mma_bf16_16816(s[mt][nt + 1], qf[mt][kk], bf[1]);
                }
            }
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            // masked: tiles that reach past the tile's first row (the diagonal) or past T; before them every key is
            // before every row, and before T. A key col is kept when col <= min(row, T - 1).
            if (k0 + ATTN_BK - 1 > r0[mt] || k0 + ATTN_BK > T) {
                int last[2] = {min(row[mt][0], T - 1) - k0 - 2 * t, min(row[mt][1], T - 1) - k0 - 2 * t};
                for (int nt = 0; nt < ATTN_BK / 8; nt++)
                    for (int e = 0; e < 4; e++)
                        s[mt][nt][e] = nt * 8 + (e & 1) > last[e >> 1] ? -INFINITY : s[mt][nt][e];
            }
            // The running maximum m is of the scaled scores (log2 units); as the scale is positive, the scaled
            // maximum is the maximum of the scaled scores, and each probability takes one fused multiply-add.
            float mx[2] = {-INFINITY, -INFINITY};
            for (int nt = 0; nt < ATTN_BK / 8; nt++)
                for (int e = 0; e < 4; e++) mx[e >> 1] = fmaxf(mx[e >> 1], s[mt][nt][e]);
            float alpha[2], base[2], sum[2] = {0.0f, 0.0f};
            for (int i = 0; i < 2; i++) {  // the 4 threads of a group hold the columns of the same rows
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xFFFFFFFFu, mx[i], 1));
                mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xFFFFFFFFu, mx[i], 2));
                float m_new = fmaxf(m[mt][i], mx[i] * scale_log2);
                base[i] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing unmasked yet stays at zero
                alpha[i] = attn_exp2(m[mt][i] - base[i]);
                m[mt][i] = m_new;
            }
            for (int nt = 0; nt < ATTN_BK / 8; nt++)
                for (int e = 0; e < 4; e++) {
                    s[mt][nt][e] = attn_exp2(fmaf(s[mt][nt][e], scale_log2, -base[e >> 1]));
                    sum[e >> 1] += s[mt][nt][e];
                }
            for (int i = 0; i < 2; i++) l[mt][i] = l[mt][i] * alpha[i] + sum[i];
            for (int dt = 0; dt < HD / 8; dt++) {
                o[mt][dt][0] *= alpha[0], o[mt][dt][1] *= alpha[0];
                o[mt][dt][2] *= alpha[1], o[mt][dt][3] *= alpha[1];
            }
        }
        for (int kk = 0; kk < ATTN_BK / 16; kk++) {
            uint32_t pa[MT][4];
            #pragma unroll
            for (int mt = 0; mt < MT; mt++) frag_a_from_acc(pa[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
            for (int dt = 0; dt < HD / 8; dt += 2) {
                uint32_t bf[2][2];
                frag_b_rows_pair<V>(bf, Vs, S, kk * 16, dt * 8, lane);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma_bf16_16816(o[mt][dt], pa[mt], bf[0]);
                    mma_bf16_16816(o[mt][dt + 1], pa[mt], bf[1]);
                }
            }
        }
    }
    #pragma unroll
    for (int mt = 0; mt < MT; mt++)
        for (int i = 0; i < 2; i++) {
            l[mt][i] += __shfl_xor_sync(0xFFFFFFFFu, l[mt][i], 1);
            l[mt][i] += __shfl_xor_sync(0xFFFFFFFFu, l[mt][i], 2);
            if (row[mt][i] >= T) continue;
            float inv = 1.0f / l[mt][i];
            __nv_bfloat16 *orow = out + ((size_t)b * T + row[mt][i]) * q_stride + h * HD;
            for (int dt = 0; dt < HD / 8; dt++)
                *reinterpret_cast<uint32_t *>(orow + dt * 8 + 2 * t) =
                    bf16x2_from_floats(o[mt][dt][2 * i] * inv, o[mt][dt][2 * i + 1] * inv);
            if (t == 0) lse[((size_t)b * H + h) * T + row[mt][i]] = (m[mt][i] + log2f(l[mt][i])) / ATTN_LOG2E;
        }
}

// The two score products of the backward for one warp's 16 rows (a_row on) of the shared tiles A1, A2
// [.., HD + ATTN_PAD]: acc1 = A1 B1^T and acc2 = A2 B2^T over HD, for the NT x 8 rows of B1, B2. The dq kernel
// takes (Q, dO) against (K, V) for S and dP; the dk/dv kernel (K, V) against (Q, dO) for S^T and dP^T.
template <int HD, int NT, int V>
__device__ __forceinline__ void attention_two_products(float acc1[NT][4], float acc2[NT][4], const __nv_bfloat16 *A1,
                                                       const __nv_bfloat16 *A2, const __nv_bfloat16 *B1,
                                                       const __nv_bfloat16 *B2, int a_row, int lane) {
    constexpr int S = HD + ATTN_PAD;
    for (int nt = 0; nt < NT; nt++)
        for (int e = 0; e < 4; e++) acc1[nt][e] = acc2[nt][e] = 0.0f;
    for (int kk = 0; kk < HD / 16; kk++) {
        uint32_t a1[4], a2[4];
        frag_a<V>(a1, A1, S, a_row, kk * 16, lane);
        frag_a<V>(a2, A2, S, a_row, kk * 16, lane);
        for (int nt = 0; nt < NT; nt += 2) {
            uint32_t bf[2][2];
            frag_b_pair<V>(bf, B1, S, nt * 8, kk * 16, lane);
            mma_bf16_16816(acc1[nt], a1, bf[0]);
            mma_bf16_16816(acc1[nt + 1], a1, bf[1]);
            frag_b_pair<V>(bf, B2, S, nt * 8, kk * 16, lane);
            mma_bf16_16816(acc2[nt], a2, bf[0]);
            mma_bf16_16816(acc2[nt + 1], a2, bf[1]);
        }
    }
}

// dQ += dS K for keys 16 kk .. 16 kk + 15 of the key tile Ks: a, the A fragment of the warp's dS [16 queries][those keys].
template <int HD, int V>
__device__ inline void attention_dq_step(float dqa[HD / 8][4], const uint32_t a[4], const __nv_bfloat16 *Ks, int kk, int lane) {
    for (int dt = 0; dt < HD / 8; dt += 2) {
        uint32_t bf[2][2];
        frag_b_rows_pair<V>(bf, Ks, HD + ATTN_PAD, kk * 16, dt * 8, lane);
        mma_bf16_16816(dqa[dt], a, bf[0]);
        mma_bf16_16816(dqa[dt + 1], a, bf[1]);
    }
}

// The warp's dq rows r0 + g and r0 + g + 8 of head h, those before T, from its accumulators times scale.
template <int HD>
__device__ inline void attention_dq_write(__nv_bfloat16 *dq, const float dqa[HD / 8][4], int b, int h, int r0, int T, int H,
                                          float scale, int lane) {
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 2; i++) {
        int row = r0 + g + 8 * i;
        if (row >= T) continue;
        __nv_bfloat16 *drow = dq + ((size_t)b * T + row) * H * HD + h * HD;
        for (int dt = 0; dt < HD / 8; dt++)
            *reinterpret_cast<uint32_t *>(drow + dt * 8 + 2 * t) = bf16x2_from_floats(dqa[dt][2 * i] * scale, dqa[dt][2 * i + 1] * scale);
    }
}

// Block (query tile, head, batch): dq for 64 query rows, over the key tiles up to the diagonal. Shared memory:
// Q, dO, then K and V (two of each from V 4, as in the forward).
template <int HD, int V>
__global__ void __launch_bounds__(ATTN_THREADS, AttnMinBlocks<HD, V>::DQ) attention_backward_dq_mma_kernel(__nv_bfloat16 *dq, const __nv_bfloat16 *dout,
                                                                       const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                                                       const __nv_bfloat16 *v, const float *lse,
                                                                       const float *D, int T, int H, int KV,
                                                                       float scale_log2, float scale) {
    constexpr int S = HD + ATTN_PAD;
    constexpr bool ASYNC = V >= 4;
    extern __shared__ __align__(16) unsigned char attn_smem[];
    __nv_bfloat16 *Qs = (__nv_bfloat16 *)attn_smem, *dOs = Qs + ATTN_BQ * S, *KVs = dOs + ATTN_BQ * S;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    int q0 = qt * ATTN_BQ;
    size_t q_stride = (size_t)H * HD, kv_stride = (size_t)KV * HD;
    const __nv_bfloat16 *kb = k + (size_t)b * T * kv_stride + kvh * HD, *vb = v + (size_t)b * T * kv_stride + kvh * HD;
    auto load_kv = [&](int kt) {
        __nv_bfloat16 *Ks = KVs + (ASYNC ? kt & 1 : 0) * 2 * ATTN_BK * S;
        int k0 = kt * ATTN_BK;
        tile_load<HD, ATTN_BK, ASYNC>(Ks, kb + k0 * kv_stride, kv_stride, min(ATTN_BK, T - k0));
        tile_load<HD, ATTN_BK, ASYNC>(Ks + ATTN_BK * S, vb + k0 * kv_stride, kv_stride, min(ATTN_BK, T - k0));
    };
    size_t q_at = ((size_t)b * T + q0) * q_stride + h * HD;  // row q0 of head h
    tile_load<HD, ATTN_BQ, ASYNC>(Qs, q + q_at, q_stride, min(ATTN_BQ, T - q0));
    tile_load<HD, ATTN_BQ, ASYNC>(dOs, dout + q_at, q_stride, min(ATTN_BQ, T - q0));
    if (ASYNC) load_kv(0);
    cp_async_commit<ASYNC>();

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
        __syncthreads();  // everyone is done with the tiles the next load overwrites
        if (!ASYNC) load_kv(kt);
        else if (kt < qt) load_kv(kt + 1);
        cp_async_commit<ASYNC>();
        cp_async_wait<ASYNC, 1>();  // tile kt (and Q, dO)
        __syncthreads();
        const __nv_bfloat16 *Ks = KVs + (ASYNC ? kt & 1 : 0) * 2 * ATTN_BK * S, *Vs = Ks + ATTN_BK * S;
        float s[ATTN_BK / 8][4], dp[ATTN_BK / 8][4];
        attention_two_products<HD, ATTN_BK / 8, V>(s, dp, Qs, dOs, Ks, Vs, warp * 16, lane);  // S = Q K^T, dP = dO V^T
        // Below the diagonal every key is before every row and before T; rows past T (zero Q and dO, lse and
        // D 0) get dS 0 there, and are not written. The diagonal tile is masked: key col is kept when col <= row < T.
        for (int nt = 0; nt < ATTN_BK / 8; nt++)
            for (int e = 0; e < 4; e++) s[nt][e] = attn_exp2(fmaf(s[nt][e], scale_log2, -lse2[e >> 1]));  // P
        if (kt == qt) {
            int last[2] = {(row[0] < T ? row[0] : -1) - k0 - 2 * t, (row[1] < T ? row[1] : -1) - k0 - 2 * t};
            for (int nt = 0; nt < ATTN_BK / 8; nt++)
                for (int e = 0; e < 4; e++) s[nt][e] = nt * 8 + (e & 1) > last[e >> 1] ? 0.0f : s[nt][e];
        }
        for (int nt = 0; nt < ATTN_BK / 8; nt++)
            for (int e = 0; e < 4; e++) s[nt][e] = s[nt][e] * (dp[nt][e] - Dr[e >> 1]);  // dS
        for (int kk = 0; kk < ATTN_BK / 16; kk++) {
            uint32_t a[4];
            frag_a_from_acc(a, s[2 * kk], s[2 * kk + 1]);
            attention_dq_step<HD, V>(dqa, a, Ks, kk, lane);  // dQ += dS K
        }
    }
    attention_dq_write<HD>(dq, dqa, b, h, q0 + warp * 16, T, H, scale, lane);
}

// Version 7's dq: block (query tile, head, batch), dq = dS K for 64 query rows over the key tiles up to the
// diagonal, with dS the tiles the dk/dv kernel stored (already masked: zeros past the diagonal and past T) instead
// of recomputed from S and dP. The same products, in the same order, on the same bf16 dS as the dq kernel above:
// the same bits. Shared memory: the dS^T tile [ATTN_BK][ATTN_BQ + pad] and the K tile, two of each (cp.async).
template <int HD, int V>
__global__ void __launch_bounds__(ATTN_THREADS) attention_backward_dq_stored_kernel(__nv_bfloat16 *dq, const __nv_bfloat16 *ds,
                                                                                   const __nv_bfloat16 *k, int T, int H,
                                                                                   int KV, float scale) {
    constexpr int S = HD + ATTN_PAD, SD = ATTN_BQ + ATTN_PAD, BUF = ATTN_BK * (SD + S);  // BUF: a buffer's elements
    extern __shared__ __align__(16) unsigned char attn_smem[];
    __nv_bfloat16 *bufs = (__nv_bfloat16 *)attn_smem;
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int nt = gridDim.x, qt = nt - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    size_t kv_stride = (size_t)KV * HD;
    const __nv_bfloat16 *kb = k + (size_t)b * T * kv_stride + kvh * HD;
    const __nv_bfloat16 *ds_q = ds + attention_ds_offset(b, h, qt, 0, H, nt);  // tiles (qt, 0), (qt, 1), ... in a row
    auto load = [&](int kt) {
        __nv_bfloat16 *dSs = bufs + (kt & 1) * BUF, *Ks = dSs + ATTN_BK * SD;
        int k0 = kt * ATTN_BK;
        tile_load<ATTN_BQ, ATTN_BK, true>(dSs, ds_q + (size_t)kt * ATTN_BQ * ATTN_BK, ATTN_BQ, ATTN_BK);
        tile_load<HD, ATTN_BK, true>(Ks, kb + k0 * kv_stride, kv_stride, min(ATTN_BK, T - k0));
    };
    load(0);
    cp_async_commit<true>();
    float dqa[HD / 8][4];
    for (int dt = 0; dt < HD / 8; dt++) dqa[dt][0] = dqa[dt][1] = dqa[dt][2] = dqa[dt][3] = 0.0f;
    for (int kt = 0; kt <= qt; kt++) {
        __syncthreads();  // everyone is done with the buffer the next load overwrites
        if (kt < qt) load(kt + 1);
        cp_async_commit<true>();
        cp_async_wait<true, 1>();  // tile kt
        __syncthreads();
        const __nv_bfloat16 *dSs = bufs + (kt & 1) * BUF, *Ks = dSs + ATTN_BK * SD;
        for (int kk = 0; kk < ATTN_BK / 16; kk++) {
            // A = dS [this warp's 16 queries][keys 16 kk ..] from the transposed tile: matrix i of ldmatrix.trans is
            // keys 16 kk + 8 (i / 2), queries 16 warp + 8 (i % 2), which is register a[i] of the A fragment
            uint32_t a[4];
            ldmatrix_x4<true>(a, dSs + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * SD + warp * 16 + (lane & 8));
            attention_dq_step<HD, V>(dqa, a, Ks, kk, lane);  // dQ += dS K
        }
    }
    attention_dq_write<HD>(dq, dqa, b, h, qt * ATTN_BQ + warp * 16, T, H, scale, lane);
}

// Query rows per inner tile of the dk/dv kernel: smaller for hd 128 to keep the accumulators in registers.
template <int HD> struct AttnDkdvTile { static constexpr int BQ = HD <= 64 ? 64 : 32; };

// Block (key tile, kv head, batch): dk, dv for 64 key rows, over the query heads of the group and the query
// tiles from the diagonal on. The first key tiles have the most work and come first. Shared memory: K, V, then
// Q, dO, lse, D (two of each from V 4: the tile computed and the next one, in flight). From V 7 on it also
// stores its bf16 dS^T, the A operand of its dK product, into ds (attention_ds_offset) for the dq kernel.
template <int HD, int V>
__global__ void __launch_bounds__(ATTN_THREADS, AttnMinBlocks<HD, V>::DKDV) attention_backward_dkdv_mma_kernel(__nv_bfloat16 *dk, __nv_bfloat16 *dv,
                                                                         __nv_bfloat16 *ds, const __nv_bfloat16 *dout, const __nv_bfloat16 *q,
                                                                         const __nv_bfloat16 *k, const __nv_bfloat16 *v,
                                                                         const float *lse, const float *D, int T, int H,
                                                                         int KV, float scale_log2, float scale) {
    constexpr int S = HD + ATTN_PAD, BQ = AttnDkdvTile<HD>::BQ;
    constexpr bool ASYNC = V >= 4;
    // one buffer: Q, dO [BQ][S] bf16, then lse, D [BQ] fp32 (lse as stored, in natural-log units: __fmul_rn
    // below rounds its log2 form once, as the dq kernel's lse2 is, never fused into the FMA: both kernels compute
    // the same P)
    constexpr int BUF_BYTES = 2 * BQ * S * (int)sizeof(__nv_bfloat16) + 2 * BQ * (int)sizeof(float);
    extern __shared__ __align__(16) unsigned char attn_smem[];
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)attn_smem, *Vs = Ks + ATTN_BK * S;
    unsigned char *bufs = (unsigned char *)(Vs + ATTN_BK * S);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    int kt = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, group = H / KV;
    int k0 = kt * ATTN_BK;
    size_t q_stride = (size_t)H * HD, kv_stride = (size_t)KV * HD;
    size_t kv_at = ((size_t)b * T + k0) * kv_stride + kvh * HD;  // row k0 of kv head kvh
    // the (head, query tile) pairs in order: for each head of the group, the tiles q0 = k0, k0 + BQ, ... < T
    // (k0 is a multiple of BQ: the first tile of each head holds the diagonal)
    int steps = group * ceil_div(T - k0, BQ);
    int load_h = kvh * group, load_q0 = k0;  // the head and first query of the next step to load
    auto load_q = [&](int i) {  // step i's tiles into its buffer; called for i = 0, 1, ... in order
        unsigned char *buf = bufs + (ASYNC ? i & 1 : 0) * BUF_BYTES;
        __nv_bfloat16 *Qs = (__nv_bfloat16 *)buf, *dOs = Qs + BQ * S;
        float *lse_s = (float *)(dOs + BQ * S), *D_s = lse_s + BQ;
        int h = load_h, q0 = load_q0;
        size_t q_at = ((size_t)b * T + q0) * q_stride + h * HD, at = ((size_t)b * H + h) * T;
        tile_load<HD, BQ, ASYNC>(Qs, q + q_at, q_stride, min(BQ, T - q0));
        tile_load<HD, BQ, ASYNC>(dOs, dout + q_at, q_stride, min(BQ, T - q0));
        for (int r = threadIdx.x; r < BQ; r += ATTN_THREADS) {
            bool ok = q0 + r < T;
            copy_to_shared<4, ASYNC>(lse_s + r, lse + at + (ok ? q0 + r : q0), ok);
            copy_to_shared<4, ASYNC>(D_s + r, D + at + (ok ? q0 + r : q0), ok);
        }
        load_q0 += BQ;
        if (load_q0 >= T) load_q0 = k0, load_h++;
    };
    tile_load<HD, ATTN_BK, ASYNC>(Ks, k + kv_at, kv_stride, min(ATTN_BK, T - k0));
    tile_load<HD, ATTN_BK, ASYNC>(Vs, v + kv_at, kv_stride, min(ATTN_BK, T - k0));
    if (ASYNC) load_q(0);
    cp_async_commit<ASYNC>();

    int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};  // this thread's key rows
    float dka[HD / 8][4], dva[HD / 8][4];
    for (int dt = 0; dt < HD / 8; dt++)
        for (int e = 0; e < 4; e++) dka[dt][e] = dva[dt][e] = 0.0f;
    static_assert(V < 7 || (ATTN_BQ == ATTN_BK && ATTN_BQ % BQ == 0), "version 7's dS tiles: square, whole steps");
    int tiles = (T + ATTN_BQ - 1) / ATTN_BQ;  // query (and key) tiles of a sequence
    for (int i = 0, q0 = k0, h = kvh * group; i < steps; i++) {  // q0, h: step i's first query and its head
        __syncthreads();  // everyone is done with the tiles the next load overwrites
        if (!ASYNC) load_q(i);
        else if (i + 1 < steps) load_q(i + 1);
        cp_async_commit<ASYNC>();
        cp_async_wait<ASYNC, 1>();  // step i's tiles (and K, V)
        __syncthreads();
        const unsigned char *buf = bufs + (ASYNC ? i & 1 : 0) * BUF_BYTES;
        const __nv_bfloat16 *Qs = (const __nv_bfloat16 *)buf, *dOs = Qs + BQ * S;
        const float *lse_s = (const float *)(dOs + BQ * S), *D_s = lse_s + BQ;
        float st[BQ / 8][4], dpt[BQ / 8][4];  // S^T = K Q^T and dP^T = V dO^T: rows keys, columns queries
        attention_two_products<HD, BQ / 8, V>(st, dpt, Ks, Vs, Qs, dOs, warp * 16, lane);
        // tiles that reach the diagonal, or queries past T, are masked (those queries would add exact zeros, but
        // the sign of a zero sum could differ); keys past T are not written. P is computed for every element first
        // (a masked one may be inf or garbage) and the mask then selects 0.
        for (int nt = 0; nt < BQ / 8; nt++)
            for (int e = 0; e < 4; e++) {
                int qc = nt * 8 + 2 * t + (e & 1);
                st[nt][e] = attn_exp2(fmaf(st[nt][e], scale_log2, -__fmul_rn(lse_s[qc], ATTN_LOG2E)));  // P^T
            }
        if (q0 < k0 + ATTN_BK || q0 + BQ > T) {  // query qi is kept when key <= qi < T
            int first[2] = {key[0] - q0 - 2 * t, key[1] - q0 - 2 * t}, end = T - q0 - 2 * t;
            for (int nt = 0; nt < BQ / 8; nt++)
                for (int e = 0; e < 4; e++) {
                    int c = nt * 8 + (e & 1);
                    st[nt][e] = c < first[e >> 1] || c >= end ? 0.0f : st[nt][e];
                }
        }
        for (int nt = 0; nt < BQ / 8; nt++)
            for (int e = 0; e < 4; e++) dpt[nt][e] = st[nt][e] * (dpt[nt][e] - D_s[nt * 8 + 2 * t + (e & 1)]);  // dS^T
        // V 7: this thread's words of dS^T in its tile: key row warp * 16 + g (and + 8), query columns 2t, 2t + 1 of
        // each 8 (the step's BQ queries are columns q0 % ATTN_BQ on of tile q0 / ATTN_BQ)
        uint32_t *ds_at = V >= 7 ? reinterpret_cast<uint32_t *>(ds + attention_ds_offset(b, h, q0 / ATTN_BQ, kt, H, tiles) +
                                                                (warp * 16 + g) * ATTN_BQ + q0 % ATTN_BQ + 2 * t)
                                 : nullptr;
        for (int kq = 0; kq < BQ / 16; kq++) {
            uint32_t pa[4], sa[4];
            frag_a_from_acc(pa, st[2 * kq], st[2 * kq + 1]);
            frag_a_from_acc(sa, dpt[2 * kq], dpt[2 * kq + 1]);
            if (V >= 7)  // sa's registers are (row g, cols 16 kq + 2t), (g + 8, ..), (g, .. + 8), (g + 8, .. + 8)
                for (int r = 0; r < 4; r++) ds_at[((r & 1) * 8 * ATTN_BQ + 16 * kq + (r >> 1) * 8) / 2] = sa[r];
            for (int dt = 0; dt < HD / 8; dt += 2) {
                uint32_t bf[2][2];
                frag_b_rows_pair<V>(bf, dOs, S, kq * 16, dt * 8, lane);
                mma_bf16_16816(dva[dt], pa, bf[0]);  // dV += P^T dO
                mma_bf16_16816(dva[dt + 1], pa, bf[1]);
                frag_b_rows_pair<V>(bf, Qs, S, kq * 16, dt * 8, lane);
                mma_bf16_16816(dka[dt], sa, bf[0]);  // dK += dS^T Q
                mma_bf16_16816(dka[dt + 1], sa, bf[1]);
            }
        }
        // V 7 with half-tile steps (hd 128): the last step of a head that fills only the first half of its tile
        // writes zeros to the second (queries past T), so the dq kernel reads no unwritten memory
        if (V >= 7 && BQ < ATTN_BQ && q0 % ATTN_BQ == 0 && q0 + BQ >= T)
            for (int c = BQ; c < ATTN_BQ; c += 8) ds_at[c / 2] = ds_at[(8 * ATTN_BQ + c) / 2] = 0u;
        q0 += BQ;
        if (q0 >= T) q0 = k0, h++;
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
    kernelRequire(((uintptr_t)dout | (uintptr_t)out) % 16 == 0, "attention: dout and out must be 16-byte aligned");
    long long threads = (long long)B * T * H * hd / (16 / sizeof(floatX));  // G per row
    attention_dispatch_hd(hd, [&](auto HDc) {
        attention_backward_prep_kernel<decltype(HDc)::value><<<(unsigned)ceil_div(threads, 256LL), 256, 0, stream>>>(D, dout, out, B, T, H);
    });
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

template <int V>
static void attention_forward_mma(__nv_bfloat16 *out, float *lse, const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                                  const __nv_bfloat16 *v, int B, int T, int H, int KV, int hd, cudaStream_t stream) {
    attention_check_shape(H, KV);
    attention_check_aligned(out, "out"), attention_check_aligned(q, "q");
    attention_check_aligned(k, "k"), attention_check_aligned(v, "v");
    if (B == 0 || T == 0) return;
    float scale_log2 = ATTN_LOG2E * (1.0f / sqrtf((float)hd));  // as the backward computes it
    constexpr int NBUF = V >= 4 ? 2 : 1;  // K, V tiles in shared memory
    attention_dispatch_hd(hd, [&](auto HDc) {
        constexpr int HD = decltype(HDc)::value, BQ = AttnForwardTile<HD, V>::BQ;
        dim3 grid(ceil_div(T, BQ), H, B);
        size_t smem = sizeof(__nv_bfloat16) * (BQ + NBUF * 2 * ATTN_BK) * (HD + ATTN_PAD);
        attention_smem_attribute(attention_forward_mma_kernel<HD, V>, smem);
        attention_forward_mma_kernel<HD, V><<<grid, ATTN_THREADS, smem, stream>>>(out, lse, q, k, v, T, H, KV, scale_log2);
    });
    cudaCheckLaunch();
}

// scratch: attention_scratch_floats(V, B, T, H) floats (D, then version 7's dS tiles).
template <int V>
static void attention_backward_mma(__nv_bfloat16 *dq, __nv_bfloat16 *dk, __nv_bfloat16 *dv, float *scratch,
                                   const __nv_bfloat16 *dout, const __nv_bfloat16 *out, const __nv_bfloat16 *q,
                                   const __nv_bfloat16 *k, const __nv_bfloat16 *v, const float *lse, int B, int T, int H,
                                   int KV, int hd, cudaStream_t stream) {
    attention_check_shape(H, KV);
    attention_check_aligned(dq, "dq"), attention_check_aligned(dk, "dk"), attention_check_aligned(dv, "dv");
    attention_check_aligned(dout, "dout"), attention_check_aligned(q, "q");
    attention_check_aligned(k, "k"), attention_check_aligned(v, "v");
    if (B == 0 || T == 0) return;
    float *D = scratch;
    __nv_bfloat16 *ds = V >= 7 ? (__nv_bfloat16 *)(scratch + attention_d_floats(B, T, H)) : nullptr;
    attention_backward_prep(D, dout, out, B, T, H, hd, stream);
    float scale = 1.0f / sqrtf((float)hd), scale_log2 = ATTN_LOG2E * scale;
    constexpr int NBUF = V >= 4 ? 2 : 1;  // streamed tiles in shared memory
    attention_dispatch_hd(hd, [&](auto HDc) {
        constexpr int HD = decltype(HDc)::value, BQ = AttnDkdvTile<HD>::BQ;
        size_t smem_kv = sizeof(__nv_bfloat16) * 2 * ATTN_BK * (HD + ATTN_PAD) +
                         NBUF * (sizeof(__nv_bfloat16) * 2 * BQ * (HD + ATTN_PAD) + sizeof(float) * 2 * BQ);
        attention_smem_attribute(attention_backward_dkdv_mma_kernel<HD, V>, smem_kv);
        attention_backward_dkdv_mma_kernel<HD, V><<<dim3(ceil_div(T, ATTN_BK), KV, B), ATTN_THREADS, smem_kv, stream>>>(
            dk, dv, ds, dout, q, k, v, lse, D, T, H, KV, scale_log2, scale);
        cudaCheckLaunch();
        dim3 grid_q(ceil_div(T, ATTN_BQ), H, B);
        if constexpr (V >= 7) {
            size_t smem_q = sizeof(__nv_bfloat16) * 2 * ATTN_BK * (ATTN_BQ + ATTN_PAD + HD + ATTN_PAD);
            attention_smem_attribute(attention_backward_dq_stored_kernel<HD, V>, smem_q);
            attention_backward_dq_stored_kernel<HD, V><<<grid_q, ATTN_THREADS, smem_q, stream>>>(dq, ds, k, T, H, KV, scale);
        } else {
            size_t smem_q = sizeof(__nv_bfloat16) * (2 * ATTN_BQ + NBUF * 2 * ATTN_BK) * (HD + ATTN_PAD);
            attention_smem_attribute(attention_backward_dq_mma_kernel<HD, V>, smem_q);
            attention_backward_dq_mma_kernel<HD, V><<<grid_q, ATTN_THREADS, smem_q, stream>>>(dq, dout, q, k, v, lse, D, T, H,
                                                                                          KV, scale_log2, scale);
        }
    });
    cudaCheckLaunch();
}

#endif  // !ENABLE_FP32

// ----------------------------------------------------------------------------------------------------
// The trainer's entry points: tensor cores in bf16 builds (version ATTENTION_VERSION, see the top of the
// tensor-core path; dev/gpu/attention.mk builds the trainer with another version, to measure it there), the
// scalar path in the fp32 build.

#ifndef ATTENTION_VERSION
#define ATTENTION_VERSION 3
#endif
static_assert(ATTENTION_VERSION >= 2 && ATTENTION_VERSION <= 7, "ATTENTION_VERSION: the tensor-core versions are 2 to 7");

// The scratch attention_backward needs, in floats (the memory plan's).
static size_t attention_backward_scratch_floats(int B, int T, int H) {
#ifdef ENABLE_FP32
    return attention_scratch_floats(1, B, T, H);
#else
    return attention_scratch_floats(ATTENTION_VERSION, B, T, H);
#endif
}

static void attention_forward(floatX *out, float *lse, const floatX *q, const floatX *k, const floatX *v, int B, int T,
                              int H, int KV, int hd, cudaStream_t stream) {
    // out [B, T, H, hd], lse [B, H, T] fp32; q [B, T, H, hd]; k, v [B, T, KV, hd]
#ifdef ENABLE_FP32
    attention_forward_scalar(out, lse, q, k, v, B, T, H, KV, hd, stream);
#else
    attention_forward_mma<ATTENTION_VERSION>(out, lse, q, k, v, B, T, H, KV, hd, stream);
#endif
}

static void attention_backward(floatX *dq, floatX *dk, floatX *dv, float *scratch, const floatX *dout, const floatX *out,
                               const floatX *q, const floatX *k, const floatX *v, const float *lse, int B, int T, int H,
                               int KV, int hd, cudaStream_t stream) {
    // dq [B, T, H, hd], dk, dv [B, T, KV, hd]: written (=), not accumulated; scratch
    // [attention_backward_scratch_floats(B, T, H)] fp32;
    // dout, out, q [B, T, H, hd]; k, v [B, T, KV, hd]; lse [B, H, T] from attention_forward
#ifdef ENABLE_FP32
    attention_backward_scalar(dq, dk, dv, scratch, dout, out, q, k, v, lse, B, T, H, KV, hd, stream);
#else
    attention_backward_mma<ATTENTION_VERSION>(dq, dk, dv, scratch, dout, out, q, k, v, lse, B, T, H, KV, hd, stream);
#endif
}
