/*
 * dev/cuda/rmsnorm.cu: RMSNorm forward and backward (kernels/rmsnorm.cuh) against the CPU reference, on
 * several sizes (C odd and not a multiple of the block, N below and above the 512 dweight blocks), then
 * timed with the achieved bandwidth.
 *   make -C dev/cuda && dev/cuda/bin/rmsnorm [--version 1|2] [--no-bench] [--cpu-selftest]
 */
#include "dev_common.cuh"
#include "../../kernels/rmsnorm.cuh"

// The CPU reference: rmsnorm_forward/rmsnorm_backward of train_llama.c, in any precision R.
template <typename R>
static void rmsnorm_forward_ref(R *out, R *rstd, const R *x, const R *w, int N, int C, R eps) {
    for (int n = 0; n < N; n++) {
        const R *xn = x + (size_t)n * C;
        R ss = 0;
        for (int i = 0; i < C; i++) ss += xn[i] * xn[i];
        R r = 1 / sqrt(ss / C + eps);
        rstd[n] = r;
        for (int i = 0; i < C; i++) out[(size_t)n * C + i] = xn[i] * r * w[i];
    }
}

template <typename R>
static void rmsnorm_backward_ref(R *dx, R *dw, const R *dout, const R *x, const R *w, const R *rstd, int N, int C) {
    // dx [N, C] +=, dw [C] +=
    for (int n = 0; n < N; n++) {
        const R *xn = x + (size_t)n * C, *gn = dout + (size_t)n * C;
        R r = rstd[n], dot = 0;
        for (int i = 0; i < C; i++) dot += gn[i] * w[i] * xn[i];
        R c = dot * r * r * r / C;
        for (int i = 0; i < C; i++) dx[(size_t)n * C + i] += gn[i] * w[i] * r - xn[i] * c;
    }
    for (int i = 0; i < C; i++) {
        R acc = 0;
        for (int n = 0; n < N; n++) acc += dout[(size_t)n * C + i] * x[(size_t)n * C + i] * rstd[n];
        dw[i] += acc;
    }
}

// The reference backward against finite differences of the reference forward, for L = sum(out * dout).
static void selftest(void) {
    const int N = 3, C = 7;
    const double eps = 1e-6;
    printf("rmsnorm CPU reference self-test: backward vs finite differences, N %d, C %d\n", N, C);
    std::vector<double> x = to_double(random_normal(N * C, 0, 1, 1)), w = to_double(random_normal(C, 1, 0.3, 2));
    std::vector<double> dout = to_double(random_normal(N * C, 0, 1, 3));
    std::vector<double> out(N * C), rstd(N), dx(N * C, 0.0), dw(C, 0.0);
    auto loss = [&]() {
        rmsnorm_forward_ref(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
        double s = 0;
        for (int i = 0; i < N * C; i++) s += out[i] * dout[i];
        return s;
    };
    std::vector<double> fd_x = finite_differences(x, loss), fd_w = finite_differences(w, loss);
    loss();
    rmsnorm_backward_ref(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
    check_doubles("dinp", dx, fd_x, 1e-6, 1e-8);
    check_doubles("dweight", dw, fd_w, 1e-6, 1e-8);
}

static void validate(int N, int C) {
    const float eps = 1e-6f;
    printf("  N %d, C %d\n", N, C);
    std::vector<float> x = random_normal((size_t)N * C, 0, 1, 10), w = random_normal(C, 1, 0.1, 11);
    std::vector<float> dout = random_normal((size_t)N * C, 0, 1, 12);
    std::vector<float> dx0 = random_normal((size_t)N * C, 0, 1, 13), dw0 = random_normal(C, 0, 1, 14);  // += targets
    std::vector<double> out(x.size()), rstd(N), dx = to_double(dx0), dw = to_double(dw0);
    std::vector<double> xd = to_double(x), wd = to_double(w), doutd = to_double(dout);
    rmsnorm_forward_ref(out.data(), rstd.data(), xd.data(), wd.data(), N, C, (double)eps);
    rmsnorm_backward_ref(dx.data(), dw.data(), doutd.data(), xd.data(), wd.data(), rstd.data(), N, C);

    floatX *d_x = upload<floatX>(x), *d_w = upload<floatX>(w), *d_dout = upload<floatX>(dout);
    floatX *d_dx = upload<floatX>(dx0), *d_dw = upload<floatX>(dw0), *d_out = device_alloc<floatX>(x.size());
    float *d_rstd = device_alloc<float>(N), *d_scratch = device_alloc<float>(rmsnorm_backward_scratch_floats(N, C));
    rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, eps, 0);
    rmsnorm_backward(d_dx, d_dw, d_scratch, d_dout, d_x, d_w, d_rstd, N, C, 0);
    cudaCheck(cudaDeviceSynchronize());
    // out and the gradients are rounded once to floatX after fp32 math; rstd is fp32
    check("out", download(d_out, x.size()), out, tolerance(1), tolerance(1) * rms(out));
    check("rstd", download(d_rstd, N), rstd, FP32_SUM, 0.0);
    check("dinp (+=)", download(d_dx, x.size()), dx, tolerance(1), tolerance(1) * rms(dx));
    check("dweight (+=)", download(d_dw, C), dw, tolerance(1), tolerance(1) * rms(dw));
    // determinism: the same call again gives the same bits
    std::vector<float> first = download(d_dw, C);
    upload_to(d_dw, dw0);
    rmsnorm_backward(d_dx, d_dw, d_scratch, d_dout, d_x, d_w, d_rstd, N, C, 0);
    std::vector<float> second = download(d_dw, C);
    if (memcmp(first.data(), second.data(), sizeof(float) * C)) {
        printf("    dweight differs between two identical runs: FAIL\n");
        dev_failures++;
    }
    cudaCheck(cudaFree(d_x)), cudaCheck(cudaFree(d_w)), cudaCheck(cudaFree(d_dout)), cudaCheck(cudaFree(d_dx));
    cudaCheck(cudaFree(d_dw)), cudaCheck(cudaFree(d_out)), cudaCheck(cudaFree(d_rstd)), cudaCheck(cudaFree(d_scratch));
}

static void bench(int N, int C) {
    std::vector<float> x = random_normal((size_t)N * C, 0, 1, 20), w = random_normal(C, 1, 0.1, 21);
    floatX *d_x = upload<floatX>(x), *d_w = upload<floatX>(w), *d_out = device_alloc<floatX>(x.size());
    floatX *d_dx = upload<floatX>(x), *d_dw = upload<floatX>(w);
    float *d_rstd = device_alloc<float>(N), *d_scratch = device_alloc<float>(rmsnorm_backward_scratch_floats(N, C));
    double bytes_f = 2.0 * sizeof(floatX) * N * C;         // read x, write out
    double bytes_b = 4.0 * sizeof(floatX) * N * C;         // read x, dout, dinp; write dinp
    float ms_f = time_ms(20, [&] { rmsnorm_forward(d_out, d_rstd, d_x, d_w, N, C, 1e-6f, 0); });
    float ms_b = time_ms(20, [&] { rmsnorm_backward(d_dx, d_dw, d_scratch, d_out, d_x, d_w, d_rstd, N, C, 0); });
    printf("  N %d, C %d: forward %.3f ms (%.0f GB/s), backward %.3f ms (%.0f GB/s)\n", N, C, ms_f, bytes_f / ms_f / 1e6,
           ms_b, bytes_b / ms_b / 1e6);
    cudaCheck(cudaFree(d_x)), cudaCheck(cudaFree(d_w)), cudaCheck(cudaFree(d_out)), cudaCheck(cudaFree(d_dx));
    cudaCheck(cudaFree(d_dw)), cudaCheck(cudaFree(d_rstd)), cudaCheck(cudaFree(d_scratch));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, VEC_VERSIONS, selftest);
    if (opt.validate) {
        printf("rmsnorm: validation against the CPU reference\n");
        for_each_vec_version(&opt, [] {
            validate(1, 64);
            validate(37, 5461);
            validate(700, 1376);
            validate(4 * 256, 2048);
            validate(5003, 328);  // 9 or 10 rows a backward block: a whole group of 8 (a row per warp) and a part one
        });
    }
    if (opt.bench) {
        printf("rmsnorm: timing\n");
        for_each_vec_version(&opt, [] {
            bench(16 * 1024, 2048);
            bench(8 * 1024, 5120);
        });
    }
    return dev_finish();
}
