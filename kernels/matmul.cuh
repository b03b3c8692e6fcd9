/*
 * kernels/matmul.cuh: the model's matrix products through cuBLASLt, fp32 accumulation (CUBLAS_COMPUTE_32F)
 * with floatX inputs and outputs. Weights are `out x in` row-major (HF layout), so a linear layer is
 * out [N, OC] = inp [N, C] @ weight [OC, C]^T, and its backward is dinp = dout @ weight, dweight += dout^T @ inp.
 *
 * Row-major to cuBLAS: a row-major [R, K] matrix is the column-major [K, R] matrix with leading dimension K,
 * so each product is written as its transpose in column-major terms (the matmul_*_gemm functions below; the
 * CPU self-test of dev/cuda/matmul.cu checks this mapping against a plain row-major product).
 *
 * Any size works. cuBLASLt assumes 256-byte aligned matrices unless told otherwise, so every call passes the
 * real alignment of each matrix: the largest power of two (at most 256) dividing both its address and its
 * row pitch in bytes. With an odd leading dimension (ffn 5461 of the 1b preset, a vocab of 50257) that is 2
 * bytes, which rules out the vectorised tensor-core kernels: cuBLASLt then picks a slower kernel, or none,
 * in which case the product falls back to cublasGemmEx, which accepts any alignment. The result is correct
 * either way, and the plan says so on stderr once per shape; for speed, the trainer stores such dimensions
 * padded to matmul_padded (zero rows or columns contribute nothing and receive zero gradients), as llm.c
 * pads GPT-2's vocabulary.
 *
 * fp32 accumulation includes split-K: where cuBLAS splits a long sum into parts, it may by default add the
 * parts up in the output type, a bf16 rounding per part at the scale of the partial sums. Both paths forbid it:
 * cuBLASLt's preference allows only the reduction schemes in the compute type (fp32 in the workspace) or none, and
 * cublasGemmEx runs with CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION. What neither setting reaches: for some
 * shapes (products of a few tokens) cuBLAS rounds A B to bf16 before it adds C, a second rounding
 * (dev/cuda/matmul.cu allows for it).
 *
 * Plans (descriptors, layouts and the heuristic's algorithm) are cached per shape and alignment; with MATMUL_PLANS
 * set in the environment, each new plan prints the algorithm cuBLASLt chose (tile, split-K, waves) on stderr. A
 * Matmul owns one workspace, so use one Matmul per stream.
 */
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include "common.cuh"

#ifdef ENABLE_FP32
#define CUDA_FLOATX CUDA_R_32F
#else
#define CUDA_FLOATX CUDA_R_16BF
#endif

// One product in cuBLAS's column-major terms: C [m, n] = op(A) [m, k] op(B) [k, n] + beta C0, where op
// transposes the stored matrix when trans is 1 and C0 is C itself, or C_in when set (cuBLASLt's C != D: the
// residual stream added without first copying it into the output). A and B are floatX; C (and C_in) floatX,
// or fp32 with c_fp32 (Grass's compressed gradients and refresh gradients accumulate in fp32).
// With batch > 1, `batch` such products in one launch (strided batch): product i takes A + i stride_a, B + i
// stride_b and C + i stride_c (elements); a stride of 0 gives every product the same matrix (Grass's q, k and v
// share their input X).
typedef struct {
    int transa, transb;
    int m, n, k;
    const void *A;
    int lda;
    const void *B;
    int ldb;
    void *C;
    int ldc;
    float beta;
    int c_fp32;
    const void *C_in;  // [m, n] with ld ldc, or NULL for C (single products only)
    int batch;         // products in the batch (1: one product; every matmul_*_gemm sets 1)
    long long stride_a, stride_b, stride_c;
} Gemm;

// Bytes per element of C (and C_in).
static size_t matmul_c_size(const Gemm *g) { return g->c_fp32 ? 4 : sizeof(floatX); }

// out [N, OC] = inp [N, C] @ weight [OC, C]^T: A = weight stored [C, OC] (ld C), transposed; B = inp stored
// [C, N] (ld C); C = out [OC, N] (ld OC).
static Gemm matmul_forward_gemm(floatX *out, const floatX *inp, const floatX *weight, int N, int C, int OC) {
    Gemm g = {1, 0, OC, N, C, weight, C, inp, C, out, OC, 0.0f, 0, NULL, 1, 0, 0, 0};
    return g;
}

// dinp [N, C] (= or +=) dout [N, OC] @ weight [OC, C]: A = weight stored [C, OC] (ld C); B = dout stored
// [OC, N] (ld OC); C = dinp [C, N] (ld C).
static Gemm matmul_dinp_gemm(floatX *dinp, const floatX *dout, const floatX *weight, int N, int C, int OC, float beta) {
    Gemm g = {0, 0, C, N, OC, weight, C, dout, OC, dinp, C, beta, 0, NULL, 1, 0, 0, 0};
    return g;
}

// dweight [OC, C] += dout^T [OC, N] @ inp [N, C]: A = inp stored [C, N] (ld C); B = dout stored [OC, N]
// (ld OC), transposed; C = dweight [C, OC] (ld C).
static Gemm matmul_dweight_gemm(floatX *dweight, const floatX *dout, const floatX *inp, int N, int C, int OC) {
    Gemm g = {0, 1, C, OC, N, inp, C, dout, OC, dweight, C, 1.0f, 0, NULL, 1, 0, 0, 0};
    return g;
}

// A row length of n elements rounded up to a multiple of 8: 16-byte rows in bf16 (32 in fp32), what the
// tensor-core kernels of cuBLASLt ask of every matrix.
static int matmul_padded(int n) { return (n + 7) / 8 * 8; }

#define MATMUL_MAX_PLANS 64

typedef struct {
    int transa, transb, m, n, k, lda, ldb, ldc, align_a, align_b, align_c, c_fp32, batch;  // the key
    long long stride_a, stride_b, stride_c;
    int found;  // 0: cuBLASLt has no algorithm for it, so it runs through cublasGemmEx
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t layout_a, layout_b, layout_c;
    cublasLtMatmulAlgo_t algo;
} MatmulPlan;

typedef struct {
    cublasLtHandle_t lt;
    cublasHandle_t blas;  // for the fallback
    void *workspace;
    size_t workspace_size;
    int use_cublas;  // 1: every product through cublasGemmEx (to compare the two paths in dev/cuda)
    MatmulPlan plans[MATMUL_MAX_PLANS];
    int num_plans, next_evict;
} Matmul;

// 32 MiB of workspace is what cuBLAS recommends for Hopper.
static void matmul_init(Matmul *mm, size_t workspace_size) {
    memset(mm, 0, sizeof(*mm));
    cublasCheck(cublasLtCreate(&mm->lt));
    cublasCheck(cublasCreate(&mm->blas));
    cublasCheck(cublasSetMathMode(mm->blas, (cublasMath_t)(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    mm->workspace_size = workspace_size;
    cudaCheck(cudaMalloc(&mm->workspace, workspace_size));
}

static void matmul_plan_destroy(MatmulPlan *p) {
    cublasCheck(cublasLtMatrixLayoutDestroy(p->layout_a));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->layout_b));
    cublasCheck(cublasLtMatrixLayoutDestroy(p->layout_c));
    cublasCheck(cublasLtMatmulDescDestroy(p->desc));
}

static void matmul_free(Matmul *mm) {
    for (int i = 0; i < mm->num_plans; i++) matmul_plan_destroy(&mm->plans[i]);
    cudaCheck(cudaFree(mm->workspace));
    cublasCheck(cublasDestroy(mm->blas));
    cublasCheck(cublasLtDestroy(mm->lt));
    memset(mm, 0, sizeof(*mm));
}

// Largest power of two <= 256 dividing the address, the row pitch (ld elements of esize bytes) and the batch
// stride (elements) in bytes: the alignment of every row of every product of the batch.
static int matmul_alignment(const void *p, int ld, long long stride, size_t esize) {
    uintptr_t bits = (uintptr_t)p | ((uintptr_t)ld * esize) | ((uintptr_t)stride * esize);
    int a = 1;
    while (a < 256 && !(bits & (uintptr_t)a)) a <<= 1;
    return a;
}

static MatmulPlan *matmul_plan(Matmul *mm, const Gemm *g) {
    int aa = matmul_alignment(g->A, g->lda, g->stride_a, sizeof(floatX));
    int ab = matmul_alignment(g->B, g->ldb, g->stride_b, sizeof(floatX));
    int ac = matmul_alignment(g->C, g->ldc, g->stride_c, matmul_c_size(g));
    if (g->C_in) {  // C and D share one layout and one promised alignment
        int ai = matmul_alignment(g->C_in, g->ldc, 0, matmul_c_size(g));
        ac = ai < ac ? ai : ac;
    }
    int batch = g->batch;
    for (int i = 0; i < mm->num_plans; i++) {
        MatmulPlan *p = &mm->plans[i];
        if (p->transa == g->transa && p->transb == g->transb && p->m == g->m && p->n == g->n && p->k == g->k &&
            p->lda == g->lda && p->ldb == g->ldb && p->ldc == g->ldc && p->align_a == aa && p->align_b == ab &&
            p->align_c == ac && p->c_fp32 == g->c_fp32 && p->batch == batch && p->stride_a == g->stride_a &&
            p->stride_b == g->stride_b && p->stride_c == g->stride_c)
            return p;
    }
    MatmulPlan *p;
    if (mm->num_plans < MATMUL_MAX_PLANS) {
        p = &mm->plans[mm->num_plans++];
    } else {  // full: replace the plans in turn
        p = &mm->plans[mm->next_evict];
        mm->next_evict = (mm->next_evict + 1) % MATMUL_MAX_PLANS;
        matmul_plan_destroy(p);
    }
    memset(p, 0, sizeof(*p));
    p->transa = g->transa, p->transb = g->transb, p->m = g->m, p->n = g->n, p->k = g->k;
    p->lda = g->lda, p->ldb = g->ldb, p->ldc = g->ldc, p->align_a = aa, p->align_b = ab, p->align_c = ac;
    p->c_fp32 = g->c_fp32, p->batch = batch, p->stride_a = g->stride_a, p->stride_b = g->stride_b, p->stride_c = g->stride_c;

    cublasOperation_t opa = g->transa ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    // stored shapes (rows x columns, column-major): op(A) is m x k, op(B) is k x n
    cublasCheck(cublasLtMatrixLayoutCreate(&p->layout_a, CUDA_FLOATX, g->transa ? g->k : g->m, g->transa ? g->m : g->k, g->lda));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->layout_b, CUDA_FLOATX, g->transb ? g->n : g->k, g->transb ? g->k : g->n, g->ldb));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->layout_c, g->c_fp32 ? CUDA_R_32F : CUDA_FLOATX, g->m, g->n, g->ldc));
    if (batch > 1) {
        cublasLtMatrixLayout_t layouts[3] = {p->layout_a, p->layout_b, p->layout_c};
        int64_t strides[3] = {g->stride_a, g->stride_b, g->stride_c};
        for (int i = 0; i < 3; i++) {
            cublasCheck(cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
            cublasCheck(cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i],
                                                         sizeof(strides[i])));
        }
    }

    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = mm->workspace_size;
    uint32_t align[3] = {(uint32_t)aa, (uint32_t)ab, (uint32_t)ac}, reduction = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    // split-K partial sums in fp32 only (or no split): see the top of this file
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction, sizeof(reduction)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align[0], sizeof(uint32_t)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align[1], sizeof(uint32_t)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align[2], sizeof(uint32_t)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align[2], sizeof(uint32_t)));
    cublasLtMatmulHeuristicResult_t result;
    int count = 0;
    // no algorithm (NOT_SUPPORTED, or any other refusal) means the fallback, which reports real errors itself
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(mm->lt, p->desc, p->layout_a, p->layout_b, p->layout_c,
                                                       p->layout_c, pref, 1, &result, &count);
    p->found = st == CUBLAS_STATUS_SUCCESS && count > 0;
    if (p->found) p->algo = result.algo;
    if (p->found && getenv("MATMUL_PLANS")) {  // what the heuristic chose, for reading timings (dev/gpu/run.sh sets it)
        int32_t id = -1, splitk = -1;
        uint32_t tile = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof(id), NULL);
        cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile), NULL);
        cublasLtMatmulAlgoConfigGetAttribute(&p->algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof(splitk), NULL);
        fprintf(stderr, "matmul plan: m %d n %d k %d batch %d%s: algorithm %d, tile id %u, split-K %d, %.2f waves\n", g->m,
                g->n, g->k, batch, g->c_fp32 ? " (fp32 C)" : "", id, tile, splitk, result.wavesCount);
    }
    if (!p->found)  // correct but slower: say so once per shape
        fprintf(stderr, "matmul: cuBLASLt has no algorithm for m %d n %d k %d batch %d (alignments %d %d %d bytes, status %d): "
                "using cublasGemmEx\n", g->m, g->n, g->k, batch, aa, ab, ac, (int)st);
    if (aa < 16 || ab < 16 || ac < 16)  // the trainer's own products never are (the GPU tests check for this line)
        fprintf(stderr, "matmul: m %d n %d k %d has rows aligned to %d %d %d bytes, below the 16 of the fast kernels\n", g->m,
                g->n, g->k, aa, ab, ac);
    cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
    return p;
}

// Runs one product (or one batch of them) on `stream`.
static void matmul_gemm(Matmul *mm, const Gemm *g, cudaStream_t stream) {
    if (g->m == 0 || g->n == 0) return;
    if (g->k == 0) {  // an empty sum: C = beta C
        kernelRequire(g->beta == 1.0f && !g->C_in, "matmul: an empty product (k = 0) that overwrites its output");
        return;
    }
    kernelRequire(g->batch >= 1 && (g->batch == 1 || !g->C_in), "matmul: a batch count below 1, or a batch with a separate C_in");
    const float alpha = 1.0f;
    const void *c_in = g->C_in ? g->C_in : g->C;
    MatmulPlan *p = mm->use_cublas ? NULL : matmul_plan(mm, g);
    if (p && p->found) {
        cublasCheck(cublasLtMatmul(mm->lt, p->desc, &alpha, g->A, p->layout_a, g->B, p->layout_b, &g->beta, c_in,
                                   p->layout_c, g->C, p->layout_c, &p->algo, mm->workspace, mm->workspace_size, stream));
    } else {
        if (c_in != g->C && g->beta != 0.0f) {  // cublasGemmEx adds C to itself only
            size_t pitch = (size_t)g->ldc * matmul_c_size(g);
            cudaCheck(cudaMemcpy2DAsync(g->C, pitch, c_in, pitch, (size_t)g->m * matmul_c_size(g), g->n,
                                        cudaMemcpyDeviceToDevice, stream));
        }
        cublasCheck(cublasSetStream(mm->blas, stream));
        cublasCheck(cublasSetWorkspace(mm->blas, mm->workspace, mm->workspace_size));  // setting a stream resets it
        size_t c_size = matmul_c_size(g);
        for (int i = 0; i < g->batch; i++)  // a batch as its products one by one
            cublasCheck(cublasGemmEx(mm->blas, g->transa ? CUBLAS_OP_T : CUBLAS_OP_N, g->transb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     g->m, g->n, g->k, &alpha, (const floatX *)g->A + i * g->stride_a, CUDA_FLOATX, g->lda,
                                     (const floatX *)g->B + i * g->stride_b, CUDA_FLOATX, g->ldb, &g->beta,
                                     (char *)g->C + i * g->stride_c * c_size, g->c_fp32 ? CUDA_R_32F : CUDA_FLOATX, g->ldc,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }
}

static void matmul_forward(Matmul *mm, floatX *out, const floatX *inp, const floatX *weight, int N, int C, int OC,
                           cudaStream_t stream) {
    // out [N, OC] = inp [N, C] @ weight [OC, C]^T
    Gemm g = matmul_forward_gemm(out, inp, weight, N, C, OC);
    matmul_gemm(mm, &g, stream);
}

static void matmul_backward(Matmul *mm, floatX *dinp, floatX *dweight, const floatX *dout, const floatX *inp,
                            const floatX *weight, int N, int C, int OC, int accumulate_dinp, cudaStream_t stream) {
    // dinp [N, C] = dout [N, OC] @ weight [OC, C] (+= when accumulate_dinp); dweight [OC, C] += dout^T @ inp [N, C].
    // Either output may be NULL (not computed).
    if (dinp) {
        Gemm g = matmul_dinp_gemm(dinp, dout, weight, N, C, OC, accumulate_dinp ? 1.0f : 0.0f);
        matmul_gemm(mm, &g, stream);
    }
    if (dweight) {
        Gemm g = matmul_dweight_gemm(dweight, dout, inp, N, C, OC);
        matmul_gemm(mm, &g, stream);
    }
}
