/*
 * dev/cuda/matmul.cu: the cuBLASLt wrapper (kernels/matmul.cuh) against the CPU reference: forward, forward
 * plus a residual read as cuBLASLt's C (C_in), dinp (= and +=) and dweight (+=), on odd sizes (ffn 5461 as OC and as C), with misaligned pointers, then timed
 * in TFLOPS on the 1b preset's shapes, with ffn 5461 and padded to 5464 to show the cost of alignment.
 *   make -C dev/cuda && dev/cuda/bin/matmul [--version 1|2] [--no-bench] [--cpu-selftest]
 * versions: 1 cuBLASLt with its heuristic (what the trainer uses), 2 the cublasGemmEx fallback for every shape.
 */
#include "dev_common.cuh"
#include "../../kernels/matmul.cuh"

// The CPU reference: train_llama.c's matmul_forward (out = inp w^T) and matmul_backward, in precision R.
template <typename R> static void matmul_forward_ref(R *out, const R *inp, const R *w, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            R acc = 0;
            for (int c = 0; c < C; c++) acc += inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            out[(size_t)n * OC + o] = acc;
        }
}

template <typename R>
static void matmul_backward_ref(R *dinp, R *dw, const R *dout, const R *inp, const R *w, int N, int C, int OC) {
    // dinp [N, C] += dout @ w; dw [OC, C] += dout^T @ inp. Each element's sum runs over o (dinp) or n (dw) in
    // order into acc [C], a row at a time, so that the inner loop reads w and inp along their rows.
    std::vector<R> acc(C);
    for (int n = 0; n < N; n++) {
        std::fill(acc.begin(), acc.end(), R(0));
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) acc[c] += dout[(size_t)n * OC + o] * w[(size_t)o * C + c];
        for (int c = 0; c < C; c++) dinp[(size_t)n * C + c] += acc[c];
    }
    for (int o = 0; o < OC; o++) {
        std::fill(acc.begin(), acc.end(), R(0));
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) acc[c] += dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
        for (int c = 0; c < C; c++) dw[(size_t)o * C + c] += acc[c];
    }
}

// What cuBLAS computes for a Gemm, by its definition (column-major, op = transpose when trans is set), on
// host arrays of doubles whose addresses the Gemm carries.
static void gemm_colmajor_ref(const Gemm &g) {
    const double *A = (const double *)g.A, *B = (const double *)g.B;
    double *C = (double *)g.C;
    for (int j = 0; j < g.n; j++)
        for (int i = 0; i < g.m; i++) {
            double acc = 0.0;
            for (int p = 0; p < g.k; p++) {
                double a = g.transa ? A[p + (size_t)i * g.lda] : A[i + (size_t)p * g.lda];  // op(A)[i, p]
                double b = g.transb ? B[j + (size_t)p * g.ldb] : B[p + (size_t)j * g.ldb];  // op(B)[p, j]
                acc += a * b;
            }
            C[i + (size_t)j * g.ldc] = acc + g.beta * C[i + (size_t)j * g.ldc];
        }
}

// The row-major -> column-major mapping of matmul.cuh (matmul_*_gemm), run through cuBLAS's definition on
// the CPU, against the row-major reference.
static void selftest(void) {
    const int N = 5, C = 7, OC = 3;
    printf("matmul CPU self-test: the Gemm arguments of matmul.cuh under cuBLAS's column-major definition\n");
    std::vector<double> inp = to_double(random_normal((size_t)N * C, 0, 1, 1)), w = to_double(random_normal((size_t)OC * C, 0, 1, 2));
    std::vector<double> dout = to_double(random_normal((size_t)N * OC, 0, 1, 3)), dinp0 = to_double(random_normal((size_t)N * C, 0, 1, 4));
    std::vector<double> dw0 = to_double(random_normal((size_t)OC * C, 0, 1, 5));
    std::vector<double> out_ref((size_t)N * OC), dinp_ref = dinp0, dw_ref = dw0;
    matmul_forward_ref(out_ref.data(), inp.data(), w.data(), N, C, OC);
    matmul_backward_ref(dinp_ref.data(), dw_ref.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    std::vector<double> dinp_only((size_t)N * C, 0.0), dw_unused((size_t)OC * C, 0.0);  // dinp = dout @ w
    matmul_backward_ref(dinp_only.data(), dw_unused.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    std::vector<double> out((size_t)N * OC), dinp_set = dinp0, dinp_acc = dinp0, dw = dw0;
    auto X = [](const std::vector<double> &v) { return (floatX *)v.data(); };  // addresses only, never read as floatX
    gemm_colmajor_ref(matmul_forward_gemm(X(out), X(inp), X(w), N, C, OC));
    gemm_colmajor_ref(matmul_dinp_gemm(X(dinp_set), X(dout), X(w), N, C, OC, 0.0f));
    gemm_colmajor_ref(matmul_dinp_gemm(X(dinp_acc), X(dout), X(w), N, C, OC, 1.0f));
    gemm_colmajor_ref(matmul_dweight_gemm(X(dw), X(dout), X(inp), N, C, OC));
    // cuBLAS also needs every stored matrix to fit its leading dimension
    int fits = 1;
    for (const Gemm &g : {matmul_forward_gemm(X(out), X(inp), X(w), N, C, OC), matmul_dinp_gemm(X(dinp_set), X(dout), X(w), N, C, OC, 0.0f),
                          matmul_dweight_gemm(X(dw), X(dout), X(inp), N, C, OC)})
        fits &= (g.transa ? g.k : g.m) <= g.lda && (g.transb ? g.n : g.k) <= g.ldb && g.m <= g.ldc;
    printf("    %-26s %s\n", "leading dimensions", fits ? "ok" : "FAIL");
    dev_failures += !fits;
    check_doubles("forward", out, out_ref, 1e-12, 1e-12);
    check_doubles("dinp (=)", dinp_set, dinp_only, 1e-12, 1e-12);
    check_doubles("dinp (+=)", dinp_acc, dinp_ref, 1e-12, 1e-12);
    check_doubles("dweight (+=)", dw, dw_ref, 1e-12, 1e-12);
}

// The bound of a product added to an existing C (D = C + A B), per element. cuBLAS may round A B to floatX
// before adding C (some kernels do, for products of a few tokens: then D is off by half a bf16 unit of |A B|,
// however small D is). So one rounding at the scale of the product, one of the result, and the fp32 sum's error at the product's typical size, each with tolerance(1) (twice the
// half unit a rounding to nearest can lose).
static int check_accumulate(const char *what, const std::vector<float> &got, const std::vector<double> &want,
                            const std::vector<double> &product) {
    std::vector<double> bound(want.size());
    double scale = rms(product);
    for (size_t i = 0; i < want.size(); i++) bound[i] = tolerance(1) * (fabs(product[i]) + fabs(want[i]) + scale);
    return check_bounds(what, to_double(got), want, bound);
}

// Checks the three products of one shape; `offset` shifts inp and dinp by that many elements, so their
// alignment drops to sizeof(floatX) bytes.
static void validate(Matmul *mm, int N, int C, int OC, int offset) {
    printf("  N %d, C %d, OC %d%s\n", N, C, OC, offset ? ", inp and dinp misaligned" : "");
    std::vector<float> inp = random_normal((size_t)N * C, 0, 1, 130), w = random_normal((size_t)OC * C, 0, 0.05, 131);
    std::vector<float> dout = random_normal((size_t)N * OC, 0, 1, 132), dinp0 = random_normal((size_t)N * C, 0, 0.1, 133);
    std::vector<float> dw0 = random_normal((size_t)OC * C, 0, 1, 134);
    std::vector<double> ind = to_double(inp), wd = to_double(w), doutd = to_double(dout);
    std::vector<double> out((size_t)N * OC), dinp_acc = to_double(dinp0), dinp((size_t)N * C, 0.0), dw = to_double(dw0);
    std::vector<double> dw_product((size_t)OC * C, 0.0);  // dout^T @ inp alone, for the bound of dweight +=
    matmul_forward_ref(out.data(), ind.data(), wd.data(), N, C, OC);
    matmul_backward_ref(dinp_acc.data(), dw.data(), doutd.data(), ind.data(), wd.data(), N, C, OC);
    matmul_backward_ref(dinp.data(), dw_product.data(), doutd.data(), ind.data(), wd.data(), N, C, OC);

    floatX *d_inp_base = device_alloc<floatX>(inp.size() + offset), *d_dinp_base = device_alloc<floatX>(inp.size() + offset);
    floatX *d_inp = d_inp_base + offset, *d_dinp = d_dinp_base + offset;
    upload_to(d_inp, inp);
    floatX *d_w = upload<floatX>(w), *d_dout = upload<floatX>(dout), *d_dw = upload<floatX>(dw0);
    floatX *d_out = device_alloc<floatX>(out.size());
    matmul_forward(mm, d_out, d_inp, d_w, N, C, OC, 0);
    matmul_backward(mm, d_dinp, NULL, d_dout, d_inp, d_w, N, C, OC, 0, 0);
    cudaCheck(cudaDeviceSynchronize());
    std::vector<float> dinp_got = download(d_dinp, inp.size());
    upload_to(d_dinp, dinp0);
    matmul_backward(mm, d_dinp, d_dw, d_dout, d_inp, d_w, N, C, OC, 1, 0);
    // fp32 accumulation (K up to 5461 terms) and one rounding of the result to floatX; the += forms as above
    check("forward", download(d_out, out.size()), out, tolerance(1), tolerance(1) * rms(out));
    check("dinp (=)", dinp_got, dinp, tolerance(1), tolerance(1) * rms(dinp));
    check_accumulate("dinp (+=)", download(d_dinp, inp.size()), dinp_acc, dinp);
    check_accumulate("dweight (+=)", download(d_dw, dw.size()), dw, dw_product);
    // the residual form (o_proj, down_proj): out = resid + inp @ w^T with resid as C_in, into an output full of
    // NaN (0xFF bytes), which must be overwritten, not added to; resid must stay as it was
    std::vector<float> resid = random_normal(out.size(), 0, 1, 135);
    std::vector<double> out_res(out.size());
    for (size_t i = 0; i < out.size(); i++) out_res[i] = out[i] + resid[i];
    floatX *d_resid = upload<floatX>(resid);
    cudaCheck(cudaMemset(d_out, 0xFF, sizeof(floatX) * out.size()));
    Gemm g = matmul_forward_gemm(d_out, d_inp, d_w, N, C, OC);
    g.C_in = d_resid, g.beta = 1.0f;
    matmul_gemm(mm, &g, 0);
    check_accumulate("forward + residual (C_in)", download(d_out, out.size()), out_res, out);
    check("residual unchanged", download(d_resid, out.size()), to_double(resid), 0.0, 0.0);
    cudaCheck(cudaFree(d_inp_base)), cudaCheck(cudaFree(d_dinp_base)), cudaCheck(cudaFree(d_w));
    cudaCheck(cudaFree(d_dout)), cudaCheck(cudaFree(d_dw)), cudaCheck(cudaFree(d_out)), cudaCheck(cudaFree(d_resid));
}

// A strided batch of `count` weight gradients that share their input (Grass's q, k and v): dweight_i [OC, C] +=
// dout_i^T @ inp, inp given once (stride 0), dout_i and dweight_i a stride apart with gaps between them, which the
// product must leave as they were.
static void validate_batch(Matmul *mm, int N, int C, int OC, int count) {
    printf("  batch of %d: N %d, C %d, OC %d, the input shared\n", count, N, C, OC);
    size_t s_dout = (size_t)N * OC + 24, s_dw = (size_t)OC * C + 8;  // element strides, 16-byte multiples in bf16
    std::vector<float> inp = random_normal((size_t)N * C, 0, 1, 136), dout = random_normal(s_dout * count, 0, 1, 137);
    floatX *d_inp = upload<floatX>(inp), *d_dout = upload<floatX>(dout), *d_dw = upload<floatX>(random_normal(s_dw * count, 0, 1, 138));
    std::vector<float> dw0 = download(d_dw, s_dw * count);  // as stored (floatX)
    std::vector<double> want = to_double(dw0), product(s_dw * count, 0.0), gaps, gaps_want;
    std::vector<double> ind = to_double(inp), w_unused((size_t)OC * C, 0.0), dinp_unused((size_t)N * C);
    for (int i = 0; i < count; i++) {
        std::vector<double> d(dout.begin() + i * s_dout, dout.begin() + i * s_dout + (size_t)N * OC), dw((size_t)OC * C, 0.0);
        matmul_backward_ref(dinp_unused.data(), dw.data(), d.data(), ind.data(), w_unused.data(), N, C, OC);
        for (size_t e = 0; e < dw.size(); e++) want[i * s_dw + e] += dw[e], product[i * s_dw + e] = dw[e];
    }
    Gemm g = matmul_dweight_gemm(d_dw, d_dout, d_inp, N, C, OC);
    g.batch = count, g.stride_b = (long long)s_dout, g.stride_c = (long long)s_dw;
    matmul_gemm(mm, &g, 0);
    std::vector<float> got = download(d_dw, want.size());
    check_accumulate("dweight (+=), batched", got, want, product);
    for (int i = 0; i < count; i++)
        for (size_t e = (size_t)OC * C; e < s_dw; e++) gaps.push_back(got[i * s_dw + e]), gaps_want.push_back(dw0[i * s_dw + e]);
    check("gaps unchanged", std::vector<float>(gaps.begin(), gaps.end()), gaps_want, 0.0, 0.0);
    cudaCheck(cudaFree(d_inp)), cudaCheck(cudaFree(d_dout)), cudaCheck(cudaFree(d_dw));
}

static void bench(Matmul *mm, const char *what, int N, int C, int OC) {
    floatX *d_inp = upload<floatX>(random_normal((size_t)N * C, 0, 1, 140)), *d_w = upload<floatX>(random_normal((size_t)OC * C, 0, 0.02, 141));
    floatX *d_out = device_alloc<floatX>((size_t)N * OC), *d_dinp = device_alloc<floatX>((size_t)N * C);
    floatX *d_dw = device_alloc<floatX>((size_t)OC * C);
    cudaCheck(cudaMemset(d_out, 0, sizeof(floatX) * N * OC)), cudaCheck(cudaMemset(d_dw, 0, sizeof(floatX) * OC * C));
    double flops = 2.0 * N * C * OC;
    float ms_f = time_ms(10, [&] { matmul_forward(mm, d_out, d_inp, d_w, N, C, OC, 0); });
    float ms_b = time_ms(10, [&] { matmul_backward(mm, d_dinp, d_dw, d_out, d_inp, d_w, N, C, OC, 0, 0); });
    printf("  %-22s N %5d C %5d OC %5d: forward %7.3f ms %6.1f TFLOPS, backward %7.3f ms %6.1f TFLOPS\n", what, N, C, OC,
           ms_f, flops / ms_f / 1e9, ms_b, 2 * flops / ms_b / 1e9);
    cudaCheck(cudaFree(d_inp)), cudaCheck(cudaFree(d_w)), cudaCheck(cudaFree(d_out)), cudaCheck(cudaFree(d_dinp));
    cudaCheck(cudaFree(d_dw));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, "1 cuBLASLt (heuristic, the default), 2 cublasGemmEx fallback", selftest);
    Matmul mm;
    matmul_init(&mm, (size_t)32 << 20);
    for (int version = 1; version <= 2; version++) {
        if (!dev_version_selected(&opt, version)) continue;
        mm.use_cublas = version == 2;
        const char *name = version == 1 ? "cuBLASLt" : "cublasGemmEx fallback";
        if (opt.validate) {
            printf("matmul version %d (%s): validation against the CPU reference\n", version, name);
            validate(&mm, 64, 2048, 5461, 0);  // 1b gate/up: odd OC
            validate(&mm, 37, 5461, 256, 0);   // 1b down (OC cut to keep the CPU reference short): odd C
            validate(&mm, 100, 172, 64, 0);    // the test preset's ffn
            validate(&mm, 33, 256, 512, 1);    // misaligned inp and dinp
            validate(&mm, 3, 512, 32000, 0);   // lm_head
            validate_batch(&mm, 45, 64, 172, 3);  // Grass's q, k, v (here floatX outputs)
        }
        if (opt.bench) {
            printf("matmul version %d (%s): timing, 1b preset shapes, 16K tokens\n", version, name);
            int N = 16 * 1024;
            bench(&mm, "q/k/v/o", N, 2048, 2048);
            bench(&mm, "gate/up (ffn 5461)", N, 2048, 5461);
            bench(&mm, "gate/up (padded 5464)", N, 2048, 5464);
            bench(&mm, "down (ffn 5461)", N, 5461, 2048);
            bench(&mm, "down (padded 5464)", N, 5464, 2048);
            bench(&mm, "lm_head chunk", 4096, 2048, 32000);
        }
    }
    matmul_free(&mm);
    return dev_finish();
}
