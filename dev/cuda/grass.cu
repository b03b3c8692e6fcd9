/*
 * dev/cuda/grass.cu: the device side of Grass (grass.cuh, docs/design.md §3) against the CPU reference: the compressed
 * gradient (the r selected, scaled columns of dY or X gathered, then one cuBLASLt product accumulating into the
 * fp32 g [r, E]) against the selected rows of a full gradient computed separately, on the CPU and by
 * grass_full_grad on the GPU; the refresh kernels (row/column norms, g from the selected rows of G); and the update
 * (subspace Adam, weight decay, the scatter W -= lr alpha P U with duplicate indices) with fp32 master weights or
 * stochastically rounded floatX weights and fp32 or bf16 moments, over several steps (a stochastic rounding must
 * give one of the two neighbours of the exact value, and be unbiased). Rows and columns sides, r < D and r = D,
 * selections from grass.h's selectors (sorted, with duplicates, rho not all 1), sizes that are not multiples of 8.
 * Then timed on the 1b preset's shapes.
 *   make -C dev/cuda && dev/cuda/bin/grass [--version 1|2] [--no-bench] [--cpu-selftest]
 */
#include <algorithm>
#include "dev_common.cuh"
#include "../../grass.cuh"

// bf16 spacing relative to the value: neighbouring bf16 values are at most 2^-7 of their size apart.
#define BF16_SPACING 7.8125e-3

// A few fp32 roundings in an elementwise formula, relative to the magnitude of the terms involved. The bias
// corrections 1 - b^t are computed in fp32 and cancel: powf's error (an ulp of b^t, 6e-8) relative to
// 1 - 0.999^2 = 2e-3 is 3e-5, which FP32_SUM (1e-4) covers, so the update's bounds use FP32_SUM throughout.
#define FP32_ELEMENTWISE FP32_SUM

// ----------------------------------------------------------------------------------------------------
// The CPU reference: the formulas of train_llama.c's Grass code (and grass.h), in precision R.
// W is m x n (out x in); dout = dY [N, m], inp = X [N, n]; a selection is sigma [r] (sorted), rho [r].

// The full gradient G [m, n] = dY^T X (train_llama.c's matmul_backward weight gradient into a zeroed buffer).
template <typename R> static void full_grad_ref(R *G, const R *dout, const R *inp, int N, int n, int m) {
    for (int a = 0; a < m; a++)
        for (int b = 0; b < n; b++) {
            R acc = 0;
            for (int t = 0; t < N; t++) acc += dout[(size_t)t * m + a] * inp[(size_t)t * n + b];
            G[(size_t)a * n + b] = acc;
        }
}

// train_llama.c's grass_compressed_grad: g [r, E] += rho_j * sum_t src[t, sigma_j] other[t, e], with src = dY and
// other = X (rows side) or src = X and other = dY (columns side). mag (when not NULL) gets the sum of the terms'
// magnitudes, sum_t |rho_j src[t, sigma_j] other[t, e]|, that the bounds are relative to.
template <typename R>
static void compressed_grad_ref(R *g, R *mag, const int *sigma, const float *rho, GrassShape sh, const R *dout, const R *inp,
                                int N, int n, int m) {
    const R *src = sh.rows ? dout : inp, *other = sh.rows ? inp : dout;
    int ld = sh.rows ? m : n;
    for (int j = 0; j < sh.r; j++)
        for (int e = 0; e < sh.E; e++) {
            R acc = 0, am = 0;
            for (int t = 0; t < N; t++) {
                R term = (R)rho[j] * src[(size_t)t * ld + sigma[j]] * other[(size_t)t * sh.E + e];
                acc += term;
                am += fabs(term);
            }
            g[(size_t)j * sh.E + e] += acc;
            if (mag) mag[(size_t)j * sh.E + e] = am;
        }
}

// The refresh's g from the full gradient (grass_refresh_matrix): g[j, e] += rho_j * (row or column sigma_j of G).
template <typename R> static void take_ref(R *g, const R *G, const int *sigma, const float *rho, GrassShape sh, int n) {
    for (int j = 0; j < sh.r; j++)
        for (int e = 0; e < sh.E; e++)
            g[(size_t)j * sh.E + e] += (R)rho[j] * (sh.rows ? G[(size_t)sigma[j] * n + e] : G[(size_t)e * n + sigma[j]]);
}

// grass.h's grass_norms: the squared norms of the rows (rows = 1) or columns of G [m, n], summed in index order.
template <typename R> static void norms_ref(R *s, const R *G, int m, int n, int rows) {
    int D = rows ? m : n, E = rows ? n : m;
    for (int i = 0; i < D; i++) {
        R acc = 0;
        for (int e = 0; e < E; e++) {
            R x = rows ? G[(size_t)i * n + e] : G[(size_t)e * n + i];
            acc += x * x;
        }
        s[i] = acc;
    }
}

// train_llama.c's grass_update: subspace Adam on g * grad_scale (the clipping coefficient, which the CPU trainer
// multiplies into g beforehand), g overwritten with U; weight decay of all of W; W -= lr alpha rho_j U[j] along
// row (rows side) or column sigma_j. t counts the steps since the refresh (1 at the refresh).
template <typename R>
static void update_ref(R *W, R *g, R *mom, R *var, const int *sigma, const float *rho, GrassShape sh, R beta1, R beta2, R eps,
                       R weight_decay, R lr, R alpha, R grad_scale, int t) {
    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)sh.D * sh.E;
    R bc1 = 1 - pow(beta1, (R)t), bc2 = 1 - pow(beta2, (R)t), decay = 1 - lr * weight_decay;
    for (size_t i = 0; i < cnt; i++) {
        R x = g[i] * grad_scale;
        mom[i] = beta1 * mom[i] + (1 - beta1) * x;
        var[i] = beta2 * var[i] + (1 - beta2) * x * x;
        g[i] = (mom[i] / bc1) / (sqrt(var[i] / bc2) + eps);
    }
    for (size_t i = 0; i < mn; i++) W[i] *= decay;
    R step = lr * alpha;
    int n = sh.rows ? sh.E : sh.D;  // W's row length
    for (int e = 0; e < sh.E; e++)
        for (int j = 0; j < sh.r; j++) {
            size_t w = sh.rows ? (size_t)sigma[j] * n + e : (size_t)e * n + sigma[j];
            W[w] -= step * (R)rho[j] * g[(size_t)j * sh.E + e];
        }
}

// ----------------------------------------------------------------------------------------------------
// Helpers

// The largest T value <= x and the smallest >= x, for T = bf16. For T = float, x itself: fp32 arithmetic errors
// are part of the tolerance that the caller adds to x instead.
template <typename T> static double value_below(double x) {
    if (sizeof(T) == 4) return x;
    float f = (float)x, lo, hi;
    if ((double)f > x) f = nextafterf(f, -INFINITY);
    bf16_neighbours(f, &lo, &hi);
    return lo;
}
template <typename T> static double value_above(double x) {
    if (sizeof(T) == 4) return x;
    float f = (float)x, lo, hi;
    if ((double)f < x) f = nextafterf(f, INFINITY);
    bf16_neighbours(f, &lo, &hi);
    return hi;
}

// Passes when lo[i] <= got[i] <= hi[i] for every element (NaN fails); prints how many results are the lower
// end, the upper end, strictly between (fp32: the tolerance's interval), and the element furthest outside.
static int check_interval(const char *what, const std::vector<double> &got, const std::vector<double> &lo,
                          const std::vector<double> &hi) {
    size_t bad = 0, worst = 0, at_lo = 0, at_hi = 0, inside = 0;
    double worst_excess = -INFINITY;
    for (size_t i = 0; i < got.size(); i++) {
        double excess = isnan(got[i]) ? INFINITY : fmax(lo[i] - got[i], got[i] - hi[i]);  // <= 0 inside
        if (excess > 0) bad++;
        else if (got[i] == lo[i]) at_lo++;
        else if (got[i] == hi[i]) at_hi++;
        else inside++;
        if (excess > worst_excess) worst_excess = excess, worst = i;
    }
    printf("    %-26s %zu at the lower end, %zu at the upper end, %zu between, %zu outside%s", what, at_lo, at_hi,
           inside, bad, bad ? "" : "  ok\n");
    if (bad) {
        printf("; worst [%zu] got % .8e outside [% .8e, % .8e]  FAIL\n", worst, got[worst], lo[worst], hi[worst]);
        dev_failures++;
    }
    return bad == 0;
}

// Passes when got and want hold the same numbers.
static int check_same(const char *what, const std::vector<double> &got, const std::vector<double> &want) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < want.size(); i++)
        if (!(got[i] == want[i]) && bad++ == 0) first = i;
    if (bad) printf("    %-26s %zu of %zu differ; first [%zu] got % .8e want % .8e  FAIL\n", what, bad, want.size(), first,
                    got[first], want[first]);
    else printf("    %-26s %zu elements  ok\n", what, want.size());
    dev_failures += bad != 0;
    return bad == 0;
}

// A check of the test's own premise (for example that a selection has duplicates to accumulate).
static void require(int ok, const char *what) {
    if (!ok) {
        printf("    %-26s FAIL (the test does not test what it should)\n", what);
        dev_failures++;
    }
}

static int duplicates(const std::vector<int> &sigma) {
    int d = 0;
    for (size_t j = 1; j < sigma.size(); j++) d += sigma[j] == sigma[j - 1];
    return d;
}

// A selection from grass.h's selector given squared norms s [D], as the trainers make one.
static void make_selection(int selector, const std::vector<double> &s, int r, uint64_t seed, std::vector<int> &sigma,
                           std::vector<float> &rho) {
    Rng rng;
    rng_init(&rng, seed, 0x5E1, 0, 0);
    sigma.assign(r, 0), rho.assign(r, 0.0f);
    grass_select(selector, s.data(), (int)s.size(), r, &rng, sigma.data(), rho.data());
}

// dev_common.cuh's download goes through float; the norms are double.
static std::vector<double> download_doubles(const double *d, size_t n) {
    std::vector<double> h(n);
    cudaCheck(cudaMemcpy(h.data(), d, sizeof(double) * n, cudaMemcpyDeviceToHost));
    return h;
}

static std::vector<double> dabs(const std::vector<double> &x) {
    std::vector<double> a(x.size());
    for (size_t i = 0; i < x.size(); i++) a[i] = fabs(x[i]);
    return a;
}

// ----------------------------------------------------------------------------------------------------
// CPU self-test: the reference against independent formulas, no GPU.

// P^T = diag(rho) B as a dense [r, D] matrix.
static std::vector<double> dense_pt(const std::vector<int> &sigma, const std::vector<float> &rho, int D) {
    std::vector<double> pt(sigma.size() * D, 0.0);
    for (size_t j = 0; j < sigma.size(); j++) pt[j * D + sigma[j]] = rho[j];
    return pt;
}

static void selftest_side(int rows) {
    const int N = 5, m = 7, n = 4, T = 3;
    GrassShape sh = grass_shape(rows ? GRASS_SIDE_ROWS : GRASS_SIDE_COLS, rows ? 5 : 4, m, n);  // r < D, r = D
    printf("  %s side: D %d, E %d, r %d\n", rows ? "rows" : "columns", sh.D, sh.E, sh.r);
    std::vector<int> sigma = random_ints(sh.r, sh.D, 20 + rows);
    sigma[1] = sigma[0];  // a duplicate for sure
    std::sort(sigma.begin(), sigma.end());
    std::vector<float> rho = random_normal(sh.r, 1.0, 0.4, 21);
    std::vector<double> pt = dense_pt(sigma, rho, sh.D);
    std::vector<double> dy = to_double(random_normal((size_t)N * m, 0, 1, 22)), x = to_double(random_normal((size_t)N * n, 0, 1, 23));

    // g = P^T G (rows side) or P^T G^T (columns side) by a dense product, against the gather formula (= the
    // GPU's compressed gradient) and the refresh's take from the full gradient
    std::vector<double> G((size_t)m * n), g0 = to_double(random_normal((size_t)sh.r * sh.E, 0, 1, 24));
    full_grad_ref(G.data(), dy.data(), x.data(), N, n, m);
    std::vector<double> dense = g0, gathered = g0, taken = g0;
    for (int j = 0; j < sh.r; j++)
        for (int e = 0; e < sh.E; e++)
            for (int d = 0; d < sh.D; d++)
                dense[(size_t)j * sh.E + e] += pt[(size_t)j * sh.D + d] * (rows ? G[(size_t)d * n + e] : G[(size_t)e * n + d]);
    compressed_grad_ref(gathered.data(), (double *)NULL, sigma.data(), rho.data(), sh, dy.data(), x.data(), N, n, m);
    take_ref(taken.data(), G.data(), sigma.data(), rho.data(), sh, n);
    check_doubles("compressed vs P^T G", gathered, dense, 1e-12, 1e-12);
    check_doubles("take vs P^T G", taken, dense, 1e-12, 1e-12);

    // norms against grass.h's grass_norms (fp32 G)
    std::vector<float> Gf(G.begin(), G.end());
    std::vector<double> s(sh.D), s_h(sh.D);
    norms_ref(s.data(), to_double(Gf).data(), m, n, rows);
    grass_norms(Gf.data(), m, n, rows, s_h.data());
    check_doubles("norms vs grass.h", s, s_h, 1e-12, 0.0);

    // T updates: Adam against the unrolled moments M_t = (1 - b1) sum_k b1^(t-k) x_k (V alike), the weights
    // against decay^T W - step sum_t decay^(T-t) P U_t by dense products
    const double b1 = 0.9, b2 = 0.999, eps = 1e-3, wd = 0.1, lr = 0.01, alpha = 0.25, gs = 0.5;
    size_t cnt = (size_t)sh.r * sh.E;
    std::vector<double> W = to_double(random_normal((size_t)m * n, 0, 0.02, 25)), mom(cnt, 0.0), var(cnt, 0.0);
    std::vector<double> Wd = W, U_ref, U_unrolled;
    std::vector<std::vector<double>> xs;
    double decay = 1 - lr * wd;
    for (int t = 1; t <= T; t++) {
        std::vector<double> g = to_double(random_normal(cnt, 0, 0.01, 30 + t));
        xs.push_back(g);
        update_ref(W.data(), g.data(), mom.data(), var.data(), sigma.data(), rho.data(), sh, b1, b2, eps, wd, lr, alpha, gs, t);
        std::vector<double> U(cnt);
        for (size_t i = 0; i < cnt; i++) {
            double M = 0, V = 0;
            for (int k = 1; k <= t; k++) {
                double xk = xs[k - 1][i] * gs;
                M += (1 - b1) * pow(b1, t - k) * xk;
                V += (1 - b2) * pow(b2, t - k) * xk * xk;
            }
            U[i] = (M / (1 - pow(b1, t))) / (sqrt(V / (1 - pow(b2, t))) + eps);
        }
        U_ref.insert(U_ref.end(), g.begin(), g.end());
        U_unrolled.insert(U_unrolled.end(), U.begin(), U.end());
        for (auto &w : Wd) w *= decay;
        for (int d = 0; d < sh.D; d++)
            for (int e = 0; e < sh.E; e++) {
                double pu = 0;  // (P U)[d, e] = sum_j P^T[j, d] U[j, e]
                for (int j = 0; j < sh.r; j++) pu += pt[(size_t)j * sh.D + d] * U[(size_t)j * sh.E + e];
                Wd[rows ? (size_t)d * n + e : (size_t)e * n + d] -= lr * alpha * pu;
            }
    }
    check_doubles("U vs unrolled moments", U_ref, U_unrolled, 1e-12, 1e-12);
    check_doubles("W vs dense P U, 3 steps", W, Wd, 1e-12, 1e-12);
}

static void selftest(void) {
    printf("grass CPU self-test: the reference against dense P^T = diag(rho) B products, grass.h's norms and "
           "unrolled Adam moments\n");
    selftest_side(1);
    selftest_side(0);
    // the interval helpers: bf16 values that bracket x, one spacing apart at most, equal on bf16 values
    const double xs[] = {1.0, 1.0 + 1e-3, -3.14159, 2.5e-3, -2.5e-3, 0.0, 1.0 / 3};
    int ok = 1;
    for (double x : xs) {
        double lo = value_below<__nv_bfloat16>(x), hi = value_above<__nv_bfloat16>(x);
        ok &= lo <= x && x <= hi && hi - lo <= fabs(x) * BF16_SPACING;
        ok &= (double)__bfloat162float(__float2bfloat16((float)lo)) == lo && (double)__bfloat162float(__float2bfloat16((float)hi)) == hi;
        ok &= value_below<float>(x) == x && value_above<float>(x) == x;
    }
    ok &= value_below<__nv_bfloat16>(1.5) == 1.5 && value_above<__nv_bfloat16>(1.5) == 1.5;
    printf("    %-26s %s\n", "bf16 below/above", ok ? "ok" : "FAIL");
    dev_failures += !ok;
}

// ----------------------------------------------------------------------------------------------------
// GPU validation

struct SelectionCase {
    int selector;
    int r;  // 0: r = D
    int expect_duplicates;
};

// The full gradient and its norms, then for both sides and several selections: the compressed gradient (into
// zero, and accumulating twice onto a nonzero g) against the CPU reference and against the selected rows of the
// GPU's own full gradient, and the refresh's take.
static void validate_grad(Matmul *mm, int N, int m, int n) {
    printf("  N %d, m %d, n %d\n", N, m, n);
    std::vector<float> dy = random_normal((size_t)N * m, 0, 1, 150), x = random_normal((size_t)N * n, 0, 1, 151);
    std::vector<double> dyd = to_double(dy), xd = to_double(x), G((size_t)m * n), Gmag((size_t)m * n);
    full_grad_ref(G.data(), dyd.data(), xd.data(), N, n, m);
    full_grad_ref(Gmag.data(), dabs(dyd).data(), dabs(xd).data(), N, n, m);
    int dmax = std::max(m, n);
    floatX *d_dy = upload<floatX>(dy), *d_x = upload<floatX>(x), *d_sel = device_alloc<floatX>((size_t)N * matmul_padded(dmax));
    float *d_G = device_alloc<float>((size_t)m * n), *d_g = device_alloc<float>((size_t)m * n), *d_rho = device_alloc<float>(dmax);
    double *d_norms = device_alloc<double>(dmax);
    int *d_sigma = device_alloc<int>(dmax);

    // G is fp32 (no rounding to floatX): only the fp32 accumulation of N terms, relative to their magnitudes
    grass_full_grad(mm, d_G, d_dy, d_x, N, n, m, 0);
    std::vector<double> Gg = to_double(download(d_G, (size_t)m * n)), bound((size_t)m * n);
    for (size_t i = 0; i < bound.size(); i++) bound[i] = FP32_SUM * Gmag[i];
    check_bounds("full gradient (fp32)", Gg, G, bound);

    for (int rows = 1; rows >= 0; rows--) {
        int D = rows ? m : n;
        printf("   %s side: D %d, E %d\n", rows ? "rows" : "columns", D, rows ? n : m);
        // the norms of the GPU's G: the same fp32 numbers squared (exactly, in double) and summed in double (in
        // another order for rows), so they agree to double rounding (<= 257 terms: 3e-14 relative)
        std::vector<double> s(D), s_gpu_ref(D);
        norms_ref(s_gpu_ref.data(), Gg.data(), m, n, rows);
        norms_ref(s.data(), G.data(), m, n, rows);
        grass_norms_compute(d_norms, d_G, m, n, rows, 0);  // as the trainer launches it
        std::vector<double> norms = download_doubles(d_norms, D);
        check_doubles("norms", norms, s_gpu_ref, 1e-12, 0.0);
        grass_norms_kernel<<<2, 32>>>(d_norms, d_G, m, n, rows);  // fewer warps than rows: the grid-stride loop, same bits
        cudaCheckLaunch();
        check_same("norms, 64 threads", download_doubles(d_norms, D), norms);

        const SelectionCase cases[] = {{GRASS_TOPR, D / 3, 0}, {GRASS_MULTINORM, D / 3, 1}, {GRASS_UNIFORM, D / 3, 1},
                                       {GRASS_MULTINORM, 0, 1}};
        for (const SelectionCase &c : cases) {
            GrassShape sh = grass_shape(rows ? GRASS_SIDE_ROWS : GRASS_SIDE_COLS, c.r ? c.r : D, m, n);
            std::vector<int> sigma;
            std::vector<float> rho;
            make_selection(c.selector, s, sh.r, 160 + c.selector, sigma, rho);
            int dups = duplicates(sigma);
            printf("   r %d of %d, %s: %d duplicate indices, rho in [%.4f, %.4f]\n", sh.r, sh.D,
                   grass_selector_names[c.selector], dups, *std::min_element(rho.begin(), rho.end()),
                   *std::max_element(rho.begin(), rho.end()));
            if (c.expect_duplicates) require(dups > 0, "duplicates in sigma");
            cudaCheck(cudaMemcpy(d_sigma, sigma.data(), sizeof(int) * sh.r, cudaMemcpyHostToDevice));
            cudaCheck(cudaMemcpy(d_rho, rho.data(), sizeof(float) * sh.r, cudaMemcpyHostToDevice));
            size_t cnt = (size_t)sh.r * sh.E;

            // into zero. The gather rounds each rho_j src[t, sigma_j] to floatX (off by ROUNDING of itself; exact
            // where rho_j = 1, src being floatX), the product accumulates in fp32 (FP32_SUM): both relative to the
            // terms' magnitudes.
            std::vector<double> want(cnt, 0.0), mag(cnt), from_full(cnt, 0.0), b(cnt), b2(cnt);
            compressed_grad_ref(want.data(), mag.data(), sigma.data(), rho.data(), sh, dyd.data(), xd.data(), N, n, m);
            take_ref(from_full.data(), Gg.data(), sigma.data(), rho.data(), sh, n);
            cudaCheck(cudaMemset(d_g, 0, sizeof(float) * cnt));
            GrassGroup one = grass_single(d_g, d_sigma, d_rho, d_dy);
            grass_compressed_grad(mm, &one, d_sel, sh, d_x, N, n, m, 0);
            std::vector<double> got = to_double(download(d_g, cnt));
            std::vector<double> gather(cnt);  // the relative error of the gathered terms
            for (size_t i = 0; i < cnt; i++) gather[i] = rho[i / sh.E] == 1.0f ? 0.0 : ROUNDING;
            for (size_t i = 0; i < cnt; i++) b[i] = (gather[i] + FP32_SUM) * mag[i], b2[i] = (gather[i] + 2 * FP32_SUM) * mag[i];
            check_bounds("compressed vs CPU", got, want, b);
            // the issue's test: equal to rho_j times the selected rows of the full gradient computed separately
            // (grass_full_grad on the GPU, whose own fp32 accumulation adds FP32_SUM of the magnitudes)
            check_bounds("compressed vs GPU G rows", got, from_full, b2);

            // accumulating: twice onto a nonzero g0 gives g0 + 2 P^T G
            std::vector<float> g0 = random_normal(cnt, 0, rms(want), 170);
            std::vector<double> acc(cnt);
            upload_to(d_g, g0);
            grass_compressed_grad(mm, &one, d_sel, sh, d_x, N, n, m, 0);
            grass_compressed_grad(mm, &one, d_sel, sh, d_x, N, n, m, 0);
            for (size_t i = 0; i < cnt; i++) acc[i] = g0[i] + 2.0 * want[i], b[i] = (gather[i] + FP32_SUM) * 2.0 * mag[i] + FP32_SUM * fabs(g0[i]);
            check_bounds("compressed, twice onto g0", to_double(download(d_g, cnt)), acc, b);

            // the refresh's take: g0 + rho_j G[sigma_j], one fp32 product and one fp32 sum per element
            upload_to(d_g, g0);
            grass_take_kernel<<<grid_stride_blocks(cnt, 256), 256>>>(d_g, d_G, d_sigma, d_rho, sh.r, sh.E, n, sh.rows);
            cudaCheckLaunch();
            std::vector<double> taken = to_double(download(d_g, cnt));
            for (size_t i = 0; i < cnt; i++)
                acc[i] = g0[i] + from_full[i], b[i] = FP32_ELEMENTWISE * (fabs(g0[i]) + fabs(from_full[i]));
            check_bounds("take onto g0", taken, acc, b);
            upload_to(d_g, g0);
            grass_take_kernel<<<3, 32>>>(d_g, d_G, d_sigma, d_rho, sh.r, sh.E, n, sh.rows);  // grid-stride loop
            cudaCheckLaunch();
            check_same("take, 96 threads", to_double(download(d_g, cnt)), taken);
        }
    }
    cudaCheck(cudaFree(d_dy)), cudaCheck(cudaFree(d_x)), cudaCheck(cudaFree(d_sel)), cudaCheck(cudaFree(d_G));
    cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_rho)), cudaCheck(cudaFree(d_norms)), cudaCheck(cudaFree(d_sigma));
}

// The compressed gradients of `count` projections that share X (q, k, v: one batched product), rows side, each
// from its own dY [N, m] and selection, accumulated twice onto nonzero g's that lie g_stride apart with a gap
// between them (which must stay untouched); against the CPU reference, and against the same projections one at a
// time through grass_single.
static void validate_group(Matmul *mm, int N, int m, int n, int rank, int count) {
    GrassShape sh = grass_shape(GRASS_SIDE_ROWS, rank, m, n);
    size_t cnt = (size_t)sh.r * sh.E, g_stride = cnt + 40, sel_stride = (size_t)sh.r + 3;  // gaps: not contiguous
    printf("  %d projections in one batch: N %d, m %d, n %d, rows side, r %d of %d\n", count, N, m, n, sh.r, sh.D);
    std::vector<float> x = random_normal((size_t)N * n, 0, 1, 190);
    std::vector<float> g0 = random_normal(g_stride * count, 0, 1, 191);
    std::vector<int> sigmas(sel_stride * count, 0);
    std::vector<float> rhos(sel_stride * count, 0.0f);
    std::vector<double> want(cnt * count), b(cnt * count);
    floatX *d_x = upload<floatX>(x), *d_sel = device_alloc<floatX>((size_t)count * N * matmul_padded(sh.r));
    std::vector<floatX *> d_dy(count);
    GrassGroup gr;
    memset(&gr, 0, sizeof(gr));
    for (int i = 0; i < count; i++) {
        std::vector<float> dy = random_normal((size_t)N * m, 0, 1, 192 + i);
        std::vector<double> s(sh.D, 0.0);
        for (int d = 0; d < sh.D; d++) s[d] = 1.0 + (d * (i + 7)) % 13;
        std::vector<int> sigma;
        std::vector<float> rho;
        make_selection(GRASS_MULTINORM, s, sh.r, 195 + i, sigma, rho);  // duplicates, rho not 1
        std::copy(sigma.begin(), sigma.end(), sigmas.begin() + i * sel_stride);
        std::copy(rho.begin(), rho.end(), rhos.begin() + i * sel_stride);
        std::vector<double> ref(cnt, 0.0), mag(cnt);
        compressed_grad_ref(ref.data(), mag.data(), sigma.data(), rho.data(), sh, to_double(dy).data(), to_double(x).data(), N, n, m);
        for (size_t e = 0; e < cnt; e++) {  // twice onto g0: the gather's rounding and the fp32 sum, as in validate_grad
            size_t at = i * g_stride + e;
            want[i * cnt + e] = g0[at] + 2.0 * ref[e];
            b[i * cnt + e] = (ROUNDING + FP32_SUM) * 2.0 * mag[e] + FP32_SUM * fabs(g0[at]);
        }
        d_dy[i] = upload<floatX>(dy);
        gr.dout[i] = d_dy[i];
    }
    float *d_g = upload<float>(g0), *d_rho = upload<float>(rhos);
    int *d_sigma = upload_ints(sigmas);
    gr.count = count, gr.g = d_g, gr.sigma = d_sigma, gr.rho = d_rho, gr.g_stride = g_stride, gr.sel_stride = sel_stride;
    grass_compressed_grad(mm, &gr, d_sel, sh, d_x, N, n, m, 0);
    grass_compressed_grad(mm, &gr, d_sel, sh, d_x, N, n, m, 0);
    // the members' g [count, cnt], and the gaps between them (which must hold g0 still)
    auto members = [&](const std::vector<float> &all, int gaps) {
        std::vector<double> out;
        for (int i = 0; i < count; i++)
            for (size_t e = gaps ? cnt : 0; e < (gaps ? g_stride : cnt); e++) out.push_back(all[i * g_stride + e]);
        return out;
    };
    std::vector<float> got = download(d_g, g_stride * count);
    check_bounds("batch, twice onto g0", members(got, 0), want, b);
    check_same("batch: gaps untouched", members(got, 1), members(g0, 1));
    upload_to(d_g, g0);
    for (int i = 0; i < count; i++) {
        GrassGroup one = grass_single(d_g + i * g_stride, d_sigma + i * sel_stride, d_rho + i * sel_stride, d_dy[i]);
        grass_compressed_grad(mm, &one, d_sel, sh, d_x, N, n, m, 0);
        grass_compressed_grad(mm, &one, d_sel, sh, d_x, N, n, m, 0);
    }
    check_bounds("one at a time, twice", members(download(d_g, g_stride * count), 0), want, b);
    for (floatX *p : d_dy) cudaCheck(cudaFree(p));
    cudaCheck(cudaFree(d_x)), cudaCheck(cudaFree(d_sel)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_rho));
    cudaCheck(cudaFree(d_sigma));
}

// grass_update over `steps` steps from zero moments (a refresh at t = 1), each step checked against the reference
// run from the state the device holds before it (so a stochastic rounding's choice is not carried into the next
// step's reference). MomT: the moments' type; master: fp32 master weights, else stochastically rounded floatX W.
template <typename MomT>
static void validate_update(int m, int n, int side, int rank, int master, float weight_decay, float grad_scale) {
    const int steps = 3;
    const float lr = 0.01f, alpha = 0.25f;
    TrainOptions opt;
    memset(&opt, 0, sizeof(opt));
    // eps is large next to |g| ~ 0.01, so that where it is added matters
    opt.beta1 = 0.9f, opt.beta2 = 0.999f, opt.eps = 1e-3f, opt.weight_decay = weight_decay;
    GrassShape sh = grass_shape(side, rank, m, n);
    printf("  m %d, n %d, %s side, r %d of %d; %s, %s moments, weight decay %g, grad scale %g\n", m, n,
           sh.rows ? "rows" : "columns", sh.r, sh.D, master ? "fp32 master weights" : "floatX weights, stochastic rounding",
           sizeof(MomT) == 4 ? "fp32" : "bf16", (double)weight_decay, (double)grad_scale);
    std::vector<float> sn = random_normal(sh.D, 0, 1, 180 + sh.D);
    std::vector<double> s(sh.D);
    for (int i = 0; i < sh.D; i++) s[i] = (double)sn[i] * sn[i];
    std::vector<int> sigma;
    std::vector<float> rho;
    make_selection(GRASS_MULTINORM, s, sh.r, 181, sigma, rho);
    int dups = duplicates(sigma);
    printf("   multinorm selection: %d duplicate indices, rho in [%.4f, %.4f]\n", dups,
           *std::min_element(rho.begin(), rho.end()), *std::max_element(rho.begin(), rho.end()));
    require(dups > 0, "duplicates in sigma");

    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)m * n;
    std::vector<float> W0 = random_normal(mn, 0, 0.02, 182);
    floatX *d_W = upload<floatX>(W0);
    float *d_master = master ? upload<float>(W0) : NULL, *d_g = device_alloc<float>(cnt), *d_rho = upload<float>(rho);
    MomT *d_m = device_alloc<MomT>(cnt), *d_v = device_alloc<MomT>(cnt);
    int *d_sigma = upload_ints(sigma);
    cudaCheck(cudaMemset(d_m, 0, sizeof(MomT) * cnt)), cudaCheck(cudaMemset(d_v, 0, sizeof(MomT) * cnt));
    const double b1 = opt.beta1, b2 = opt.beta2, eps = opt.eps, decay = 1.0 - (double)lr * weight_decay;
    const double step = (double)lr * alpha;
    int n_row = sh.rows ? sh.E : sh.D;  // W's row length
    for (int t = 1; t <= steps; t++) {
        // the state before the step
        std::vector<double> Wb = to_double(master ? download(d_master, mn) : download(d_W, mn));
        std::vector<double> mb = to_double(download(d_m, cnt)), vb = to_double(download(d_v, cnt));
        std::vector<float> g = random_normal(cnt, 0, 0.01, 190 + t);
        upload_to(d_g, g);
        std::vector<double> W = Wb, U = to_double(g), mr = mb, vr = vb;
        update_ref(W.data(), U.data(), mr.data(), vr.data(), sigma.data(), rho.data(), sh, b1, b2, eps, (double)weight_decay,
                   (double)lr, (double)alpha, (double)grad_scale, t);
        uint64_t seed = 1000u + t;
        grass_update(d_W, d_master, d_g, d_m, d_v, d_sigma, d_rho, sh, m, n, 1, &opt, lr, alpha, grad_scale, t, &seed, 0);
        cudaCheck(cudaDeviceSynchronize());
        if (t == 2) continue;  // checked at t = 1 and t = steps; step 2 only moves the state on

        // Bounds. The fp32 formulas are off by a few roundings of the magnitudes of their terms: mmag for
        // b1 M + (1 - b1) x (which may cancel), magU for U, dmag for W's update (the sum over duplicates).
        double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        std::vector<double> mmag(cnt), magU(cnt), bU(cnt), dmag(mn, 0.0);
        for (size_t i = 0; i < cnt; i++) {
            double xi = (double)g[i] * grad_scale;
            mmag[i] = fabs(b1 * mb[i]) + fabs((1 - b1) * xi);
            magU[i] = (mmag[i] / bc1) / (sqrt(vr[i] / bc2) + eps);
            bU[i] = FP32_ELEMENTWISE * (fabs(U[i]) + magU[i]);
        }
        std::vector<char> touched(mn, 0);
        for (int j = 0; j < sh.r; j++)
            for (int e = 0; e < sh.E; e++) {
                size_t w = sh.rows ? (size_t)sigma[j] * n_row + e : (size_t)e * n_row + sigma[j];
                dmag[w] += step * rho[j] * (fabs(U[(size_t)j * sh.E + e]) + magU[(size_t)j * sh.E + e]);
                touched[w] = 1;
            }
        char label[64];
        snprintf(label, sizeof(label), "t=%d U", t);
        check_bounds(label, to_double(download(d_g, cnt)), U, bU);
        std::vector<double> mg = to_double(download(d_m, cnt)), vg = to_double(download(d_v, cnt));
        if (sizeof(MomT) == 4) {
            std::vector<double> bm(cnt), bv(cnt);
            for (size_t i = 0; i < cnt; i++) bm[i] = FP32_ELEMENTWISE * mmag[i], bv[i] = FP32_ELEMENTWISE * vr[i];
            snprintf(label, sizeof(label), "t=%d M", t);
            check_bounds(label, mg, mr, bm);
            snprintf(label, sizeof(label), "t=%d V", t);
            check_bounds(label, vg, vr, bv);
        } else {  // stochastic rounding: one of the bf16 neighbours of the fp32 value
            std::vector<double> mlo(cnt), mhi(cnt), vlo(cnt), vhi(cnt);
            for (size_t i = 0; i < cnt; i++) {
                double tm = FP32_ELEMENTWISE * mmag[i], tv = FP32_ELEMENTWISE * vr[i];
                mlo[i] = value_below<MomT>(mr[i] - tm), mhi[i] = value_above<MomT>(mr[i] + tm);
                vlo[i] = value_below<MomT>(vr[i] - tv), vhi[i] = value_above<MomT>(vr[i] + tv);
            }
            snprintf(label, sizeof(label), "t=%d M (bf16 neighbours)", t);
            check_interval(label, mg, mlo, mhi);
            snprintf(label, sizeof(label), "t=%d V (bf16 neighbours)", t);
            check_interval(label, vg, vlo, vhi);
        }
        std::vector<double> Wg = to_double(download(d_W, mn));
        if (master) {
            // fp32: the decay's product, the sum over duplicates, the step; W is the master rounded to nearest
            std::vector<double> mg_w = to_double(download(d_master, mn)), bw(mn), rounded(mn);
            for (size_t i = 0; i < mn; i++) bw[i] = FP32_ELEMENTWISE * (fabs(Wb[i] * decay) + dmag[i]);
            for (size_t i = 0; i < mn; i++) rounded[i] = round_floatX((float)mg_w[i]);
            snprintf(label, sizeof(label), "t=%d master", t);
            check_bounds(label, mg_w, W, bw);
            snprintf(label, sizeof(label), "t=%d W = master rounded", t);
            check_same(label, Wg, rounded);
        } else {
            // stochastic rounding (bf16; exact in fp32): the decay rounds W d to one of its neighbours [lo1, hi1],
            // the scatter rounds that minus the update to one of its neighbours, so W lies in
            // [below(lo1 - step delta), above(hi1 - step delta)], widened by the fp32 errors before each rounding
            std::vector<double> lo(mn), hi(mn);
            for (size_t i = 0; i < mn; i++) {
                double wd_ = Wb[i] * decay, lo1 = Wb[i], hi1 = Wb[i];
                if (weight_decay != 0.0f) {
                    double td = FP32_ELEMENTWISE * fabs(wd_);
                    lo1 = value_below<floatX>(wd_ - td), hi1 = value_above<floatX>(wd_ + td);
                }
                lo[i] = lo1, hi[i] = hi1;
                if (touched[i]) {
                    double delta = wd_ - W[i];  // step * sum_j rho_j U[j] over this element's indices
                    double ts = FP32_ELEMENTWISE * (fmax(fabs(lo1), fabs(hi1)) + dmag[i]);
                    lo[i] = value_below<floatX>(lo1 - delta - ts), hi[i] = value_above<floatX>(hi1 - delta + ts);
                }
            }
            snprintf(label, sizeof(label), "t=%d W (stochastic)", t);
            check_interval(label, Wg, lo, hi);
            if (weight_decay != 0.0f && sizeof(floatX) == 2) {
                // The decay alone (the elements no index selects) moves W by 0.1%, less than half a bf16 spacing:
                // rounding to nearest, or no decay, would stay at W, which is one of the two neighbours. It must be
                // unbiased: (W - exact) / spacing, positive away from zero, has mean 0 and a standard deviation
                // of at most 1/2 per element, so their mean's is 1/(2 sqrt(count)); 6 sigma. Without the decay the
                // mean would be about +0.13 to +0.26 (0.001 |W| over a spacing of 2^-8 to 2^-7 |W|).
                double sum = 0.0;
                size_t count = 0;
                for (size_t i = 0; i < mn; i++) {
                    double exact = Wb[i] * decay, below = value_below<floatX>(exact), above = value_above<floatX>(exact);
                    if (touched[i] || above == below) continue;
                    sum += (Wg[i] - exact) / (above - below) * (exact > 0 ? 1.0 : -1.0);
                    count++;
                }
                double mean = sum / count, bound = 6.0 * 0.5 / sqrt((double)count);
                int ok = count > 0 && fabs(mean) <= bound;
                printf("    t=%d %-22s mean %+.4f of a spacing over %zu unselected elements (bound %.3f)  %s\n", t,
                       "decay unbiased", mean, count, bound, ok ? "ok" : "FAIL");
                dev_failures += !ok;
            }
        }
        if (weight_decay == 0.0f) {  // no decay: what no index selects keeps its bits
            std::vector<double> got_u, want_u;
            std::vector<double> Wnow = master ? to_double(download(d_master, mn)) : Wg;
            for (size_t i = 0; i < mn; i++)
                if (!touched[i]) got_u.push_back(Wnow[i]), want_u.push_back(Wb[i]);
            snprintf(label, sizeof(label), "t=%d unselected unchanged", t);
            check_same(label, got_u, want_u);
        }
    }
    cudaCheck(cudaFree(d_W)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_rho)), cudaCheck(cudaFree(d_m));
    cudaCheck(cudaFree(d_v)), cudaCheck(cudaFree(d_sigma));
    if (d_master) cudaCheck(cudaFree(d_master));
}

// Scatter updates of 0.3 of a bf16 spacing: rounding to nearest would drop every one of them (and, being one of
// the two neighbours, pass the checks above); stochastic rounding must move 30% of the weights down one spacing,
// so that the mean follows the exact update. Every row selected once (rho = 1, as uniform-nr gives at r = D),
// g = 1 and eps = 0, so that U = 1 exactly at t = 1. Also checks that the same seed gives the same bits.
static void validate_unbiased(int m, int n) {
    GrassShape sh = grass_shape(GRASS_SIDE_ROWS, m, m, n);
    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)m * n;
    printf("  m %d, n %d, rows side, r = D: stochastic rounding of scatter updates smaller than half a bf16 spacing\n", m, n);
    TrainOptions opt;
    memset(&opt, 0, sizeof(opt));
    opt.beta1 = 0.9f, opt.beta2 = 0.999f, opt.eps = 0.0f, opt.weight_decay = 0.0f;
    const float spacing = 1.0f / 128.0f, alpha = 0.25f, lr = 0.3f * spacing / alpha;  // bf16 spacing in [1, 2)
    std::vector<int> sigma(sh.r);
    for (int j = 0; j < sh.r; j++) sigma[j] = j;
    std::vector<float> rho(sh.r, 1.0f), w0(mn, 1.5f), ones(cnt, 1.0f);
    floatX *d_W = upload<floatX>(w0);
    float *d_g = upload<float>(ones), *d_rho = upload<float>(rho), *d_m = device_alloc<float>(cnt), *d_v = device_alloc<float>(cnt);
    int *d_sigma = upload_ints(sigma);
    cudaCheck(cudaMemset(d_m, 0, sizeof(float) * cnt)), cudaCheck(cudaMemset(d_v, 0, sizeof(float) * cnt));
    const uint64_t seed = 77;
    grass_update(d_W, (float *)NULL, d_g, d_m, d_v, d_sigma, d_rho, sh, m, n, 1, &opt, lr, alpha, 1.0f, 1, &seed, 0);
    check_same("U = 1 exactly", to_double(download(d_g, cnt)), std::vector<double>(cnt, 1.0));
    std::vector<float> first = download(d_W, mn);
    double mean = 0.0;
    for (float x : first) mean += x;
    mean /= mn;
    double want = 1.5 - (double)(lr * alpha);  // the step as the kernel gets it, lr * alpha in fp32
    // each weight is 1.5 - spacing with probability 0.3: the mean's standard deviation is sqrt(0.21 / mn) spacings
    double bound = sizeof(floatX) == 4 ? 1e-6 : 6.0 * sqrt(0.21 / mn) * spacing;
    int ok = fabs(mean - want) <= bound;
    printf("    %-26s mean %.8f want %.8f (bound %.1e)  %s\n", "unbiased", mean, want, bound, ok ? "ok" : "FAIL");
    dev_failures += !ok;
    upload_to(d_W, w0), upload_to(d_g, ones);
    cudaCheck(cudaMemset(d_m, 0, sizeof(float) * cnt)), cudaCheck(cudaMemset(d_v, 0, sizeof(float) * cnt));
    grass_update(d_W, (float *)NULL, d_g, d_m, d_v, d_sigma, d_rho, sh, m, n, 1, &opt, lr, alpha, 1.0f, 1, &seed, 0);
    check_same("same seed, same bits", to_double(download(d_W, mn)), to_double(first));
    cudaCheck(cudaFree(d_W)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_rho)), cudaCheck(cudaFree(d_m));
    cudaCheck(cudaFree(d_v)), cudaCheck(cudaFree(d_sigma));
}

// grass_update of `layers` matrices in one call (the trainer's batch of a kind's layers) against one call per
// layer from the same state, each with its own selection, data and seed: the same bits for W (and master), U and
// the moments. MomT and master as validate_update; weight decay 0.1, so the decay kernel runs batched too.
template <typename MomT>
static void validate_update_layers(int m, int n, int side, int rank, int master, int layers) {
    TrainOptions opt;
    memset(&opt, 0, sizeof(opt));
    opt.beta1 = 0.9f, opt.beta2 = 0.999f, opt.eps = 1e-3f, opt.weight_decay = 0.1f;
    GrassShape sh = grass_shape(side, rank, m, n);
    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)m * n;
    printf("  %d layers of m %d, n %d, %s side, r %d; %s, %s moments: one batched update against one per layer\n", layers, m,
           n, sh.rows ? "rows" : "columns", sh.r, master ? "fp32 master weights" : "floatX weights, stochastic rounding",
           sizeof(MomT) == 4 ? "fp32" : "bf16");
    std::vector<int> sigma;
    std::vector<float> rho, mom;
    std::vector<uint64_t> seeds(layers);
    for (int l = 0; l < layers; l++) {  // a selection with duplicates per layer
        std::vector<int> sl;
        std::vector<float> rl;
        std::vector<float> sn = random_normal(sh.D, 0, 1, 300 + l);
        std::vector<double> sc(sh.D);
        for (int i = 0; i < sh.D; i++) sc[i] = (double)sn[i] * sn[i];
        make_selection(GRASS_MULTINORM, sc, sh.r, 310 + l, sl, rl);
        sigma.insert(sigma.end(), sl.begin(), sl.end());
        rho.insert(rho.end(), rl.begin(), rl.end());
        seeds[l] = 0x5EED0000ULL + 17 * l;
    }
    std::vector<float> W0 = random_normal(mn * layers, 0, 0.02, 320), g0 = random_normal(cnt * layers, 0, 0.01, 321);
    std::vector<float> m0 = random_normal(cnt * layers, 0, 0.01, 322), v0 = random_normal(cnt * layers, 0, 1e-4, 323);
    for (float &x : v0) x = fabsf(x);
    struct State {
        floatX *W;
        float *master, *g;
        MomT *m, *v;
    };
    auto state = [&]() {
        State st = {upload<floatX>(W0), master ? upload<float>(W0) : NULL, upload<float>(g0), upload<MomT>(m0), upload<MomT>(v0)};
        return st;
    };
    int *d_sigma = upload_ints(sigma);
    float *d_rho = upload<float>(rho);
    State all = state(), one = state();
    grass_update(all.W, all.master, all.g, all.m, all.v, d_sigma, d_rho, sh, m, n, layers, &opt, 0.01f, 0.25f, 0.5f, 2,
                 seeds.data(), 0);
    for (int l = 0; l < layers; l++)
        grass_update(one.W + l * mn, master ? one.master + l * mn : NULL, one.g + l * cnt, one.m + l * cnt, one.v + l * cnt,
                     d_sigma + (size_t)l * sh.r, d_rho + (size_t)l * sh.r, sh, m, n, 1, &opt, 0.01f, 0.25f, 0.5f, 2,
                     &seeds[l], 0);
    cudaCheck(cudaDeviceSynchronize());
    check_same("W", to_double(download(all.W, mn * layers)), to_double(download(one.W, mn * layers)));
    if (master) check_same("master", to_double(download(all.master, mn * layers)), to_double(download(one.master, mn * layers)));
    check_same("U", to_double(download(all.g, cnt * layers)), to_double(download(one.g, cnt * layers)));
    check_same("moments", to_double(download(all.m, cnt * layers)), to_double(download(one.m, cnt * layers)));
    check_same("second moments", to_double(download(all.v, cnt * layers)), to_double(download(one.v, cnt * layers)));
    for (State *st : {&all, &one}) {
        cudaCheck(cudaFree(st->W)), cudaCheck(cudaFree(st->g)), cudaCheck(cudaFree(st->m)), cudaCheck(cudaFree(st->v));
        if (st->master) cudaCheck(cudaFree(st->master));
    }
    cudaCheck(cudaFree(d_sigma)), cudaCheck(cudaFree(d_rho));
}

// ----------------------------------------------------------------------------------------------------
// Timing

static void bench(Matmul *mm, const char *what, int N, int m, int n, int rank) {
    GrassShape sh = grass_shape(GRASS_SIDE_AUTO, rank, m, n);
    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)m * n;
    std::vector<int> sigma;
    std::vector<float> rho;
    make_selection(GRASS_MULTINORM, std::vector<double>(sh.D, 1.0), sh.r, 200, sigma, rho);
    floatX *d_dy = upload<floatX>(random_normal((size_t)N * m, 0, 1, 201)), *d_x = upload<floatX>(random_normal((size_t)N * n, 0, 1, 202));
    floatX *d_sel = device_alloc<floatX>((size_t)N * matmul_padded(sh.r)), *d_W = upload<floatX>(random_normal(mn, 0, 0.02, 203));
    float *d_G = device_alloc<float>(mn), *d_g = device_alloc<float>(cnt), *d_master = device_alloc<float>(mn);
    float *d_m = device_alloc<float>(cnt), *d_v = device_alloc<float>(cnt), *d_rho = upload<float>(rho);
    __nv_bfloat16 *d_m16 = device_alloc<__nv_bfloat16>(cnt), *d_v16 = device_alloc<__nv_bfloat16>(cnt);
    double *d_norms = device_alloc<double>(sh.D);
    int *d_sigma = upload_ints(sigma);
    cudaCheck(cudaMemset(d_g, 0, sizeof(float) * cnt)), cudaCheck(cudaMemset(d_master, 0, sizeof(float) * mn));
    cudaCheck(cudaMemset(d_m, 0, sizeof(float) * cnt)), cudaCheck(cudaMemset(d_v, 0, sizeof(float) * cnt));
    cudaCheck(cudaMemset(d_m16, 0, 2 * cnt)), cudaCheck(cudaMemset(d_v16, 0, 2 * cnt));
    TrainOptions opt;
    memset(&opt, 0, sizeof(opt));
    opt.beta1 = 0.9f, opt.beta2 = 0.999f, opt.eps = 1e-8f, opt.weight_decay = 0.0f;
    GrassGroup one = grass_single(d_g, d_sigma, d_rho, d_dy);
    float ms_c = time_ms(10, [&] { grass_compressed_grad(mm, &one, d_sel, sh, d_x, N, n, m, 0); });
    float ms_g = time_ms(10, [&] {  // the gather alone: the part a kernel reading the selected columns directly would save
        grass_gather(d_sel, &one, sh.rows ? NULL : d_x, N, sh.r, sh.rows ? m : n, matmul_padded(sh.r), 0);
    });
    float ms_f = time_ms(10, [&] { grass_full_grad(mm, d_G, d_dy, d_x, N, n, m, 0); });
    float ms_n = time_ms(10, [&] { grass_norms_compute(d_norms, d_G, m, n, sh.rows, 0); });
    float ms_t = time_ms(10, [&] {
        grass_take_kernel<<<grid_stride_blocks(cnt, 256), 256>>>(d_g, d_G, d_sigma, d_rho, sh.r, sh.E, n, sh.rows);
    });
    const uint64_t seed = 7;
    float ms_u1 = time_ms(10, [&] {
        grass_update(d_W, d_master, d_g, d_m, d_v, d_sigma, d_rho, sh, m, n, 1, &opt, 1e-4f, 0.25f, 1.0f, 2, &seed, 0);
    });
    float ms_u2 = time_ms(10, [&] {
        grass_update(d_W, (float *)NULL, d_g, d_m16, d_v16, d_sigma, d_rho, sh, m, n, 1, &opt, 1e-4f, 0.25f, 1.0f, 2, &seed, 0);
    });
    printf("  %-8s m %5d n %5d, %s r %d: compressed %7.3f ms %6.1f TFLOPS (gather %.3f ms of it), full %7.3f ms %6.1f "
           "TFLOPS; norms %.3f ms, take %.3f ms; update master + fp32 moments %.3f ms, stochastic + bf16 moments %.3f ms\n",
           what, m, n, sh.rows ? "rows" : "cols", sh.r, ms_c, 2.0 * N * sh.r * sh.E / ms_c / 1e9, ms_g, ms_f,
           2.0 * N * mn / ms_f / 1e9, ms_n, ms_t, ms_u1, ms_u2);
    cudaCheck(cudaFree(d_dy)), cudaCheck(cudaFree(d_x)), cudaCheck(cudaFree(d_sel)), cudaCheck(cudaFree(d_W));
    cudaCheck(cudaFree(d_G)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_master)), cudaCheck(cudaFree(d_m));
    cudaCheck(cudaFree(d_v)), cudaCheck(cudaFree(d_rho)), cudaCheck(cudaFree(d_m16)), cudaCheck(cudaFree(d_v16));
    cudaCheck(cudaFree(d_norms)), cudaCheck(cudaFree(d_sigma));
}

// For timing: one multinorm selection (from equal norms) `copies` times over, as for several matrices.
static void repeated_selection(GrassShape sh, uint64_t seed, int copies, std::vector<int> &sigmas, std::vector<float> &rhos) {
    std::vector<int> sigma;
    std::vector<float> rho;
    make_selection(GRASS_MULTINORM, std::vector<double>(sh.D, 1.0), sh.r, seed, sigma, rho);
    sigmas.clear(), rhos.clear();
    for (int i = 0; i < copies; i++) sigmas.insert(sigmas.end(), sigma.begin(), sigma.end()), rhos.insert(rhos.end(), rho.begin(), rho.end());
}

// The compressed gradients of `count` projections that share X (q, k, v; gate, up), rows side: one batched product
// against one product each, what the batch saves.
static void bench_group(Matmul *mm, const char *what, int N, int m, int n, int rank, int count) {
    GrassShape sh = grass_shape(GRASS_SIDE_ROWS, rank, m, n);
    size_t cnt = (size_t)sh.r * sh.E;
    std::vector<int> sigmas;
    std::vector<float> rhos;
    repeated_selection(sh, 210, count, sigmas, rhos);
    floatX *d_dy = upload<floatX>(random_normal((size_t)N * m * count, 0, 1, 211)), *d_x = upload<floatX>(random_normal((size_t)N * n, 0, 1, 212));
    floatX *d_sel = device_alloc<floatX>((size_t)count * N * matmul_padded(sh.r));
    float *d_g = device_alloc<float>(cnt * count), *d_rho = upload<float>(rhos);
    int *d_sigma = upload_ints(sigmas);
    cudaCheck(cudaMemset(d_g, 0, sizeof(float) * cnt * count));
    GrassGroup gr;
    memset(&gr, 0, sizeof(gr));
    gr.count = count, gr.g = d_g, gr.sigma = d_sigma, gr.rho = d_rho, gr.g_stride = cnt, gr.sel_stride = sh.r;
    for (int i = 0; i < count; i++) gr.dout[i] = d_dy + (size_t)i * N * m;
    float ms_batch = time_ms(10, [&] { grass_compressed_grad(mm, &gr, d_sel, sh, d_x, N, n, m, 0); });
    float ms_each = time_ms(10, [&] {
        for (int i = 0; i < count; i++) {
            GrassGroup one = grass_single(d_g + i * cnt, d_sigma + (size_t)i * sh.r, d_rho + (size_t)i * sh.r, gr.dout[i]);
            grass_compressed_grad(mm, &one, d_sel, sh, d_x, N, n, m, 0);
        }
    });
    double flops = 2.0 * N * sh.r * sh.E * count;
    printf("  %-8s %d x (m %d n %d, r %d): batched %.3f ms %.1f TFLOPS, one product each %.3f ms %.1f TFLOPS\n", what,
           count, m, n, sh.r, ms_batch, flops / ms_batch / 1e9, ms_each, flops / ms_each / 1e9);
    cudaCheck(cudaFree(d_dy)), cudaCheck(cudaFree(d_x)), cudaCheck(cudaFree(d_sel)), cudaCheck(cudaFree(d_g));
    cudaCheck(cudaFree(d_rho)), cudaCheck(cudaFree(d_sigma));
}

// The trainer's update of one kind's `layers` matrices (fp32 master weights and moments): one batched call against
// one call per layer, the launches the batching saves.
static void bench_update_layers(int m, int n, int rank, int layers) {
    GrassShape sh = grass_shape(GRASS_SIDE_AUTO, rank, m, n);
    size_t cnt = (size_t)sh.r * sh.E, mn = (size_t)m * n;
    std::vector<int> sigmas;
    std::vector<float> rhos;
    repeated_selection(sh, 400, layers, sigmas, rhos);
    floatX *d_W = upload<floatX>(random_normal(mn * layers, 0, 0.02, 401));
    float *d_master = device_alloc<float>(mn * layers), *d_g = device_alloc<float>(cnt * layers);
    float *d_m = device_alloc<float>(cnt * layers), *d_v = device_alloc<float>(cnt * layers), *d_rho = upload<float>(rhos);
    int *d_sigma = upload_ints(sigmas);
    cudaCheck(cudaMemset(d_master, 0, sizeof(float) * mn * layers)), cudaCheck(cudaMemset(d_g, 0, sizeof(float) * cnt * layers));
    cudaCheck(cudaMemset(d_m, 0, sizeof(float) * cnt * layers)), cudaCheck(cudaMemset(d_v, 0, sizeof(float) * cnt * layers));
    TrainOptions opt;
    memset(&opt, 0, sizeof(opt));
    opt.beta1 = 0.9f, opt.beta2 = 0.999f, opt.eps = 1e-8f;
    std::vector<uint64_t> seeds(layers, 7);
    float ms_batch = time_ms(10, [&] {
        grass_update(d_W, d_master, d_g, d_m, d_v, d_sigma, d_rho, sh, m, n, layers, &opt, 1e-4f, 0.25f, 1.0f, 2, seeds.data(), 0);
    });
    float ms_each = time_ms(10, [&] {
        for (int l = 0; l < layers; l++)
            grass_update(d_W + l * mn, d_master + l * mn, d_g + l * cnt, d_m + l * cnt, d_v + l * cnt, d_sigma + (size_t)l * sh.r,
                         d_rho + (size_t)l * sh.r, sh, m, n, 1, &opt, 1e-4f, 0.25f, 1.0f, 2, &seeds[l], 0);
    });
    printf("  update of %d layers of m %d n %d, r %d (master + fp32 moments): batched %.3f ms, one call per layer %.3f ms\n",
           layers, m, n, sh.r, ms_batch, ms_each);
    cudaCheck(cudaFree(d_W)), cudaCheck(cudaFree(d_master)), cudaCheck(cudaFree(d_g)), cudaCheck(cudaFree(d_m));
    cudaCheck(cudaFree(d_v)), cudaCheck(cudaFree(d_rho)), cudaCheck(cudaFree(d_sigma));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, VEC_VERSIONS, selftest);
    Matmul mm;
    matmul_init(&mm, (size_t)32 << 20);
    if (opt.validate) {
        printf("grass: the compressed gradient and the refresh kernels against the CPU reference\n");
        validate_grad(&mm, 37, 172, 64);
        validate_grad(&mm, 64, 100, 257);
        validate_group(&mm, 37, 172, 64, 57, 3);
        validate_group(&mm, 64, 257, 100, 257, 2);
        validate_group(&mm, 4 * 2048 + 2 * 4 + 3, 40, 24, 16, 2);  // more rows than blocks: 4 rows at a time, then the rest
        printf("grass: the update against the CPU reference\n");
        // every combination of weights and moments, each once with r < D and once with r = D, rows and columns,
        // with and without weight decay
        for_each_vec_version(&opt, [] {
            validate_update<float>(172, 64, GRASS_SIDE_AUTO, 57, 1, 0.0f, 1.0f);
            validate_update<float>(100, 257, GRASS_SIDE_AUTO, 257, 1, 0.1f, 0.5f);
            validate_update<__nv_bfloat16>(172, 64, GRASS_SIDE_COLS, 64, 1, 0.1f, 1.0f);
            validate_update<__nv_bfloat16>(100, 257, GRASS_SIDE_ROWS, 33, 1, 0.0f, 0.5f);
            validate_update<float>(172, 64, GRASS_SIDE_COLS, 21, 0, 0.1f, 0.5f);
            validate_update<float>(100, 257, GRASS_SIDE_ROWS, 100, 0, 0.0f, 1.0f);
            validate_update<__nv_bfloat16>(172, 64, GRASS_SIDE_AUTO, 172, 0, 0.1f, 0.5f);
            validate_update<__nv_bfloat16>(100, 257, GRASS_SIDE_AUTO, 85, 0, 0.0f, 1.0f);
            validate_unbiased(200, 129);
            validate_update_layers<__nv_bfloat16>(172, 64, GRASS_SIDE_COLS, 40, 0, 3);
            validate_update_layers<float>(100, 257, GRASS_SIDE_ROWS, 57, 1, 2);
        });
    }
    if (opt.bench) {
        printf("grass: timing, 1b preset shapes, 16K tokens, rank 512\n");
        const int N = 16 * 1024;
        for_each_vec_version(&opt, [&] {
            bench(&mm, "q/k/v/o", N, 2048, 2048, 512);
            bench(&mm, "gate/up", N, 5461, 2048, 512);
            bench(&mm, "down", N, 2048, 5461, 512);
            bench_group(&mm, "q/k/v", N, 2048, 2048, 512, 3);
            bench_group(&mm, "gate/up", N, 5461, 2048, 512, 2);
            bench_update_layers(2048, 2048, 512, 24);
            bench_update_layers(2048, 5464, 512, 24);
        });
    }
    matmul_free(&mm);
    return dev_finish();
}
