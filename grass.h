/*
 * grass.h: the host half of Grass (docs/design.md §3), shared by the CPU trainer, the GPU trainer and every MPI rank
 * so that all of them select exactly the same rows: which side of a matrix is selected, the effective rank,
 * the refresh schedule, the five selectors, and the per-matrix sizes the memory plans use.
 * dev/reference/grass_ref.py implements the same selection in Python, number for number.
 *
 * A selection for a projected weight W (m x n) is r indices sigma[0..r) into the selected dimension of size D
 * (rows if the side is rows, else columns) and r scales rho; the compressed gradient is g = diag(rho) B G
 * (r x E, E the other dimension). Indices are returned sorted ascending (duplicates adjacent), so g's rows
 * follow W's order. Plain C that also compiles as C++.
 */
#ifndef GRASS_GRASS_H
#define GRASS_GRASS_H

#include <math.h>
#include "common.h"
#include "llama_config.h"
#include "rng.h"

enum { GRASS_TOPR, GRASS_MULTINORM, GRASS_MULTINORM_NR, GRASS_UNIFORM, GRASS_UNIFORM_NR, GRASS_NUM_SELECTORS };
static const char *grass_selector_names[GRASS_NUM_SELECTORS] = {"topr", "multinorm", "multinorm-nr", "uniform", "uniform-nr"};

enum { GRASS_SIDE_AUTO, GRASS_SIDE_ROWS, GRASS_SIDE_COLS };

static int grass_selector_from_name(const char *name) {
    for (int i = 0; i < GRASS_NUM_SELECTORS; i++)
        if (!strcmp(grass_selector_names[i], name)) return i;
    fail("--grass-select must be one of topr|multinorm|multinorm-nr|uniform|uniform-nr, got '%s'", name);
}

static int grass_side_from_name(const char *name) {
    if (!strcmp(name, "auto")) return GRASS_SIDE_AUTO;
    if (!strcmp(name, "rows")) return GRASS_SIDE_ROWS;
    if (!strcmp(name, "cols")) return GRASS_SIDE_COLS;
    fail("--grass-side must be one of auto|rows|cols, got '%s'", name);
}

// The shape of Grass for one projected matrix W (m x n).
typedef struct {
    int rows;  // 1: rows of W are selected (D = m, E = n); 0: columns (D = n, E = m)
    int D, E;  // size of the selected dimension and of the other one
    int r;     // effective rank: min(requested rank, D)
} GrassShape;

static GrassShape grass_shape(int side, int rank, int m, int n) {
    GrassShape s;
    s.rows = side == GRASS_SIDE_ROWS || (side == GRASS_SIDE_AUTO && m >= n);
    s.D = s.rows ? m : n;
    s.E = s.rows ? n : m;
    s.r = rank < s.D ? rank : s.D;
    return s;
}

static GrassShape grass_shape_of(const LlamaConfig *c, int kind, int side, int rank) {
    size_t m, n;
    llama_param_shape(c, kind, &m, &n);
    return grass_shape(side, rank, (int)m, (int)n);
}

// The sizes of Grass for a model: per projection kind its shape (the same in every layer) and where its
// layers start in the arrays of all projections' indices and scales (r each) and compressed gradients and
// moments (r x E each), stored kind-major then layer-major like the parameters. Both trainers size their
// Grass buffers from it.
typedef struct {
    int enabled;
    int selector, side, rank, interval;
    float alpha;
    uint64_t seed;
    GrassShape shape[NUM_PARAM_KINDS];
    size_t roff[NUM_PARAM_KINDS];  // offset of a kind's layer 0 among the indices and scales
    size_t goff[NUM_PARAM_KINDS];  // offset of a kind's layer 0 among the compressed gradients and moments
    size_t nsel, nstate;           // sum of r, sum of r x E over all projection matrices
    size_t full_numel;             // the largest projection matrix, m x n (the refresh scratch)
    int rmax, dmax;                // the largest r and D
} GrassPlan;

static void grass_plan(GrassPlan *p, const LlamaConfig *c, int enabled, const char *selector, const char *side, int rank,
                       int interval, float alpha, uint64_t seed) {
    memset(p, 0, sizeof(*p));
    p->enabled = enabled;
    if (!enabled) return;
    p->selector = grass_selector_from_name(selector);
    p->side = grass_side_from_name(side);
    p->rank = rank;
    p->interval = interval;
    p->alpha = alpha;
    p->seed = seed;
    for (int k = 0; k < NUM_PARAM_KINDS; k++) {
        if (!llama_param_kinds[k].is_projection) continue;
        GrassShape sh = grass_shape_of(c, k, p->side, rank);
        p->shape[k] = sh;
        p->roff[k] = p->nsel;
        p->goff[k] = p->nstate;
        p->nsel += (size_t)c->n_layers * sh.r;
        p->nstate += (size_t)c->n_layers * sh.r * sh.E;
        if ((size_t)sh.D * sh.E > p->full_numel) p->full_numel = (size_t)sh.D * sh.E;
        if (sh.r > p->rmax) p->rmax = sh.r;
        if (sh.D > p->dmax) p->dmax = sh.D;
    }
}

static size_t grass_sel_offset(const GrassPlan *p, int kind, int layer) { return p->roff[kind] + (size_t)layer * p->shape[kind].r; }
static size_t grass_state_offset(const GrassPlan *p, int kind, int layer) {
    return p->goff[kind] + (size_t)layer * p->shape[kind].r * p->shape[kind].E;
}

// Steps 0, K, 2K, ... refresh the selection; the moments restart there.
static int grass_is_refresh(int step, int interval) { return step % interval == 0; }
static int grass_refresh_number(int step, int interval) { return step / interval; }
// Adam's t for the subspace moments at step (1 at a refresh step).
static int grass_adam_t(int step, int interval) { return step % interval + 1; }

// The random stream of one selection: keyed by (seed, refresh number, layer, matrix kind).
static void grass_rng(Rng *rng, uint64_t seed, int refresh, int layer, int kind) {
    rng_init(rng, seed, RNG_STREAM_GRASS, (uint64_t)refresh, (uint64_t)layer * NUM_PARAM_KINDS + (uint64_t)kind);
}

// Index of the first cumulative weight > u in cdf[0..n) (cdf ascending, cdf[n-1] the total).
static int grass_cdf_search(const double *cdf, int n, double u) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] > u) hi = mid; else lo = mid + 1;
    }
    return lo;
}

static void grass_sort(int *sigma, float *rho, int r) {  // insertion sort by index, r is small
    for (int i = 1; i < r; i++) {
        int s = sigma[i];
        float w = rho[i];
        int j = i - 1;
        while (j >= 0 && sigma[j] > s) { sigma[j + 1] = sigma[j]; rho[j + 1] = rho[j]; j--; }
        sigma[j + 1] = s;
        rho[j + 1] = w;
    }
}

// Selects r of D rows given their squared norms s[0..D): fills sigma[r] (sorted ascending) and rho[r].
// When every norm is zero the norm-based selectors fall back to uniform probabilities.
static void grass_select(int selector, const double *s, int D, int r, Rng *rng, int *sigma, float *rho) {
    if (r < 1 || r > D) fail("internal: grass rank %d outside [1, %d]", r, D);
    double total = 0.0;
    for (int i = 0; i < D; i++) total += s[i];
    double *w = (double *)xmalloc(sizeof(double) * D);  // sampling weights (cumulative for with-replacement)
    int *taken = (int *)xcalloc(D, sizeof(int));
    switch (selector) {
        case GRASS_TOPR:
            for (int j = 0; j < r; j++) {  // r passes: the largest norm not yet taken, ties to the lower index
                int best = -1;
                for (int i = 0; i < D; i++)
                    if (!taken[i] && (best < 0 || s[i] > s[best])) best = i;
                taken[best] = 1;
                sigma[j] = best;
                rho[j] = 1.0f;
            }
            break;
        case GRASS_MULTINORM: {
            double acc = 0.0;
            for (int i = 0; i < D; i++) { acc += total > 0 ? s[i] : 1.0; w[i] = acc; }
            for (int j = 0; j < r; j++) {
                int i = grass_cdf_search(w, D, rng_uniform(rng) * acc);
                double q = (total > 0 ? s[i] : 1.0) / acc;
                sigma[j] = i;
                rho[j] = (float)(1.0 / sqrt(r * q));
            }
            break;
        }
        case GRASS_MULTINORM_NR:
            for (int j = 0; j < r; j++) {  // each draw from q renormalised over the rows not yet drawn
                double left = 0.0;
                int nonzero = 0;
                for (int i = 0; i < D; i++)
                    if (!taken[i]) { left += s[i]; nonzero += s[i] > 0; }
                double u = rng_uniform(rng) * (nonzero ? left : (double)(D - j)), acc = 0.0;
                int pick = -1, last = -1;
                for (int i = 0; i < D && pick < 0; i++) {
                    if (taken[i]) continue;
                    last = i;
                    acc += nonzero ? s[i] : 1.0;
                    if (acc > u && (!nonzero || s[i] > 0)) pick = i;
                }
                if (pick < 0) pick = last;  // u rounded to the very top of the range
                taken[pick] = 1;
                sigma[j] = pick;
                rho[j] = 1.0f;
            }
            break;
        case GRASS_UNIFORM:
            for (int j = 0; j < r; j++) {
                sigma[j] = (int)rng_below(rng, (uint64_t)D);
                rho[j] = (float)sqrt((double)D / r);
            }
            break;
        case GRASS_UNIFORM_NR: {
            int *perm = (int *)xmalloc(sizeof(int) * D);  // partial Fisher-Yates: the first r of a random permutation
            for (int i = 0; i < D; i++) perm[i] = i;
            for (int j = 0; j < r; j++) {
                int k = j + (int)rng_below(rng, (uint64_t)(D - j));
                int t = perm[j]; perm[j] = perm[k]; perm[k] = t;
                sigma[j] = perm[j];
                rho[j] = (float)sqrt((double)D / r);
            }
            free(perm);
            break;
        }
        default: fail("internal: unknown grass selector %d", selector);
    }
    free(w);
    free(taken);
    grass_sort(sigma, rho, r);
}

// Squared norms of the rows (rows = 1) or columns of a full gradient G (m x n, row-major) into s.
static void grass_norms(const float *G, int m, int n, int rows, double *s) {
    int D = rows ? m : n;
    for (int i = 0; i < D; i++) s[i] = 0.0;
    for (int a = 0; a < m; a++)
        for (int b = 0; b < n; b++) {
            double g = G[(size_t)a * n + b];
            s[rows ? a : b] += g * g;
        }
}

#endif
