/*
 * grass.cuh: Grass (docs/design.md §3) on the GPU, for llama_model.cuh. Selection is grass.h's host code (the same
 * indices as the CPU trainer, every rank and the PyTorch reference); this file holds the device side:
 *  - the compressed gradient g [r, E] += diag(rho) B G without forming G: the r selected, scaled columns of dY
 *    (rows side) or X (columns side) are gathered into a small contiguous [N, r] buffer, then one cuBLASLt
 *    product accumulates sel^T @ other into g in fp32 (q, k and v, or gate and up, in one batch);
 *  - the refresh: the full gradient of one matrix at a time into one fp32 scratch sized for the largest
 *    matrix, its row (or column) norms, the selection on the host, g from the selected rows, moments reset;
 *  - subspace Adam and the scatter update W -= lr alpha P U in fused kernels (duplicate indices accumulate;
 *    fp32 master weights, or bf16 weights with stochastic rounding).
 */
#pragma once

#include "grass.h"
#include "kernels/adamw.cuh"
#include "kernels/common.cuh"
#include "kernels/matmul.cuh"
#include "train_config.h"

// The compressed gradients of up to GRASS_GROUP_MAX projections computed together: q, k and v (or gate and up) read
// the same input X, so on the rows side their products sel_i^T X are one strided batch (kernels/matmul.cuh) with
// X shared, three times the output tiles of one product (a 1b projection's [512, 2048] alone is 64 tiles of
// 128 x 128, half of an H100's SMs for a sum over all the tokens). Member i is the consecutive kind kind0 + i of
// one shape: its g, sigma and rho lie i times g_stride, sel_stride after the first's (grass_group_size).
#define GRASS_GROUP_MAX 3
typedef struct {
    int count;
    float *g;                             // [r, E] of the first; member i's at g + i g_stride
    const int *sigma;                     // [r] of the first; member i's at + i sel_stride
    const float *rho;                     // [r] likewise
    size_t g_stride, sel_stride;
    const floatX *dout[GRASS_GROUP_MAX];  // dY [N, m] of each
} GrassGroup;

// How many of the projections kind, kind + 1, ..., kind + max - 1 (which read the same input) one batched
// product serves, from kind on: those of kind's shape, on the rows side (the columns side selects columns of the
// shared X, and its other operands, the dY, differ).
static int grass_group_size(const GrassPlan *p, int kind, int max) {
    GrassShape a = p->shape[kind];
    int n = 1;
    while (a.rows && n < max && n < GRASS_GROUP_MAX) {
        GrassShape b = p->shape[kind + n];
        if (!b.rows || b.r != a.r || b.E != a.E || b.D != a.D) break;
        n++;
    }
    return n;
}

// The group of `count` projections from kind in layer (grass_group_size), with output gradients dout[0..count): the
// first's g at g, member i's at g + i g_stride.
static GrassGroup grass_group(const GrassPlan *p, float *g, size_t g_stride, const int *sigma, const float *rho, int kind, int layer,
                              int count, const floatX *const *dout) {
    GrassGroup gr;
    memset(&gr, 0, sizeof(gr));
    gr.count = count;
    gr.g = g;
    gr.g_stride = g_stride;
    gr.sigma = sigma + grass_sel_offset(p, kind, layer);
    gr.rho = rho + grass_sel_offset(p, kind, layer);
    if (count > 1) gr.sel_stride = grass_sel_offset(p, kind + 1, layer) - grass_sel_offset(p, kind, layer);
    for (int i = 0; i < count; i++) gr.dout[i] = dout[i];
    return gr;
}

// One projection as a group of one.
static GrassGroup grass_single(float *g, const int *sigma, const float *rho, const floatX *dout) {
    GrassGroup gr;
    memset(&gr, 0, sizeof(gr));
    gr.count = 1, gr.g = g, gr.sigma = sigma, gr.rho = rho, gr.dout[0] = dout;
    return gr;
}

// sel [N, r] (rows of ldsel) = rho_j * src[t, sigma_j], the selected columns of src [N, ld] scaled, for member
// blockIdx.y of the group into sel + blockIdx.y sel_batch; src is that member's dY, or x when given (the columns
// side). Thread x of a block keeps the columns j = x, x + blockDim.x, ... (with their sigma and rho) and walks the
// rows t = blockIdx.x, blockIdx.x + gridDim.x, ...: a warp writes consecutive elements of a row of sel and reads
// nearby columns (sigma is sorted) of one row of src. The member's dY is picked by a select, not by indexing the
// parameter array (which makes the compiler read src through generic loads), and the rows go GRASS_GATHER_ROWS at a
// time, all their loads issued before their stores: that many loads in flight per thread, not 1 (row by row, a
// thread's next load would wait for its store, which waits for its load).
#define GRASS_GATHER_ROWS 4
__global__ void grass_gather_kernel(floatX *sel, GrassGroup gr, const floatX *x, int N, int r, int ld, int ldsel,
                                    size_t sel_batch) {
    static_assert(GRASS_GROUP_MAX == 3, "the select below names every member");
    const floatX *src = x ? x : blockIdx.y == 0 ? gr.dout[0] : blockIdx.y == 1 ? gr.dout[1] : gr.dout[2];
    const int *sigma = gr.sigma + blockIdx.y * gr.sel_stride;
    const float *rho = gr.rho + blockIdx.y * gr.sel_stride;
    sel += blockIdx.y * sel_batch;
    for (int j = threadIdx.x; j < r; j += blockDim.x) {
        int s = sigma[j];
        float scale = rho[j];
        int t = blockIdx.x, step = gridDim.x;
        for (; t + (GRASS_GATHER_ROWS - 1) * step < N; t += GRASS_GATHER_ROWS * step) {  // every load before the stores
            floatX v[GRASS_GATHER_ROWS];
#pragma unroll
            for (int u = 0; u < GRASS_GATHER_ROWS; u++) v[u] = src[(size_t)(t + u * step) * ld + s];
#pragma unroll
            for (int u = 0; u < GRASS_GATHER_ROWS; u++) sel[(size_t)(t + u * step) * ldsel + j] = from_float<floatX>(scale * to_float(v[u]));
        }
        for (; t < N; t += step) sel[(size_t)t * ldsel + j] = from_float<floatX>(scale * to_float(src[(size_t)t * ld + s]));
    }
}

static void grass_gather(floatX *sel, const GrassGroup *gr, const floatX *x, int N, int r, int ld, int ldsel, cudaStream_t stream) {
    if (N == 0 || r == 0) return;
    int threads = r < 256 ? ceil_div(r, 32) * 32 : 256;
    grass_gather_kernel<<<dim3(N < 2048 ? N : 2048, gr->count), threads, 0, stream>>>(sel, *gr, x, N, r, ld, ldsel,
                                                                                      (size_t)N * ldsel);
    cudaCheckLaunch();
}

// For each member of the group: g [r, E] (fp32) += diag(rho) B dY^T X, with X = inp [N, n] and dY = dout [N, m]:
// rows side, the columns sigma of dY against X, all members in one batched product sharing X; columns side (a
// group of one), the columns sigma of X against dY. sel [count, N, matmul_padded(r)] is scratch (aligned rows).
// m and n are the stored row lengths of dY and X, which may exceed the model's (zero padding, never selected):
// only the first E columns of the other operand enter g.
static void grass_compressed_grad(Matmul *mm, const GrassGroup *gr, floatX *sel, GrassShape sh, const floatX *inp, int N, int n,
                                  int m, cudaStream_t stream) {
    kernelRequire(gr->count >= 1 && gr->count <= GRASS_GROUP_MAX && (gr->count == 1 || sh.rows),
                  "grass: a batch of compressed gradients on the columns side");
    int ldsel = matmul_padded(sh.r);
    grass_gather(sel, gr, sh.rows ? NULL : inp, N, sh.r, sh.rows ? m : n, ldsel, stream);
    const floatX *other = sh.rows ? inp : gr->dout[0];
    Gemm gm = matmul_dweight_gemm((floatX *)gr->g, sel, other, N, sh.E, sh.r);  // [r, E] += sel^T [r, N] @ other [N, E]
    gm.lda = sh.rows ? n : m;
    gm.ldb = ldsel;
    gm.c_fp32 = 1;
    gm.batch = gr->count;  // other (X) shared: stride 0
    gm.stride_b = (long long)N * ldsel;
    gm.stride_c = (long long)gr->g_stride;
    matmul_gemm(mm, &gm, stream);
}

// The full gradient G [m, n] (fp32) = dY^T X, overwritten.
static void grass_full_grad(Matmul *mm, float *G, const floatX *dout, const floatX *inp, int N, int n, int m, cudaStream_t stream) {
    Gemm gm = matmul_dweight_gemm((floatX *)G, dout, inp, N, n, m);
    gm.c_fp32 = 1;
    gm.beta = 0.0f;
    matmul_gemm(mm, &gm, stream);
}

// norms [D] (double) = squared norms of the rows (rows = 1) or columns of G [m, n], in a fixed order
// (deterministic), every read coalesced: a column is a thread's, summing down it in index order while its warp
// reads 32 consecutive columns of each row; a row is a warp's, lane l summing elements l, l + 32, ... in order, then
// a fixed butterfly of shuffles. (A thread per row would make each warp load touch 32 rows, and leave a 1b
// refresh a few warps per SM.) Blocks of whole warps.
__global__ void grass_norms_kernel(double *norms, const float *G, int m, int n, int rows) {
    if (!rows) {
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
            double s = 0.0;
            for (int e = 0; e < m; e++) {
                double x = G[(size_t)e * n + i];
                s += x * x;
            }
            norms[i] = s;
        }
        return;
    }
    int lane = threadIdx.x % 32, warps = gridDim.x * blockDim.x / 32;
    for (int i = (blockIdx.x * blockDim.x + threadIdx.x) / 32; i < m; i += warps) {  // warp-uniform: no divergence
        double s = 0.0;
        for (int e = lane; e < n; e += 32) {
            double x = G[(size_t)i * n + e];
            s += x * x;
        }
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) norms[i] = s;
    }
}

// The launch of grass_norms_kernel over every row or column of G [m, n]: a thread per column, a warp per row.
static void grass_norms_compute(double *norms, const float *G, int m, int n, int rows, cudaStream_t stream) {
    size_t threads = rows ? (size_t)m * 32 : (size_t)n;
    grass_norms_kernel<<<grid_stride_blocks(threads, 256), 256, 0, stream>>>(norms, G, m, n, rows);
    cudaCheckLaunch();
}

// g [r, E] += rho_j * (row or column sigma_j of G [m, n]).
__global__ void grass_take_kernel(float *g, const float *G, const int *sigma, const float *rho, int r, int E, int n, int rows) {
    size_t total = (size_t)r * E;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i / E), e = (int)(i % E);
        g[i] += rho[j] * (rows ? G[(size_t)sigma[j] * n + e] : G[(size_t)e * n + sigma[j]]);
    }
}

// The seeds of a batch of layers' updates (one kind of matrix), passed by value in a kernel's parameters: the
// update kernels take the layer from the grid (every layer of a kind has the same shape and strides), so one
// launch of each serves up to GRASS_BATCH_LAYERS matrices instead of one.
#define GRASS_BATCH_LAYERS 64
typedef struct {
    uint64_t s[GRASS_BATCH_LAYERS];
} GrassSeeds;

// Subspace Adam on elements [lo, lo + count) of each layer's g [r x E]: M, V (the owned part's, mpitch apart a layer)
// updated from g * grad_scale, and g there overwritten with U = (M / bc1) / (sqrt(V / bc2) + eps). Layer blockIdx.y: g
// holds element e of a layer at l gpitch + e - gbase (whole: r x E, 0; the parts alone, --shard-weights: mpitch, lo).
// Element i of a layer draws random_u32(seed, 2 i ...) whatever the part. K consecutive elements per thread
// (kernels/common.cuh: vector access).
template <int K, typename MomT>
__global__ void grass_adam_kernel(float *g, MomT *mom, MomT *var, size_t lo, size_t count, size_t gpitch, size_t gbase, size_t mpitch,
                                  float beta1, float beta2, float bc1, float bc2, float eps, float grad_scale, GrassSeeds seeds) {
    g += blockIdx.y * gpitch + lo - gbase, mom += blockIdx.y * mpitch, var += blockIdx.y * mpitch;
    uint64_t seed = seeds.s[blockIdx.y];
    for (size_t i0 = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i0 < count; i0 += K * (size_t)gridDim.x * blockDim.x) {
        Vec<float, K> gv = vec_load<K>(g + i0);
        Vec<MomT, K> mv = vec_load<K>(mom + i0), vv = vec_load<K>(var + i0);
        for (int k = 0; k < K; k++) {
            size_t i = lo + i0 + k;
            float x = gv.x[k] * grad_scale;
            float m = beta1 * to_float(mv.x[k]) + (1.0f - beta1) * x;
            float v = beta2 * to_float(vv.x[k]) + (1.0f - beta2) * x * x;
            mv.x[k] = round_stochastic<MomT>(m, random_u32(seed, 2 * i));
            vv.x[k] = round_stochastic<MomT>(v, random_u32(seed, 2 * i + 1));
            gv.x[k] = (m / bc1) / (sqrtf(v / bc2) + eps);
        }
        vec_store<K>(mom + i0, mv);
        vec_store<K>(var + i0, vv);
        vec_store<K>(g + i0, gv);
    }
}

// W *= decay over elements [lo, lo + count) of each layer's W (decoupled weight decay applies to all of W): the
// master copy (the owned part's, mpitch apart a layer) and its rounding, or the floatX weights with stochastic
// rounding. Layer blockIdx.y: W holds element e of a layer at l wpitch + e - wbase (whole matrices: n, 0; the parts
// alone, --shard-weights: mpitch, lo). K consecutive elements per thread.
template <int K>
__global__ void grass_decay_kernel(floatX *W, float *master, size_t lo, size_t count, size_t wpitch, size_t wbase, size_t mpitch,
                                   float decay, GrassSeeds seeds) {
    W += blockIdx.y * wpitch + lo - wbase;
    if (master) master += blockIdx.y * mpitch;
    uint64_t seed = seeds.s[blockIdx.y] ^ 0xDECA7ULL;
    for (size_t i0 = K * ((size_t)blockIdx.x * blockDim.x + threadIdx.x); i0 < count; i0 += K * (size_t)gridDim.x * blockDim.x) {
        Vec<floatX, K> w = vec_load<K>(W + i0);
        if (master) {
            Vec<float, K> mw = vec_load<K>(master + i0);
            for (int k = 0; k < K; k++) {
                mw.x[k] *= decay;
                w.x[k] = from_float<floatX>(mw.x[k]);
            }
            vec_store<K>(master + i0, mw);
        } else {
            for (int k = 0; k < K; k++) w.x[k] = round_stochastic<floatX>(to_float(w.x[k]) * decay, random_u32(seed, lo + i0 + k));
        }
        vec_store<K>(W + i0, w);
    }
}

// W -= step * rho_j * U[j] along row (rows side) or column sigma_j of W [m, n], for the elements in [lo, hi) of each
// layer's W (the owned part; master holds it, mpitch apart a layer). Thread (e, j) updates position e of the row (or
// column) sigma_j, if j starts a run of equal indices (sigma is sorted, so duplicates are adjacent): it sums the run's
// updates and writes once (deterministic, one rounding); the others do nothing. Each row or column is written by one
// run only, so the r x E threads never touch the same element. Layer blockIdx.z: W holds element w of a layer at
// l wpitch + w - wbase (as grass_decay_kernel), U advances by r x E, sigma and rho by r.
__global__ void grass_scatter_kernel(floatX *W, float *master, const float *U, const int *sigma, const float *rho, int r,
                                     int E, int n, size_t wpitch, size_t wbase, size_t lo, size_t hi, size_t mpitch, int rows,
                                     float step, GrassSeeds seeds) {
    int e = blockIdx.x * blockDim.x + threadIdx.x, j = blockIdx.y, l = blockIdx.z;
    W += l * wpitch, U += (size_t)l * r * E, sigma += (size_t)l * r, rho += (size_t)l * r;
    if (master) master += l * mpitch;
    if (e >= E || (j > 0 && sigma[j - 1] == sigma[j])) return;
    int s = sigma[j];
    size_t w = rows ? (size_t)s * n + e : (size_t)e * n + s;
    if (w < lo || w >= hi) return;
    float delta = 0.0f;
    for (; j < r && sigma[j] == s; j++) delta += rho[j] * U[(size_t)j * E + e];
    floatX *wp = W + (w - wbase);
    if (master) {
        master[w - lo] -= step * delta;
        *wp = from_float<floatX>(master[w - lo]);
    } else {
        *wp = round_stochastic<floatX>(to_float(*wp) - step * delta, random_u32(seeds.s[l] ^ 0x5CA7ULL, w));
    }
}

// The seeds of layers [l0, l0 + nl) of seeds, for one batch of launches.
static GrassSeeds grass_seeds_batch(const uint64_t *seeds, int l0, int nl) {
    GrassSeeds sd;
    memset(&sd, 0, sizeof(sd));
    memcpy(sd.s, seeds + l0, sizeof(uint64_t) * nl);
    return sd;
}

// Subspace Adam of `layers` matrices of one kind after their compressed gradients are complete, on elements [lo, hi) of
// each r x E g (the owned part; mom and var hold it, mpitch apart a layer), with seeds[l] for layer l: g there becomes
// the update U. g holds whole r x E matrices that follow each other (parts_only 0) or the parts alone, mpitch apart
// (--shard-weights). t counts the steps since the last refresh (1 at the refresh).
template <typename MomT>
static void grass_adam_step(float *g, MomT *mom, MomT *var, GrassShape sh, int layers, size_t lo, size_t hi, size_t mpitch,
                            int parts_only, const TrainOptions *opt, float grad_scale, int t, const uint64_t *seeds,
                            cudaStream_t stream) {
    size_t count = hi - lo, gpitch = parts_only ? mpitch : (size_t)sh.r * sh.E, gbase = parts_only ? lo : 0;
    float bc1 = 1.0f - powf(opt->beta1, (float)t), bc2 = 1.0f - powf(opt->beta2, (float)t);
    for (int l0 = 0; count > 0 && l0 < layers; l0 += GRASS_BATCH_LAYERS) {
        int nl = layers - l0 < GRASS_BATCH_LAYERS ? layers - l0 : GRASS_BATCH_LAYERS;
        GrassSeeds sd = grass_seeds_batch(seeds, l0, nl);
        float *gl = g + l0 * gpitch;
        MomT *moml = mom + l0 * mpitch, *varl = var + l0 * mpitch;
        vec_dispatch(vec_fits({count, lo, gpitch, gbase, mpitch}, gl, moml, varl), [&](auto k) {
            grass_adam_kernel<k.value><<<dim3(grid_stride_blocks(count / k.value, 256), nl), 256, 0, stream>>>(
                gl, moml, varl, lo, count, gpitch, gbase, mpitch, opt->beta1, opt->beta2, bc1, bc2, opt->eps, grad_scale, sd);
        });
        cudaCheckLaunch();
    }
}

// The weight update of `layers` matrices of one kind from their updates U (g, complete on this rank), on elements
// [lo, hi) of each W (the owned part; master holds it, mpitch apart a layer): weight decay, then the scatter W -= lr
// alpha P U. W [wm, wn] is the matrix as stored: the model's (D x E rows side, E x D columns side), or larger by rows
// or columns of zeros (padding), which decay keeps zero and the scatter never reaches; W holds whole matrices
// (parts_only 0) or the parts alone, mpitch apart (--shard-weights).
static void grass_apply(floatX *W, float *master, const float *g, const int *sigma, const float *rho, GrassShape sh, int wm,
                        int wn, int layers, size_t lo, size_t hi, size_t mpitch, int parts_only, const TrainOptions *opt,
                        float lr, float alpha, const uint64_t *seeds, cudaStream_t stream) {
    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)wm * wn, count = hi - lo;
    size_t wpitch = parts_only ? mpitch : mn, wbase = parts_only ? lo : 0;
    float decay = 1.0f - lr * opt->weight_decay;
    for (int l0 = 0; count > 0 && l0 < layers; l0 += GRASS_BATCH_LAYERS) {
        int nl = layers - l0 < GRASS_BATCH_LAYERS ? layers - l0 : GRASS_BATCH_LAYERS;
        GrassSeeds sd = grass_seeds_batch(seeds, l0, nl);
        floatX *Wl = W + l0 * wpitch;
        float *masterl = master ? master + l0 * mpitch : NULL;
        if (decay != 1.0f) {
            vec_dispatch(vec_fits({count, lo, wpitch, wbase, mpitch}, Wl, masterl), [&](auto k) {
                grass_decay_kernel<k.value><<<dim3(grid_stride_blocks(count / k.value, 256), nl), 256, 0, stream>>>(
                    Wl, masterl, lo, count, wpitch, wbase, mpitch, decay, sd);
            });
            cudaCheckLaunch();
        }
        grass_scatter_kernel<<<dim3(ceil_div(sh.E, 256), sh.r, nl), 256, 0, stream>>>(
            Wl, masterl, g + l0 * cnt, sigma + (size_t)l0 * sh.r, rho + (size_t)l0 * sh.r, sh.r, sh.E, wn, wpitch, wbase, lo, hi,
            mpitch, sh.rows, lr * alpha, sd);
        cudaCheckLaunch();
    }
}

// The whole Grass step of `layers` matrices of one kind, every element of them (one owner): grass_adam_step, then
// grass_apply. The tensors follow each other: W (and master) [wm, wn] a layer, g, mom, var [r, E], sigma and rho [r].
template <typename MomT>
static void grass_update(floatX *W, float *master, float *g, MomT *mom, MomT *var, const int *sigma, const float *rho,
                         GrassShape sh, int wm, int wn, int layers, const TrainOptions *opt, float lr, float alpha,
                         float grad_scale, int t, const uint64_t *seeds, cudaStream_t stream) {
    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)wm * wn;
    grass_adam_step(g, mom, var, sh, layers, 0, cnt, cnt, 0, opt, grad_scale, t, seeds, stream);
    grass_apply(W, master, g, sigma, rho, sh, wm, wn, layers, 0, mn, mn, 0, opt, lr, alpha, seeds, stream);
}
