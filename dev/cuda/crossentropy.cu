/*
 * dev/cuda/crossentropy.cu: the fused lm_head + cross-entropy (kernels/crossentropy.cuh) against the CPU
 * reference: per-token losses, dinp and dweight (+=), with chunk sizes that leave a partial last chunk, and
 * the evaluation mode (losses only), then timed.
 *   make -C dev/cuda && dev/cuda/bin/crossentropy [--version 1|2] [--no-bench] [--cpu-selftest]
 */
#include "dev_common.cuh"
#include "../../kernels/crossentropy.cuh"

// The CPU reference in precision R: train_llama.c's lm_head product, crossentropy_forward/backward and
// matmul_backward, unfused. losses [N]; dinp [N, C] =; dweight [V, C] +=; returns the largest |logit|.
template <typename R>
static R crossentropy_ref(R *losses, R *dinp, R *dweight, const R *inp, const R *weight, const int *targets, int N, int C,
                          int V, R dloss) {
    std::vector<R> z(V);
    R zmax = 0;
    for (int n = 0; n < N; n++) {
        const R *x = inp + (size_t)n * C;
        for (int v = 0; v < V; v++) {
            R acc = 0;
            for (int c = 0; c < C; c++) acc += x[c] * weight[(size_t)v * C + c];
            z[v] = acc;
            zmax = fmax(zmax, fabs(acc));
        }
        R mx = z[0], sum = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < V; v++) sum += exp(z[v] - mx);
        losses[n] = -log(exp(z[targets[n]] - mx) / sum);
        for (int c = 0; c < C; c++) dinp[(size_t)n * C + c] = 0;
        for (int v = 0; v < V; v++) {
            R d = (exp(z[v] - mx) / sum - (v == targets[n])) * dloss;  // d(dloss * loss) / d(logit)
            for (int c = 0; c < C; c++) {
                dinp[(size_t)n * C + c] += d * weight[(size_t)v * C + c];
                dweight[(size_t)v * C + c] += d * x[c];
            }
        }
    }
    return zmax;
}

// The reference gradients against finite differences of dloss * (sum of the losses).
static void selftest(void) {
    const int N = 4, C = 5, V = 7;
    const double dloss = 0.25;
    printf("crossentropy CPU reference self-test: gradients vs finite differences\n");
    std::vector<double> inp = to_double(random_normal((size_t)N * C, 0, 1, 1)), w = to_double(random_normal((size_t)V * C, 0, 1, 2));
    std::vector<int> targets = random_ints(N, V, 3);
    std::vector<double> losses(N), dinp((size_t)N * C), dw((size_t)V * C, 0.0), scratch_dinp(dinp), scratch_dw(dw);
    auto loss = [&]() {
        crossentropy_ref(losses.data(), scratch_dinp.data(), scratch_dw.data(), inp.data(), w.data(), targets.data(), N, C, V, dloss);
        double s = 0;
        for (double l : losses) s += dloss * l;
        return s;
    };
    std::vector<double> fd_inp = finite_differences(inp, loss), fd_w = finite_differences(w, loss);
    crossentropy_ref(losses.data(), dinp.data(), dw.data(), inp.data(), w.data(), targets.data(), N, C, V, dloss);
    check_doubles("dinp", dinp, fd_inp, 1e-6, 1e-8);
    check_doubles("dweight", dw, fd_w, 1e-6, 1e-8);
}

static void validate(Matmul *mm, int N, int C, int V, int chunk) {
    printf("  N %d, C %d, V %d, chunks of %d rows\n", N, C, V, chunk);
    const float dloss = 1.0f / N;
    std::vector<float> inp = random_normal((size_t)N * C, 0, 1, 150), w = random_normal((size_t)V * C, 0, 0.1, 151);
    std::vector<float> dw0 = random_normal((size_t)V * C, 0, 1e-3, 152);  // += target
    std::vector<int> targets = random_ints(N, V, 153);
    std::vector<double> losses(N), dinp((size_t)N * C), dw = to_double(dw0);
    double zmax = crossentropy_ref(losses.data(), dinp.data(), dw.data(), to_double(inp).data(), to_double(w).data(),
                                   targets.data(), N, C, V, (double)dloss);

    floatX *d_inp = upload<floatX>(inp), *d_w = upload<floatX>(w), *d_dw = upload<floatX>(dw0);
    floatX *d_dinp = device_alloc<floatX>(inp.size()), *d_logits = device_alloc<floatX>((size_t)chunk * V);
    float *d_losses = device_alloc<float>(N);
    int *d_targets = upload_ints(targets);
    crossentropy_forward_backward(mm, d_losses, d_dinp, d_dw, d_logits, chunk, d_inp, d_w, d_targets, N, C, V, dloss, 0);
    // The GEMM rounds each logit to floatX, off by up to z_err = ROUNDING |z|max: that moves lse - z_target by
    // up to 2 z_err and every probability by a factor within exp(+-2 z_err). The gradients then go through
    // a rounding of dlogits, fp32 GEMMs and a rounding of the result; dweight also rounds once per chunk.
    double z_err = ROUNDING * zmax, chunks = ceil_div(N, chunk);
    check("losses", download(d_losses, N), losses, FP32_SUM, 2.0 * z_err + FP32_SUM);
    check("dinp", download(d_dinp, dinp.size()), dinp, tolerance(2) + 2 * z_err, (tolerance(2) + 2 * z_err) * rms(dinp));
    double tol_w = tolerance(1 + chunks) + 2 * z_err;
    check("dweight (+=)", download(d_dw, dw.size()), dw, tol_w, tol_w * rms(dw));
    cudaCheck(cudaMemset(d_losses, 0, sizeof(float) * N));
    crossentropy_forward_backward(mm, d_losses, NULL, NULL, d_logits, chunk, d_inp, d_w, d_targets, N, C, V, dloss, 0);
    check("losses (evaluation only)", download(d_losses, N), losses, FP32_SUM, 2.0 * z_err + FP32_SUM);
    cudaCheck(cudaFree(d_inp)), cudaCheck(cudaFree(d_w)), cudaCheck(cudaFree(d_dw)), cudaCheck(cudaFree(d_dinp));
    cudaCheck(cudaFree(d_logits)), cudaCheck(cudaFree(d_losses)), cudaCheck(cudaFree(d_targets));
}

static void bench(Matmul *mm, int N, int C, int V, int chunk) {
    floatX *d_inp = upload<floatX>(random_normal((size_t)N * C, 0, 1, 160)), *d_w = upload<floatX>(random_normal((size_t)V * C, 0, 0.02, 161));
    floatX *d_dw = device_alloc<floatX>((size_t)V * C), *d_dinp = device_alloc<floatX>((size_t)N * C);
    floatX *d_logits = device_alloc<floatX>((size_t)chunk * V);
    float *d_losses = device_alloc<float>(N);
    int *d_targets = upload_ints(random_ints(N, V, 162));
    cudaCheck(cudaMemset(d_dw, 0, sizeof(floatX) * V * C));
    float ms_train = time_ms(5, [&] {
        crossentropy_forward_backward(mm, d_losses, d_dinp, d_dw, d_logits, chunk, d_inp, d_w, d_targets, N, C, V, 1.0f / N, 0);
    });
    float ms_eval = time_ms(5, [&] {
        crossentropy_forward_backward(mm, d_losses, NULL, NULL, d_logits, chunk, d_inp, d_w, d_targets, N, C, V, 1.0f / N, 0);
    });
    double flops = 2.0 * N * C * V;
    printf("  N %d, C %d, V %d, chunk %d: training %.3f ms (%.1f TFLOPS), evaluation %.3f ms (%.1f TFLOPS)\n", N, C, V,
           chunk, ms_train, 3 * flops / ms_train / 1e9, ms_eval, flops / ms_eval / 1e9);
    cudaCheck(cudaFree(d_inp)), cudaCheck(cudaFree(d_w)), cudaCheck(cudaFree(d_dw)), cudaCheck(cudaFree(d_dinp));
    cudaCheck(cudaFree(d_logits)), cudaCheck(cudaFree(d_losses)), cudaCheck(cudaFree(d_targets));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, VEC_VERSIONS, selftest);
    Matmul mm;
    matmul_init(&mm, (size_t)32 << 20);
    if (opt.validate) {
        printf("crossentropy: validation against the CPU reference\n");
        for_each_vec_version(&opt, [&] {
            validate(&mm, 37, 64, 517, 16);
            validate(&mm, 200, 256, 32000, 96);
            validate(&mm, 64, 128, 1000, 64);
        });
    }
    if (opt.bench) {
        printf("crossentropy: timing (1b preset, 16K tokens)\n");
        for_each_vec_version(&opt, [&] { bench(&mm, 16 * 1024, 2048, 32000, 4096); });
    }
    matmul_free(&mm);
    return dev_finish();
}
