/*
 * dev/cuda/rope.cu: RoPE forward and backward (kernels/rope.cuh, HF rotate_half layout) against the CPU
 * reference, out of place and in place, for head dims 16 to 128 and odd T, then timed.
 *   make -C dev/cuda && dev/cuda/bin/rope [--version 1|2] [--no-bench] [--cpu-selftest]
 */
#include "dev_common.cuh"
#include "../../kernels/rope.cuh"

// The CPU reference: rope_apply of train_llama.c in precision R, in place on x [N, nh, hd].
template <typename R>
static void rope_apply_ref(R *x, const float *cosb, const float *sinb, int N, int T, int nh, int hd, R sign) {
    int half = hd / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cosb + (size_t)(n % T) * half, *s = sinb + (size_t)(n % T) * half;
        for (int h = 0; h < nh; h++) {
            R *v = x + ((size_t)n * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                R a = v[i], b = v[i + half], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + half] = b * c[i] + a * si;
            }
        }
    }
}

// A config whose heads are hd wide, RoPE base theta, without scaling: what the tables depend on.
static LlamaConfig rope_config(int hd, float theta) {
    LlamaConfig c;
    memset(&c, 0, sizeof(c));
    c.dim = hd, c.n_heads = 1, c.rope_theta = theta;
    return c;
}

// The tables against the formula in double; the backward is the inverse and the transpose of the forward.
static void selftest(void) {
    const int T = 4096, hd = 128, N = 2 * 5, nh = 3;
    const double theta = 10000.0;
    printf("rope CPU reference self-test\n");
    std::vector<float> cosb((size_t)T * hd / 2), sinb((size_t)T * hd / 2);
    LlamaConfig rc = rope_config(hd, (float)theta);
    llama_rope_tables(&rc, cosb.data(), sinb.data(), T);
    std::vector<double> cos_exact(cosb.size()), sin_exact(sinb.size());
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hd / 2; i++) {
            double angle = t / pow(theta, 2.0 * i / hd);
            cos_exact[(size_t)t * hd / 2 + i] = cos(angle), sin_exact[(size_t)t * hd / 2 + i] = sin(angle);
        }
    // the fp32 angle t * inv_freq is off by up to ~t 2^-24 relative (HF computes it the same way)
    check_doubles("cos table", to_double(cosb), cos_exact, 0.0, 4.0 * T * 5.96e-8);
    check_doubles("sin table", to_double(sinb), sin_exact, 0.0, 4.0 * T * 5.96e-8);

    std::vector<double> x = to_double(random_normal((size_t)N * nh * hd, 0, 1, 1));
    std::vector<double> y = to_double(random_normal(x.size(), 0, 1, 2)), rx = x, rty = y;
    rope_apply_ref(rx.data(), cosb.data(), sinb.data(), N, 5, nh, hd, 1.0);
    rope_apply_ref(rty.data(), cosb.data(), sinb.data(), N, 5, nh, hd, -1.0);
    double a = 0, b = 0;  // <R x, y> = <x, R^T y>
    for (size_t i = 0; i < x.size(); i++) a += rx[i] * y[i], b += x[i] * rty[i];
    check_doubles("<R x, y> = <x, R^T y>", {a}, {b}, 1e-12, 1e-12);
    rope_apply_ref(rx.data(), cosb.data(), sinb.data(), N, 5, nh, hd, -1.0);
    check_doubles("R^T R x = x", rx, x, 1e-6, 1e-6);  // the fp32 tables satisfy cos^2 + sin^2 = 1 to ~1e-7
}

static void validate(int B, int T, int nh, int hd) {
    int N = B * T;
    size_t n = (size_t)N * nh * hd;
    printf("  B %d, T %d, heads %d, hd %d\n", B, T, nh, hd);
    std::vector<float> cosb((size_t)T * hd / 2), sinb((size_t)T * hd / 2);
    LlamaConfig rc = rope_config(hd, 10000.0f);
    llama_rope_tables(&rc, cosb.data(), sinb.data(), T);
    std::vector<float> x = random_normal(n, 0, 1, 30), dout = random_normal(n, 0, 1, 31);
    std::vector<double> out = to_double(x), dinp = to_double(dout);
    rope_apply_ref(out.data(), cosb.data(), sinb.data(), N, T, nh, hd, 1.0);
    rope_apply_ref(dinp.data(), cosb.data(), sinb.data(), N, T, nh, hd, -1.0);

    float *d_cos = device_alloc<float>(cosb.size()), *d_sin = device_alloc<float>(sinb.size());
    rope_tables_init(d_cos, d_sin, &rc, T);
    std::vector<float> cos_gpu = download(d_cos, cosb.size());
    if (memcmp(cos_gpu.data(), cosb.data(), sizeof(float) * cosb.size())) {
        printf("    rope_tables_init differs from llama_rope_tables: FAIL\n");
        dev_failures++;
    }
    floatX *d_x = upload<floatX>(x), *d_out = device_alloc<floatX>(n), *d_dout = upload<floatX>(dout);
    rope_forward(d_out, d_x, d_cos, d_sin, N, T, nh, hd, 0);
    check("forward", download(d_out, n), out, tolerance(1), tolerance(1) * rms(out));
    rope_forward(d_x, d_x, d_cos, d_sin, N, T, nh, hd, 0);
    check("forward in place", download(d_x, n), out, tolerance(1), tolerance(1) * rms(out));
    rope_backward(d_dout, d_dout, d_cos, d_sin, N, T, nh, hd, 0);
    check("backward in place", download(d_dout, n), dinp, tolerance(1), tolerance(1) * rms(dinp));
    cudaCheck(cudaFree(d_cos)), cudaCheck(cudaFree(d_sin)), cudaCheck(cudaFree(d_x)), cudaCheck(cudaFree(d_out));
    cudaCheck(cudaFree(d_dout));
}

static void bench(int B, int T, int nh, int hd) {
    int N = B * T;
    size_t n = (size_t)N * nh * hd;
    float *d_cos = device_alloc<float>((size_t)T * hd / 2), *d_sin = device_alloc<float>((size_t)T * hd / 2);
    LlamaConfig rc = rope_config(hd, 10000.0f);
    rope_tables_init(d_cos, d_sin, &rc, T);
    floatX *d_x = upload<floatX>(random_normal(n, 0, 1, 40));
    float ms = time_ms(20, [&] { rope_forward(d_x, d_x, d_cos, d_sin, N, T, nh, hd, 0); });
    printf("  B %d, T %d, heads %d, hd %d: %.3f ms (%.0f GB/s)\n", B, T, nh, hd, ms, 2.0 * sizeof(floatX) * n / ms / 1e6);
    cudaCheck(cudaFree(d_cos)), cudaCheck(cudaFree(d_sin)), cudaCheck(cudaFree(d_x));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, VEC_VERSIONS, selftest);
    if (opt.validate) {
        printf("rope: validation against the CPU reference\n");
        for_each_vec_version(&opt, [] {
            validate(2, 37, 3, 16);
            validate(3, 100, 5, 64);
            validate(1, 1000, 4, 128);
            validate(2, 64, 2, 96);
            validate(2, 33, 3, 20);  // 10 pairs per head: one at a time in both versions
        });
    }
    if (opt.bench) {
        printf("rope: timing (q of the 1b preset)\n");
        for_each_vec_version(&opt, [] { bench(16, 1024, 32, 64); });
    }
    return dev_finish();
}
