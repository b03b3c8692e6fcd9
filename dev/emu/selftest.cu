/*
 * dev/emu/selftest.cu: checks of the CPU emulator itself (dev/emu/cuda_emu.h), so that a test passing on it
 * means something: built like the other emulated files (make emu -> dev/emu/bin/selftest) and run by
 * test/t_emu_kernels.sh. Each check runs a small kernel, correct or with a planted bug, and expects what a
 * GPU would give or the error the emulator promises:
 *   shuffles and a block reduction give the right sums, partial warps included; mma.sync equals a plain product;
 *   ldmatrix (plain and .trans) gives the fragments of plain shared loads; cp.async lands at its wait (NaN
 *   before it), zero-filled when told; a kernel that reads shared memory another thread writes without a
 *   barrier, by a store or by cp.async, gives other results in reverse order (--reverse-race: prints the
 *   results, a line per race, for the test to compare between EMU_SCHEDULE orders);
 *   memory never written reads as NaN; over-large launches are refused; cuBLAS arguments are checked;
 *   --deadlock: a __syncthreads that one thread skips ends the program with the deadlock error.
 */
#include "../../kernels/common.cuh"
#include "../../kernels/attention.cuh"
#include "../../kernels/matmul.cuh"

static int failures = 0;
static void expect(int ok, const char *what) {
    printf("  %-64s %s\n", what, ok ? "ok" : "FAIL");
    failures += !ok;
}

__global__ void sums_kernel(float *out, int n) {
    float v = threadIdx.x < (unsigned)n ? (float)(threadIdx.x + 1) : 0.0f;
    float s = block_reduce_sum(v);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
}

__global__ void mma_kernel(float *d, const uint32_t *a, const uint32_t *b) {
    float acc[4] = {0, 0, 0, 0};
    mma_bf16_16816(acc, a + 4 * threadIdx.x, b + 2 * threadIdx.x);
    for (int e = 0; e < 4; e++) d[4 * threadIdx.x + e] = acc[e];
}

// The planted race: thread t reads what thread t + 1 wrote, with no barrier between.
__global__ void race_kernel(float *out) {
    __shared__ float s[64];
    s[threadIdx.x] = (float)threadIdx.x;
    out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}

// The planted cp.async race: warp 1 refills the buffer that warp 0 reads, with no barrier between.
__global__ void cp_async_race_kernel(float *out, const float *src) {
    float *s = (float *)emu_dynamic_shared();
    s[threadIdx.x % 32] = -1.0f;
    __syncthreads();
    if (threadIdx.x >= 32) {
        copy_to_shared<4, true>(s + threadIdx.x - 32, src + threadIdx.x - 32, true);
        cp_async_commit<true>();
        cp_async_wait<true, 0>();
    } else {
        out[threadIdx.x] = s[threadIdx.x];
    }
}

// out[lane] = 1 where the ldmatrix forms of the fragment loaders (versions 3, 4) give the plain loads' (version
// 2) fragments, for a 32 x 32 bf16 tile with row stride 40 in dynamic shared memory.
__global__ void ldmatrix_kernel(float *out, const __nv_bfloat16 *tile_in) {
    constexpr int S = 40;
    __nv_bfloat16 *tile = (__nv_bfloat16 *)emu_dynamic_shared();
    for (int i = threadIdx.x; i < 32 * S; i += 32) tile[i] = tile_in[i];
    __syncwarp();
    int lane = threadIdx.x, ok = 1;
    uint32_t a2[4], a4[4], b2[2][2], b4[2][2];
    frag_a<2>(a2, tile, S, 16, 8, lane);
    frag_a<4>(a4, tile, S, 16, 8, lane);
    for (int i = 0; i < 4; i++) ok &= a2[i] == a4[i];
    frag_b_pair<2>(b2, tile, S, 8, 16, lane);
    frag_b_pair<4>(b4, tile, S, 8, 16, lane);
    for (int i = 0; i < 4; i++) ok &= b2[i / 2][i % 2] == b4[i / 2][i % 2];
    frag_b_rows_pair<2>(b2, tile, S, 16, 8, lane);
    frag_b_rows_pair<3>(b4, tile, S, 16, 8, lane);
    for (int i = 0; i < 4; i++) ok &= b2[i / 2][i % 2] == b4[i / 2][i % 2];
    out[lane] = ok;
}

// cp.async of 16 bytes (4 floats) per thread, the last thread's zero-filled: out [0, 4n) read before the wait,
// out [4n, 8n) after it (n = blockDim.x).
__global__ void cp_async_kernel(float *out, const float *src) {
    float *s = (float *)emu_dynamic_shared();
    int i = threadIdx.x, n = blockDim.x;
    copy_to_shared<16, true>(s + 4 * i, src + 4 * i, i != n - 1);
    cp_async_commit<true>();
    for (int e = 0; e < 4; e++) out[4 * i + e] = s[4 * i + e];
    cp_async_wait<true, 0>();
    for (int e = 0; e < 4; e++) out[4 * (n + i) + e] = s[4 * i + e];
}

__global__ void copy_kernel(float *out, const float *in) { out[threadIdx.x] = in[threadIdx.x]; }

__global__ void deadlock_kernel(float *out) {
    if (threadIdx.x != 5) __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void smem_kernel(float *out) {
    unsigned char *big = emu_dynamic_shared();
    big[threadIdx.x] = 1;
    out[threadIdx.x] = big[threadIdx.x];
}

int main(int argc, char **argv) {
    float *d;
    cudaCheck(cudaMalloc(&d, sizeof(float) * 1024));
    if (argc > 1 && !strcmp(argv[1], "--reverse-race")) {
        float h[64];
        race_kernel<<<1, 64>>>(d);
        cudaCheck(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
        for (int i = 0; i < 64; i++) printf("%g ", h[i]);
        printf("\n");
        for (int i = 0; i < 32; i++) h[i] = (float)i;
        cudaCheck(cudaMemcpy(d + 512, h, sizeof(float) * 32, cudaMemcpyHostToDevice));
        cp_async_race_kernel<<<1, 64, 128>>>(d, d + 512);
        cudaCheck(cudaMemcpy(h, d, sizeof(float) * 32, cudaMemcpyDeviceToHost));
        for (int i = 0; i < 32; i++) printf("%g ", h[i]);
        printf("\n");
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "--deadlock")) {
        deadlock_kernel<<<1, 64>>>(d);
        return 0;  // not reached: the emulator reports the deadlock and exits 1
    }
    printf("CUDA emulator self-test\n");

    // block_reduce_sum over 1 + 2 + ... + n, with blocks of 32, 96 (three warps) and 100 threads (a partial warp)
    int sizes[3] = {32, 96, 100};
    for (int k = 0; k < 3; k++) {
        int n = sizes[k] == 100 ? 70 : sizes[k];
        sums_kernel<<<2, sizes[k]>>>(d, n);
        float h[2];
        cudaCheck(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
        char what[80];
        snprintf(what, sizeof(what), "block_reduce_sum, %d threads", sizes[k]);
        expect(h[0] == n * (n + 1) / 2.0f && h[1] == h[0], what);
    }

    // mma.sync m16n8k16 against a plain product, from fragments filled by the PTX layout (lane side)
    {
        float A[16][16], B[16][8];
        for (int r = 0; r < 16; r++)
            for (int c = 0; c < 16; c++) A[r][c] = (float)((r * 7 + c * 3) % 11 - 5);
        for (int k = 0; k < 16; k++)
            for (int n = 0; n < 8; n++) B[k][n] = (float)((k * 5 + n) % 7 - 3);
        uint32_t a[32 * 4], b[32 * 2];
        for (int lane = 0; lane < 32; lane++) {
            int g = lane / 4, t = lane % 4;
            a[4 * lane + 0] = bf16x2_from_floats(A[g][2 * t], A[g][2 * t + 1]);
            a[4 * lane + 1] = bf16x2_from_floats(A[g + 8][2 * t], A[g + 8][2 * t + 1]);
            a[4 * lane + 2] = bf16x2_from_floats(A[g][2 * t + 8], A[g][2 * t + 9]);
            a[4 * lane + 3] = bf16x2_from_floats(A[g + 8][2 * t + 8], A[g + 8][2 * t + 9]);
            b[2 * lane + 0] = bf16x2_from_floats(B[2 * t][g], B[2 * t + 1][g]);
            b[2 * lane + 1] = bf16x2_from_floats(B[2 * t + 8][g], B[2 * t + 9][g]);
        }
        uint32_t *da, *db;
        cudaCheck(cudaMalloc(&da, sizeof(a)));
        cudaCheck(cudaMalloc(&db, sizeof(b)));
        cudaCheck(cudaMemcpy(da, a, sizeof(a), cudaMemcpyHostToDevice));
        cudaCheck(cudaMemcpy(db, b, sizeof(b), cudaMemcpyHostToDevice));
        mma_kernel<<<1, 32>>>(d, da, db);
        float h[128];
        cudaCheck(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
        int ok = 1;
        for (int lane = 0; lane < 32; lane++)
            for (int e = 0; e < 4; e++) {
                int r = lane / 4 + 8 * (e / 2), n = 2 * (lane % 4) + e % 2;
                float want = 0.0f;
                for (int k = 0; k < 16; k++) want += A[r][k] * B[k][n];
                ok &= h[4 * lane + e] == want;
            }
        expect(ok, "mma.sync m16n8k16 equals the plain product");
    }

    // ldmatrix's fragments against plain loads
    {
        __nv_bfloat16 tile[32 * 40], *dt;
        for (int i = 0; i < 32 * 40; i++) tile[i] = __float2bfloat16((float)(i % 251));
        cudaCheck(cudaMalloc(&dt, sizeof(tile)));
        cudaCheck(cudaMemcpy(dt, tile, sizeof(tile), cudaMemcpyHostToDevice));
        ldmatrix_kernel<<<1, 32, sizeof(tile)>>>(d, dt);
        float h[32];
        cudaCheck(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
        int ok = 1;
        for (int i = 0; i < 32; i++) ok &= h[i] == 1.0f;
        expect(ok, "ldmatrix x4 and x4.trans give the fragments of plain loads");
    }

    // cp.async: NaN (the shared memory's fill) before the wait; after it the source, or zeros where told
    {
        float src[64], h[128];
        for (int i = 0; i < 64; i++) src[i] = (float)(i + 1);
        cudaCheck(cudaMemcpy(d + 512, src, sizeof(src), cudaMemcpyHostToDevice));
        cp_async_kernel<<<1, 16, 256>>>(d, d + 512);
        cudaCheck(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
        int before = 1, after = 1;
        for (int i = 0; i < 64; i++) {
            before &= isnan(h[i]) != 0;
            after &= h[64 + i] == (i < 60 ? src[i] : 0.0f);
        }
        expect(before, "cp.async: the destination before the wait holds what it held (NaN)");
        expect(after, "cp.async: after the wait the source, zeros where the source size is 0");
    }

    // memory never written reads as NaN
    {
        float *fresh, h[4];
        cudaCheck(cudaMalloc(&fresh, sizeof(float) * 4));
        copy_kernel<<<1, 4>>>(d, fresh);
        cudaCheck(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
        expect(isnan(h[0]) && isnan(h[3]), "cudaMalloc'd memory never written reads as NaN");
    }

    // launch limits
    copy_kernel<<<1, 1025>>>(d, d);
    expect(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads per block: refused");
    copy_kernel<<<dim3(1, 65536), 32>>>(d, d);
    expect(cudaGetLastError() == cudaErrorInvalidConfiguration, "gridDim.y 65536: refused");
    smem_kernel<<<1, 32, 64 * 1024>>>(d);
    expect(cudaGetLastError() == cudaErrorInvalidValue, "64 KiB of dynamic shared memory without the attribute: refused");
    cudaCheck(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
    smem_kernel<<<1, 32, 64 * 1024>>>(d);
    expect(cudaGetLastError() == cudaSuccess, "64 KiB with the attribute: runs");

    // cuBLAS argument checks: ld below the rows of the stored matrix; a pointer below its promised alignment
    {
        cublasHandle_t h;
        cublasCheck(cublasCreate(&h));
        float one = 1.0f, zero = 0.0f;
        cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &one, d, CUDA_R_32F, 4, d, CUDA_R_32F, 8, &zero,
                                         d + 512, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        expect(st == CUBLAS_STATUS_INVALID_VALUE, "cublasGemmEx with lda < m: CUBLAS_STATUS_INVALID_VALUE");
        cublasCheck(cublasDestroy(h));
        Matmul mm;
        matmul_init(&mm, 1 << 20);
        Gemm g = {0, 0, 8, 8, 8, d, 8, d, 8, d + 512, 8, 0.0f, 1, NULL, 1, 0, 0, 0};  // planned with 256-byte aligned pointers
        matmul_plan(&mm, &g);
        MatmulPlan *p = &mm.plans[0];
        float alpha = 1.0f;
        st = cublasLtMatmul(mm.lt, p->desc, &alpha, d + 1, p->layout_a, d, p->layout_b, &zero, d + 512, p->layout_c, d + 512,
                            p->layout_c, &p->algo, mm.workspace, mm.workspace_size, 0);
        expect(st == CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul with A below its promised alignment: refused");
        // a strided batch whose matrices disagree on the batch count
        cublasLtMatrixLayout_t two;
        cublasLtMatmulPreference_t pref;
        cublasLtMatmulHeuristicResult_t result;
        int32_t batch = 2, count = 0;
        cublasCheck(cublasLtMatrixLayoutCreate(&two, CUDA_R_32F, 8, 8, 8));
        cublasCheck(cublasLtMatrixLayoutSetAttribute(two, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
        cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
        st = cublasLtMatmulAlgoGetHeuristic(mm.lt, p->desc, two, p->layout_b, p->layout_c, p->layout_c, pref, 1, &result, &count);
        expect(st == CUBLAS_STATUS_INVALID_VALUE, "cuBLASLt batch of 2 against batches of 1: refused");
        cublasCheck(cublasLtMatmulPreferenceDestroy(pref));
        cublasCheck(cublasLtMatrixLayoutDestroy(two));
        matmul_free(&mm);
    }
    printf(failures ? "FAILED: %d checks\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
