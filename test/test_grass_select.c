/*
 * test_grass_select.c: statistical and exact unit tests of the Grass selectors in grass.h.
 *   - with-replacement selectors (multinorm, uniform) and uniform-nr are unbiased: the mean of P P^T over many
 *     draws approaches the identity (P P^T is diagonal, entry i = sum of rho_j^2 over the draws of row i);
 *     each diagonal entry must be within 5 standard errors of 1, computed from the exact variance
 *   - topr takes the r largest norms, ties to the lower index
 *   - the -nr selectors never repeat an index; every selector returns indices sorted ascending in [0, D)
 *   - norm-based selectors never pick a zero-norm row while a non-zero one is left
 *   - the same key gives the same selection, different keys give different ones
 * Exits non-zero on any failure.
 */
#include "../grass.h"

static int failures = 0;

static void expect(int cond, const char *what) {
    printf("%-4s %s\n", cond ? "ok" : "FAIL", what);
    if (!cond) failures++;
}

static void select_keyed(int selector, const double *s, int D, int r, int refresh, int layer, int kind, int *sigma, float *rho) {
    Rng rng;
    grass_rng(&rng, 1234, refresh, layer, kind);
    grass_select(selector, s, D, r, &rng, sigma, rho);
}

// Mean of diag(P P^T) over n draws must be 1 within 5 standard errors, the variance of one draw's entry i
// being var(i). Returns the largest deviation in standard errors.
static double unbiased_check(int selector, const double *s, int D, int r, int n, double (*var)(const double *, int, int, int)) {
    double *acc = (double *)xcalloc(D, sizeof(double));
    int *sigma = (int *)xmalloc(sizeof(int) * r);
    float *rho = (float *)xmalloc(sizeof(float) * r);
    for (int t = 0; t < n; t++) {
        select_keyed(selector, s, D, r, t, 0, PARAM_WQ, sigma, rho);
        for (int j = 0; j < r; j++) acc[sigma[j]] += (double)rho[j] * rho[j];
    }
    double worst = 0.0;
    for (int i = 0; i < D; i++) {
        double se = sqrt(var(s, D, r, i) / n);
        worst = fmax(worst, fabs(acc[i] / n - 1.0) / se);
    }
    free(acc);
    free(sigma);
    free(rho);
    return worst;
}

// entry i = count_i / (r q_i), count_i ~ Binomial(r, q_i): variance (1 - q_i) / (r q_i)
static double var_multinorm(const double *s, int D, int r, int i) {
    double total = 0.0;
    for (int k = 0; k < D; k++) total += s[k];
    double q = s[i] / total;
    return (1.0 - q) / (r * q);
}

// entry i = count_i * D / r, count_i ~ Binomial(r, 1/D): variance (D - 1) / r
static double var_uniform(const double *s, int D, int r, int i) { return (double)(D - 1) / r; }

// entry i = [i drawn] * D / r, P(drawn) = r / D: variance D / r - 1
static double var_uniform_nr(const double *s, int D, int r, int i) { return (double)D / r - 1.0; }

int main(void) {
    enum { D = 40, R = 8, DRAWS = 20000 };
    double s[D];
    Rng data;
    rng_init(&data, 99, 1, 2, 3);
    for (int i = 0; i < D; i++) s[i] = 0.5 + rng_uniform(&data);  // q_i between ~1/80 and ~3/80
    char what[160];

    double dev = unbiased_check(GRASS_MULTINORM, s, D, R, DRAWS, var_multinorm);
    snprintf(what, sizeof(what), "multinorm: E[P P^T] = I (worst entry %.2f standard errors from 1, bound 5)", dev);
    expect(dev < 5.0, what);
    dev = unbiased_check(GRASS_UNIFORM, s, D, R, DRAWS, var_uniform);
    snprintf(what, sizeof(what), "uniform: E[P P^T] = I (worst entry %.2f standard errors from 1, bound 5)", dev);
    expect(dev < 5.0, what);
    dev = unbiased_check(GRASS_UNIFORM_NR, s, D, R, DRAWS, var_uniform_nr);
    snprintf(what, sizeof(what), "uniform-nr: E[P P^T] = I (worst entry %.2f standard errors from 1, bound 5)", dev);
    expect(dev < 5.0, what);

    // a selector with a bias must fail the same check: multinorm's draws with uniform scales are not unbiased
    {
        double acc[D] = {0};
        int sigma[R];
        float rho[R];
        for (int t = 0; t < DRAWS; t++) {
            select_keyed(GRASS_MULTINORM, s, D, R, t, 0, PARAM_WQ, sigma, rho);
            for (int j = 0; j < R; j++) acc[sigma[j]] += (double)D / R;
        }
        double worst = 0.0;
        for (int i = 0; i < D; i++) worst = fmax(worst, fabs(acc[i] / DRAWS - 1.0) / sqrt(var_multinorm(s, D, R, i) / DRAWS));
        snprintf(what, sizeof(what), "the check detects a biased estimator (%.1f standard errors)", worst);
        expect(worst > 5.0, what);
    }

    // topr: the R largest, ties to the lower index
    {
        double t[D];
        for (int i = 0; i < D; i++) t[i] = (double)(i % 10);  // values 9 at 9, 19, 29, 39; 8 at 8, 18, 28, 38
        int sigma[R];
        float rho[R];
        select_keyed(GRASS_TOPR, t, D, 6, 0, 0, PARAM_WQ, sigma, rho);
        int want[6] = {8, 9, 18, 19, 29, 39};  // the four 9s, then the two lowest-index 8s
        int same = 1;
        for (int j = 0; j < 6; j++) same &= sigma[j] == want[j] && rho[j] == 1.0f;
        expect(same, "topr takes the largest norms, ties to the lower index, rho 1");
    }

    // every selector: sorted indices in range; -nr: no repeats; norm-based: no zero-norm row while others remain
    {
        double z[D];
        for (int i = 0; i < D; i++) z[i] = i % 4 == 0 ? 0.0 : s[i];  // 10 zero rows, 30 non-zero
        for (int sel = 0; sel < GRASS_NUM_SELECTORS; sel++) {
            int ok_range = 1, ok_unique = 1, ok_zero = 1;
            int sigma[D];
            float rho[D];
            for (int t = 0; t < 500; t++) {
                int r = 1 + t % 30;
                select_keyed(sel, z, D, r, t, 1, PARAM_WDOWN, sigma, rho);
                for (int j = 0; j < r; j++) {
                    ok_range &= sigma[j] >= 0 && sigma[j] < D && (j == 0 || sigma[j] >= sigma[j - 1]);
                    ok_unique &= j == 0 || sigma[j] != sigma[j - 1];
                    if (sel != GRASS_UNIFORM && sel != GRASS_UNIFORM_NR) ok_zero &= z[sigma[j]] > 0;
                }
            }
            snprintf(what, sizeof(what), "%s: indices sorted and in range", grass_selector_names[sel]);
            expect(ok_range, what);
            if (sel == GRASS_MULTINORM_NR || sel == GRASS_UNIFORM_NR || sel == GRASS_TOPR) {
                snprintf(what, sizeof(what), "%s: never repeats an index", grass_selector_names[sel]);
                expect(ok_unique, what);
            }
            if (sel != GRASS_UNIFORM && sel != GRASS_UNIFORM_NR) {
                snprintf(what, sizeof(what), "%s: never selects a zero-norm row while non-zero ones remain", grass_selector_names[sel]);
                expect(ok_zero, what);
            }
        }
        // multinorm-nr asked for more rows than are non-zero takes every non-zero row, then zero ones
        int sigma[D];
        float rho[D];
        select_keyed(GRASS_MULTINORM_NR, z, D, 35, 0, 0, PARAM_WQ, sigma, rho);
        int nonzero = 0;
        for (int j = 0; j < 35; j++) nonzero += z[sigma[j]] > 0;
        expect(nonzero == 30, "multinorm-nr with r above the non-zero rows takes all of them");
    }

    // keys: the same key repeats the selection, any other key changes it
    for (int sel = GRASS_MULTINORM; sel < GRASS_NUM_SELECTORS; sel++) {
        int a[R], b[R], c[R], d[R], e[R];
        float ra[R], rb[R];
        select_keyed(sel, s, D, R, 3, 2, PARAM_WUP, a, ra);
        select_keyed(sel, s, D, R, 3, 2, PARAM_WUP, b, rb);
        select_keyed(sel, s, D, R, 4, 2, PARAM_WUP, c, rb);
        select_keyed(sel, s, D, R, 3, 1, PARAM_WUP, d, rb);
        select_keyed(sel, s, D, R, 3, 2, PARAM_WGATE, e, rb);
        snprintf(what, sizeof(what), "%s: same key, same indices; another refresh, layer or matrix, other indices", grass_selector_names[sel]);
        expect(!memcmp(a, b, sizeof(a)) && memcmp(a, c, sizeof(a)) && memcmp(a, d, sizeof(a)) && memcmp(a, e, sizeof(a)), what);
    }

    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
