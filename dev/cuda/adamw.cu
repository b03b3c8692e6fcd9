/*
 * dev/cuda/adamw.cu: the AdamW update (kernels/adamw.cuh) in its four variants (fp32 master weights or
 * stochastically rounded floatX weights; fp32 or bf16 moments) against the CPU reference over several
 * steps, the stochastic rounding's unbiasedness on the GPU, the global norm and the scale kernel, then
 * timed.
 *   make -C dev/cuda && dev/cuda/bin/adamw [--version 1|2] [--no-bench] [--cpu-selftest]
 */
#include "dev_common.cuh"
#include "../../kernels/adamw.cuh"

// bf16 spacing relative to the value: a stochastic rounding moves a value by less than one spacing,
// at most 2^-7 of it.
#define BF16_SPACING 7.8125e-3

// The CPU reference: adamw_update of train_llama.c in precision R, t = 1-based step.
template <typename R>
static void adamw_update_ref(R *p, const R *g, R *mom, R *var, size_t n, R lr, R beta1, R beta2, R eps, R wd, int t) {
    R bc1 = 1 - pow(beta1, (R)t), bc2_sqrt = sqrt(1 - pow(beta2, (R)t));
    R step_size = lr / bc1, decay = 1 - lr * wd;
    for (size_t i = 0; i < n; i++) {
        mom[i] = beta1 * mom[i] + (1 - beta1) * g[i];
        var[i] = beta2 * var[i] + (1 - beta2) * g[i] * g[i];
        p[i] = p[i] * decay - step_size * mom[i] / (sqrt(var[i]) / bc2_sqrt + eps);
    }
}

static void selftest(void) {
    printf("adamw CPU self-test: the reference against torch's formulation, and stochastic rounding on the host\n");
    // torch: p -= lr wd p; p -= lr * (m / bc1) / (sqrt(v / bc2) + eps), algebraically the reference's form
    const size_t n = 50;
    const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    std::vector<double> p = to_double(random_normal(n, 0, 1, 1)), m(n, 0.0), v(n, 0.0), p2 = p, m2 = m, v2 = v;
    for (int t = 1; t <= 3; t++) {
        std::vector<double> g = to_double(random_normal(n, 0, 1, 10 + t));
        adamw_update_ref(p.data(), g.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd, t);
        for (size_t i = 0; i < n; i++) {
            p2[i] -= lr * wd * p2[i];
            m2[i] = b1 * m2[i] + (1 - b1) * g[i];
            v2[i] = b2 * v2[i] + (1 - b2) * g[i] * g[i];
            p2[i] -= lr * (m2[i] / (1 - pow(b1, t))) / (sqrt(v2[i] / (1 - pow(b2, t))) + eps);
        }
    }
    check_doubles("3 steps vs torch's form", p, p2, 1e-12, 1e-12);

    // stochastic rounding: a neighbour, deterministic, and unbiased (the mean of many roundings is x)
    const float xs[] = {1.0f, 1.0f + 1e-3f, -3.14159f, 1e-30f, 65504.3f, -2.5e-3f};
    const int draws = 200000;
    int ok = 1;
    for (float x : xs) {
        float lo, hi;
        bf16_neighbours(x, &lo, &hi);
        double sum = 0.0;
        for (int i = 0; i < draws; i++) {
            float r = __bfloat162float(bf16_round_stochastic(x, random_u32(42, i)));
            ok &= r == lo || r == hi;
            ok &= r == __bfloat162float(bf16_round_stochastic(x, random_u32(42, i)));
            sum += r;
        }
        // the mean of `draws` roundings of x has a standard deviation below (hi - lo) / (2 sqrt(draws)); 6 sigma
        double mean_err = fabs(sum / draws - x), bound = 6.0 * (hi - lo) / (2.0 * sqrt((double)draws)) + 1e-12 * fabs(x);
        ok &= mean_err <= bound;
        printf("    x % .7e: neighbours % .7e % .7e, |mean - x| %.2e (bound %.2e)\n", x, lo, hi, mean_err, bound);
    }
    ok &= isinf(__bfloat162float(bf16_round_stochastic(INFINITY, 0xFFFFu)));
    ok &= isnan(__bfloat162float(bf16_round_stochastic(NAN, 0xFFFFu)));
    printf("    %-26s %s\n", "stochastic rounding", ok ? "ok" : "FAIL");
    dev_failures += !ok;
}

template <typename MomT> static void validate(size_t n, int master) {
    const int steps = 3;
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, grad_scale = 0.5f;
    printf("  n %zu, %s, %s moments\n", n, master ? "fp32 master weights" : "floatX weights, stochastic rounding",
           sizeof(MomT) == 4 ? "fp32" : "bf16");
    std::vector<float> p0 = random_normal(n, 0, 0.5, 90);
    std::vector<double> p = to_double(p0), m(n, 0.0), v(n, 0.0);
    floatX *d_p = upload<floatX>(p0), *d_g = device_alloc<floatX>(n);
    float *d_master = master ? upload<float>(p0) : NULL;
    MomT *d_m = device_alloc<MomT>(n), *d_v = device_alloc<MomT>(n);
    cudaCheck(cudaMemset(d_m, 0, sizeof(MomT) * n));
    cudaCheck(cudaMemset(d_v, 0, sizeof(MomT) * n));
    for (int t = 1; t <= steps; t++) {
        std::vector<float> g = random_normal(n, 0, 1, 100 + t);
        std::vector<double> gs(n);
        for (size_t i = 0; i < n; i++) gs[i] = (double)g[i] * grad_scale;
        adamw_update_ref(p.data(), gs.data(), m.data(), v.data(), n, (double)lr, (double)b1, (double)b2, (double)eps,
                         (double)wd, t);
        upload_to(d_g, g);
        AdamWParams hp = {lr, b1, b2, eps, wd, grad_scale, t, 1000u + t};
        adamw_update(d_p, d_master, d_g, d_m, d_v, n, &hp, 0);
    }
    // fp32 moments: fp32 arithmetic. bf16 moments: each step's stochastic rounding moves them by less than one
    // spacing, so after `steps` steps they are within steps spacings.
    double mom_tol = sizeof(MomT) == 4 ? FP32_SUM : steps * BF16_SPACING;
    check("m", download(d_m, n), m, mom_tol, mom_tol * rms(m));
    check("v", download(d_v, n), v, mom_tol, mom_tol * rms(v));
    // A step moves a weight by at most lr |m^| / sqrt(v^) <= lr (Cauchy-Schwarz over the moments' weights,
    // for these betas), so on the way a weight was within `reach` of its final value: roundings made then
    // are relative to values up to |p| + reach. The moments' error changes each step by mom_tol of itself.
    double reach = 2.0 * steps * lr, step_err = steps * lr * mom_tol;
    if (master) {
        check("master", download(d_master, n), p, FP32_SUM, FP32_SUM * reach + step_err);
        check("params (master rounded)", download(d_p, n), p, tolerance(1), FP32_SUM * reach + step_err);
    } else {
        // floatX weights: one stochastic rounding per step, each by less than one spacing (exact in fp32)
        double sr = sizeof(floatX) == 4 ? FP32_SUM : steps * BF16_SPACING;
        check("params (stochastic)", download(d_p, n), p, sr, sr * reach + step_err);
    }
    cudaCheck(cudaFree(d_p)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_m)), cudaCheck(cudaFree(d_v));
    if (d_master) cudaCheck(cudaFree(d_master));
}

// Updates of 0.3 of a bf16 spacing: rounding to nearest would drop every one of them; stochastic rounding
// must move 30% of the weights down one spacing, so that the mean follows the exact update. Also checks
// that the same seed gives the same bits.
static void validate_unbiased(size_t n) {
    printf("  n %zu: stochastic rounding of updates smaller than half a bf16 spacing\n", n);
    const float spacing = 1.0f / 128.0f, lr = 0.3f * spacing;  // bf16 spacing in [1, 2)
    std::vector<float> ones(n, 1.0f), p0(n, 1.5f);
    floatX *d_p = upload<floatX>(p0), *d_g = upload<floatX>(ones);
    float *d_m = device_alloc<float>(n), *d_v = device_alloc<float>(n);
    cudaCheck(cudaMemset(d_m, 0, sizeof(float) * n)), cudaCheck(cudaMemset(d_v, 0, sizeof(float) * n));
    // first step: m / (sqrt(v) + eps) = 1 after bias correction, so every weight becomes 1.5 - lr exactly
    AdamWParams hp = {lr, 0.9f, 0.95f, 0.0f, 0.0f, 1.0f, 1, 7};
    adamw_update(d_p, (float *)NULL, d_g, d_m, d_v, n, &hp, 0);
    std::vector<float> first = download(d_p, n);
    double mean = 0.0;
    for (float x : first) mean += x;
    mean /= n;
    double want = 1.5 - (double)lr;
    // each weight is 1.5 - spacing with probability 0.3: the mean's standard deviation is sqrt(0.21 / n) spacings
    double bound = sizeof(floatX) == 4 ? 1e-6 : 6.0 * sqrt(0.21 / n) * spacing;
    int ok = fabs(mean - want) <= bound;
    printf("    %-26s mean %.8f want %.8f (bound %.1e)  %s\n", "unbiased", mean, want, bound, ok ? "ok" : "FAIL");
    dev_failures += !ok;
    upload_to(d_p, p0);
    cudaCheck(cudaMemset(d_m, 0, sizeof(float) * n)), cudaCheck(cudaMemset(d_v, 0, sizeof(float) * n));
    adamw_update(d_p, (float *)NULL, d_g, d_m, d_v, n, &hp, 0);
    ok = download(d_p, n) == first;
    printf("    %-26s %s\n", "same seed, same bits", ok ? "ok" : "FAIL");
    dev_failures += !ok;
    cudaCheck(cudaFree(d_p)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_m)), cudaCheck(cudaFree(d_v));
}

static void validate_norm(size_t n1, size_t n2) {
    printf("  global norm of a floatX tensor of %zu and an fp32 tensor of %zu; scale\n", n1, n2);
    std::vector<float> a = random_normal(n1, 0, 1, 110), b = random_normal(n2, 0, 2, 111);
    double want = 0.0;
    for (float x : a) want += (double)x * x;
    for (float x : b) want += (double)x * x;
    floatX *d_a = upload<floatX>(a);
    float *d_b = upload<float>(b), *d_out = device_alloc<float>(1);
    double *d_partials = device_alloc<double>(NORM_BLOCKS);
    global_norm_squared(d_partials, d_a, n1, 0, 0);
    global_norm_squared(d_partials, d_b, n2, 1, 0);
    global_norm_squared_finish(d_out, d_partials, 0);
    std::vector<float> got = download(d_out, 1);
    check("norm squared", got, {want}, 1e-6, 0.0);  // double sums, one rounding to fp32
    global_norm_squared(d_partials, d_a, n1, 0, 0);
    global_norm_squared(d_partials, d_b, n2, 1, 0);
    global_norm_squared_finish(d_out, d_partials, 0);
    int same = download(d_out, 1) == got;
    printf("    %-26s %s\n", "same bits twice", same ? "ok" : "FAIL");
    dev_failures += !same;
    scale_tensor(d_a, n1, 0.37f, 0);
    std::vector<double> scaled(n1);
    for (size_t i = 0; i < n1; i++) scaled[i] = a[i] * 0.37;
    check("scale", download(d_a, n1), scaled, tolerance(1), 0.0);
    cudaCheck(cudaFree(d_a)), cudaCheck(cudaFree(d_b)), cudaCheck(cudaFree(d_out)), cudaCheck(cudaFree(d_partials));
}

// n values: one block of 2^20 random values, repeated. The timing does not depend on the values, while drawing
// 2 x 256M normals for each version would take tens of seconds of host time.
static std::vector<float> random_repeated(size_t n, double std, uint64_t seed) {
    const size_t block = (size_t)1 << 20;
    std::vector<float> one = random_normal(block, 0, std, seed), x(n);
    for (size_t i = 0; i < n; i++) x[i] = one[i % block];
    return x;
}

static void bench(size_t n) {
    floatX *d_p = upload<floatX>(random_repeated(n, 0.02, 120)), *d_g = upload<floatX>(random_repeated(n, 1, 121));
    float *d_master = device_alloc<float>(n), *d_m = device_alloc<float>(n), *d_v = device_alloc<float>(n);
    __nv_bfloat16 *d_m16 = device_alloc<__nv_bfloat16>(n), *d_v16 = device_alloc<__nv_bfloat16>(n);
    double *d_partials = device_alloc<double>(NORM_BLOCKS);
    cudaCheck(cudaMemset(d_master, 0, sizeof(float) * n)), cudaCheck(cudaMemset(d_m, 0, sizeof(float) * n));
    cudaCheck(cudaMemset(d_v, 0, sizeof(float) * n)), cudaCheck(cudaMemset(d_m16, 0, 2 * n)), cudaCheck(cudaMemset(d_v16, 0, 2 * n));
    AdamWParams hp = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1, 1};
    double x = sizeof(floatX);
    float ms1 = time_ms(10, [&] { adamw_update(d_p, d_master, d_g, d_m, d_v, n, &hp, 0); });
    float ms2 = time_ms(10, [&] { adamw_update(d_p, (float *)NULL, d_g, d_m16, d_v16, n, &hp, 0); });
    float ms3 = time_ms(10, [&] { global_norm_squared(d_partials, d_g, n, 0, 0); });
    printf("  n %zu: master + fp32 moments %.3f ms (%.0f GB/s); stochastic + bf16 moments %.3f ms (%.0f GB/s); "
           "norm %.3f ms (%.0f GB/s)\n", n, ms1, n * (3 * x + 16) / ms1 / 1e6, ms2, n * (3 * x + 8) / ms2 / 1e6, ms3,
           n * x / ms3 / 1e6);
    cudaCheck(cudaFree(d_p)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_master)), cudaCheck(cudaFree(d_m));
    cudaCheck(cudaFree(d_v)), cudaCheck(cudaFree(d_m16)), cudaCheck(cudaFree(d_v16)), cudaCheck(cudaFree(d_partials));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, VEC_VERSIONS, selftest);
    if (opt.validate) {
        printf("adamw: validation against the CPU reference\n");
        for_each_vec_version(&opt, [] {  // sizes a multiple of 8, and odd ones
            validate<float>(100000, 1);
            validate<__nv_bfloat16>(100003, 1);
            validate<float>(100003, 0);
            validate<__nv_bfloat16>(100000, 0);
            validate<__nv_bfloat16>(77, 0);
            validate_unbiased(1 << 20);
            validate_norm(1000003, 5);
            validate_norm(1 << 20, 4096);
        });
    }
    if (opt.bench) {
        printf("adamw: timing\n");
        for_each_vec_version(&opt, [] { bench((size_t)256 << 20); });
    }
    return dev_finish();
}
