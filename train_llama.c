/*
 * train_llama.c: the CPU reference trainer (binary train_llama_cpu). fp32 LLaMA forward and backward
 * (embedding, RMSNorm, RoPE in the HF rotate_half layout, causal attention with GQA, SwiGLU, untied lm_head,
 * mean cross-entropy), AdamW, warmup + cosine schedule, clipping, gradient accumulation, evaluation,
 * sampling and checkpoints. It is the readable specification the GPU trainer is checked against, and is
 * itself checked against the PyTorch reference in dev/reference/ and against Hugging Face transformers.
 *
 * Every kernel computes each output element in a fixed order on one thread, so results do not depend on
 * the number of OpenMP threads and a resumed run continues bit for bit.
 */
#include <math.h>
#include <omp.h>
#include "checkpoint.h"
#include "comm.h"
#include "common.h"
#include "dataloader.h"
#include "grass.h"
#include "llama_config.h"
#include "logger.h"
#include "rng.h"
#include "shard.h"
#include "train_config.h"
#include "train_setup.h"

// ----------------------------------------------------------------------------------------------------
// Kernels. Shapes in the comments: N = B*T rows (tokens), d = model width, hd = head dim.

static void embedding_forward(float *out, const int *tokens, const float *emb, int N, int d) {
    // out [N, d], emb [V, d]
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * d, emb + (size_t)tokens[n] * d, sizeof(float) * d);
}

static void embedding_backward(float *demb, const float *dout, const int *tokens, int N, int d) {
    // demb [V, d] += rows of dout [N, d]; threads own column ranges, so no two write the same element
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = (int)((long)d * id / nt), c1 = (int)((long)d * (id + 1) / nt);
        for (int n = 0; n < N; n++) {
            float *dst = demb + (size_t)tokens[n] * d;
            const float *src = dout + (size_t)n * d;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

static void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int d, float eps) {
    // out [N, d] = x / sqrt(mean(x^2) + eps) * w; rstd [N] keeps 1 / sqrt(mean(x^2) + eps)
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * d;
        float ss = 0.0f;
        for (int i = 0; i < d; i++) ss += xn[i] * xn[i];
        float r = 1.0f / sqrtf(ss / d + eps);
        rstd[n] = r;
        for (int i = 0; i < d; i++) out[(size_t)n * d + i] = xn[i] * r * w[i];
    }
}

static void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                             int N, int d) {
    // dx [N, d] += d(loss)/dx, dw [d] += d(loss)/dw
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * d, *gn = dout + (size_t)n * d;
        float r = rstd[n], dot = 0.0f;
        for (int i = 0; i < d; i++) dot += gn[i] * w[i] * xn[i];
        float c = dot * r * r * r / d;
        for (int i = 0; i < d; i++) dx[(size_t)n * d + i] += gn[i] * w[i] * r - xn[i] * c;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < d; i++) {
        float acc = 0.0f;
        for (int n = 0; n < N; n++) acc += dout[(size_t)n * d + i] * x[(size_t)n * d + i] * rstd[n];
        dw[i] += acc;
    }
}

// Matrix products. Weights are `out x in` row-major (HF layout): Y = X W^T.
#define MM_ROWS 4   // output rows per block
#define MM_COLS 64  // output columns per block (kept in registers across the k loop)

static float dot_product(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// out[i][c0 + l] += sum_k scale[i] * a[i][k * sk] * b[k * ldb + c0 + l] for i < rows (<= MM_ROWS),
// l < cols (<= MM_COLS), scale NULL meaning 1: one register block of matmul_rows.
static void matmul_accumulate_block(float *out, size_t ldo, const float *const *a, const float *scale, size_t sk,
                                    const float *b, size_t ldb, int rows, int K, int c0, int cols) {
    float acc[MM_ROWS][MM_COLS], sc[MM_ROWS];
    for (int i = 0; i < MM_ROWS; i++) sc[i] = scale && i < rows ? scale[i] : 1.0f;
    for (int i = 0; i < rows; i++)
        for (int l = 0; l < cols; l++) acc[i][l] = out[i * ldo + c0 + l];
    if (rows == MM_ROWS && cols == MM_COLS) {
        for (int k = 0; k < K; k++) {
            const float *bk = b + (size_t)k * ldb + c0;
            float a0 = sc[0] * a[0][k * sk], a1 = sc[1] * a[1][k * sk], a2 = sc[2] * a[2][k * sk], a3 = sc[3] * a[3][k * sk];
            for (int l = 0; l < MM_COLS; l++) {
                acc[0][l] += a0 * bk[l];
                acc[1][l] += a1 * bk[l];
                acc[2][l] += a2 * bk[l];
                acc[3][l] += a3 * bk[l];
            }
        }
    } else {
        for (int k = 0; k < K; k++) {
            const float *bk = b + (size_t)k * ldb + c0;
            for (int i = 0; i < rows; i++) {
                float ai = sc[i] * a[i][k * sk];
                for (int l = 0; l < cols; l++) acc[i][l] += ai * bk[l];
            }
        }
    }
    for (int i = 0; i < rows; i++)
        for (int l = 0; l < cols; l++) out[i * ldo + c0 + l] = acc[i][l];
}

// The one product shape behind the forward, both gradients of a matmul and Grass's compressed gradients:
// out [R, C] += diag(scale) A B, where row i of A is read from a + idx(i) * row_stride with stride sk between
// its K entries (idx(i) = sel[i], or i when sel is NULL; scale NULL means 1) and B [K, C] is row-major. Each
// output element is summed over k in order by one thread.
static void matmul_rows(float *out, int R, int C, const float *a, size_t row_stride, const int *sel, const float *scale,
                        size_t sk, const float *b, int K) {
    int rb = (R + MM_ROWS - 1) / MM_ROWS, cb = (C + MM_COLS - 1) / MM_COLS;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < rb * cb; blk++) {
        int r0 = (blk / cb) * MM_ROWS, c0 = (blk % cb) * MM_COLS;
        int rows = R - r0 < MM_ROWS ? R - r0 : MM_ROWS, cols = C - c0 < MM_COLS ? C - c0 : MM_COLS;
        const float *rowp[MM_ROWS];
        for (int i = 0; i < MM_ROWS; i++) {
            int r = r0 + (i < rows ? i : 0);
            rowp[i] = a + (size_t)(sel ? sel[r] : r) * row_stride;
        }
        matmul_accumulate_block(out + (size_t)r0 * C, C, rowp, scale ? scale + r0 : NULL, sk, b, C, rows, K, c0, cols);
    }
}

static void matmul_forward(float *out, const float *inp, const float *w, int N, int C, int OC) {
    // out [N, OC] = inp [N, C] @ w [OC, C]^T = inp @ wt with wt = w^T [C, OC]. The transpose costs OC*C,
    // small next to the N*OC*C product.
    static void *scratch = NULL;  // grown to the largest weight seen
    static size_t scratch_cap = 0;
    float *wt = (float *)xreserve(&scratch, &scratch_cap, sizeof(float) * OC * C);  // [C, OC]
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++)
        for (int o = 0; o < OC; o++) wt[(size_t)c * OC + o] = w[(size_t)o * C + c];
    memset(out, 0, sizeof(float) * N * OC);
    matmul_rows(out, N, OC, inp, C, NULL, NULL, 1, wt, C);
}

static void matmul_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, int N, int C, int OC) {
    // dinp [N, C] += dout [N, OC] @ w [OC, C];  dw [OC, C] += dout^T @ inp [N, C]. Either may be NULL.
    if (dinp) matmul_rows(dinp, N, C, dout, OC, NULL, NULL, 1, w, OC);
    if (dw) matmul_rows(dw, OC, C, dout, 1, NULL, NULL, OC, inp, N);
}

// Rotates x [B*T, nh, hd] in place, position t = row % T, rotate_half layout: the pair is (i, i + hd/2).
// sign = +1 applies RoPE; sign = -1 applies its inverse (the transpose), which is the backward pass.
static void rope_apply(float *x, const float *cosb, const float *sinb, int N, int T, int nh, int hd, float sign) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *c = cosb + (size_t)(n % T) * half, *s = sinb + (size_t)(n % T) * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + ((size_t)n * nh + h) * hd;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + half] = b * c[i] + a * si;
            }
        }
    }
}

static void attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int B, int T, int H,
                              int KV, int hd) {
    // q, out [B, T, H, hd]; k, v [B, T, KV, hd]; att [B, H, T, T] softmax probabilities (causal: zero above)
    int qd = H * hd, kvd = KV * hd, group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *qt = q + ((size_t)b * T + t) * qd + h * hd;
                const float *kb = k + (size_t)b * T * kvd + (h / group) * hd;
                const float *vb = v + (size_t)b * T * kvd + (h / group) * hd;
                float *row = att + (((size_t)b * H + h) * T + t) * T;
                float mx = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    row[t2] = dot_product(qt, kb + (size_t)t2 * kvd, hd) * scale;
                    if (row[t2] > mx) mx = row[t2];
                }
                float sum = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) { row[t2] = expf(row[t2] - mx); sum += row[t2]; }
                for (int t2 = 0; t2 <= t; t2++) row[t2] /= sum;
                for (int t2 = t + 1; t2 < T; t2++) row[t2] = 0.0f;
                float *ot = out + ((size_t)b * T + t) * qd + h * hd;
                for (int i = 0; i < hd; i++) ot[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++)
                    for (int i = 0; i < hd; i++) ot[i] += row[t2] * vb[(size_t)t2 * kvd + i];
            }
}

static void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                               const float *k, const float *v, int B, int T, int H, int KV, int hd) {
    // dq [B, T, H, hd], dk, dv [B, T, KV, hd] accumulate (+=). One task per (b, kv head) owns its dk, dv rows.
    int qd = H * hd, kvd = KV * hd, group = H / KV;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *datt = (float *)xmalloc(sizeof(float) * T);
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int g = 0; g < KV; g++)
                for (int h = g * group; h < (g + 1) * group; h++)
                    for (int t = 0; t < T; t++) {
                        const float *row = att + (((size_t)b * H + h) * T + t) * T;
                        const float *dot = dout + ((size_t)b * T + t) * qd + h * hd;
                        const float *qt = q + ((size_t)b * T + t) * qd + h * hd;
                        float *dqt = dq + ((size_t)b * T + t) * qd + h * hd;
                        size_t kvoff = (size_t)b * T * kvd + g * hd;
                        float sum = 0.0f;
                        for (int t2 = 0; t2 <= t; t2++) {
                            datt[t2] = dot_product(dot, v + kvoff + (size_t)t2 * kvd, hd);
                            sum += row[t2] * datt[t2];
                        }
                        for (int t2 = 0; t2 <= t; t2++) {
                            float dpre = row[t2] * (datt[t2] - sum) * scale;
                            const float *kt2 = k + kvoff + (size_t)t2 * kvd;
                            float *dkt2 = dk + kvoff + (size_t)t2 * kvd, *dvt2 = dv + kvoff + (size_t)t2 * kvd;
                            for (int i = 0; i < hd; i++) {
                                dqt[i] += dpre * kt2[i];
                                dkt2[i] += dpre * qt[i];
                                dvt2[i] += row[t2] * dot[i];
                            }
                        }
                    }
        free(datt);
    }
}

static void swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    // out = silu(gate) * up, elementwise over [N, ffn]
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + expf(-g));
        dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        dup[i] = dout[i] * g * sig;
    }
}

// Softmax of logits [N, V] in place (they become probabilities) and the per-token loss -log p(target).
static void crossentropy_forward(float *losses, float *logits, const int *targets, int N, int V) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = logits + (size_t)n * V;
        float mx = -INFINITY, sum = 0.0f;
        for (int i = 0; i < V; i++) mx = row[i] > mx ? row[i] : mx;
        for (int i = 0; i < V; i++) { row[i] = expf(row[i] - mx); sum += row[i]; }
        for (int i = 0; i < V; i++) row[i] /= sum;
        losses[n] = -logf(row[targets[n]]);
    }
}

// Probabilities [N, V] become d(loss)/d(logits) in place, loss = scale * sum of per-token losses.
static void crossentropy_backward(float *probs, const int *targets, int N, int V, float scale) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = probs + (size_t)n * V;
        for (int i = 0; i < V; i++) row[i] *= scale;
        row[targets[n]] -= scale;
    }
}

// ----------------------------------------------------------------------------------------------------
// The model

typedef struct {
    float *x;       // [L+1, N, d] residual stream: the input of each layer, then the last layer's output
    float *ln1;     // [L, N, d] attention RMSNorm output
    float *rstd1;   // [L, N]
    float *q;       // [L, N, H*hd] after RoPE
    float *k;       // [L, N, KV*hd] after RoPE
    float *v;       // [L, N, KV*hd]
    float *att;     // [L, B, H, T, T] attention probabilities
    float *atty;    // [L, N, H*hd] attention output before o_proj
    float *h;       // [L, N, d] residual stream after attention
    float *ln2;     // [L, N, d] MLP RMSNorm output
    float *rstd2;   // [L, N]
    float *gate;    // [L, N, ffn]
    float *up;      // [L, N, ffn]
    float *act;     // [L, N, ffn] silu(gate) * up
    float *lnf;     // [N, d] final RMSNorm output
    float *rstdf;   // [N]
    float *logits;  // [N, V] logits, then probabilities, then their gradient
    float *losses;  // [N]
    // backward scratch
    float *dres;    // [N, d] gradient of the residual stream
    float *dln;     // [N, d]
    float *dq;      // [N, H*hd]
    float *dk;      // [N, KV*hd]
    float *dv;      // [N, KV*hd]
    float *datty;   // [N, H*hd]
    float *dgate;   // [N, ffn]
    float *dup;     // [N, ffn]
    float *dact;    // [N, ffn]
    float *rope_cos, *rope_sin;  // [T, hd/2]
} Activations;

// Grass state (docs/design.md §3): for every projection matrix (kind, layer) r selected indices and scales, and the
// r x E compressed gradient and subspace Adam moments, stored kind-major then layer-major like the parameters.
typedef struct {
    GrassPlan p;                          // sizes and settings
    int *sigma;                           // [nsel] selected rows (or columns), ascending
    float *rho;                           // [nsel] their scales
    float *g;                             // [nstate] compressed gradients g = diag(rho) B G, then the updates U
    float *m, *v;                         // [slay.count] subspace Adam moments of the owned parts (shard.h)
    ShardLayout slay;                     // where the owned parts of the r x E state are
    float *full;                          // [full_numel] one full gradient, computed at refresh steps only
    int refresh_now;                      // backward selects anew (micro-batch 0 of a refresh step)
    int refresh_index;                    // the refresh number, which keys the selection
    long full_grads;                      // full projection gradients computed so far (refreshes only)
} GrassState;

typedef struct {
    LlamaConfig cfg;
    ParamLayout lay;     // parameters
    ParamLayout glay;    // gradients and AdamW moments: every tensor (AdamW) or those outside the projections (Grass)
    int B, T;            // the largest batch the activations hold
    float *params;       // [lay.count]
    float *grads;        // [glay.count]
    float *adam_m;       // [slay.count] AdamW first moment of the owned parts (all of every tensor with one owner)
    float *adam_v;       // [slay.count] AdamW second moment
    ShardLayout slay;    // where the owned parts of the AdamW tensors are
    Activations a;
    GrassState grass;
    const Comm *comm;    // the data-parallel ranks gradients are averaged over
    int ranks;           // the ranks of the run (or of --dry-run --ranks)
    int owners;          // the ranks the optimizer state is divided among: ranks with --shard-optimizer, else 1
    ShardPlan reduce;    // the gradients' buckets (shard.h)
    ShardPlan weights;   // the weights' buckets, all-gathered after a sharded update
    ShardPlan updates;   // Grass's updates U, all-gathered before a sharded update of the weights
    float *bucket;       // [ranks x the largest slot] a bucket on its way to a collective (several ranks only)
    float *slot;         // [the largest slot] this rank's averaged part of a reduce-scattered bucket
} Llama;

typedef struct {
    void **ptr;
    size_t count, elem;  // elements and bytes per element
    const char *category;
} Buffer;

#define LLAMA_NUM_CATEGORIES 7
static const char *llama_categories[LLAMA_NUM_CATEGORIES] = {"parameters", "gradients", "optimizer state",
                                                             "grass refresh", "activations", "backward scratch",
                                                             "communication"};

#define LLAMA_MAX_BUFFERS 48

// Every buffer of the model and its size: the CPU memory plan (allocation, --dry-run and the startup
// summary use it). Gradients and optimizer state follow docs/design.md §3: under Grass a projection matrix has an
// r x E compressed gradient, 2 r x E moments and r indices and scales, and one full-gradient scratch for the
// largest matrix serves every refresh.
static int llama_buffers(Llama *m, Buffer *buf) {
    const LlamaConfig *c = &m->cfg;
    size_t L = c->n_layers, N = (size_t)m->B * m->T, d = c->dim, q = llama_q_dim(c), kv = llama_kv_dim(c);
    size_t f = c->ffn_dim, V = c->vocab_size, H = c->n_heads, T = m->T, P = m->lay.count, G = m->glay.count;
    Activations *a = &m->a;
    GrassState *gs = &m->grass;
    int n = 0;
#define BUF(p, cnt, cat)                                                                      \
    do {                                                                                      \
        if (n == LLAMA_MAX_BUFFERS) fail("internal: more than %d buffers", LLAMA_MAX_BUFFERS); \
        buf[n++] = (Buffer){(void **)&(p), (cnt), sizeof(*(p)), (cat)};                       \
    } while (0)
    BUF(m->params, P, "parameters");
    BUF(m->grads, G, "gradients");
    BUF(m->adam_m, m->slay.count, "optimizer state");
    BUF(m->adam_v, m->slay.count, "optimizer state");
    if (gs->p.enabled) {
        BUF(gs->g, gs->p.nstate, "gradients");
        BUF(gs->m, gs->slay.count, "optimizer state");
        BUF(gs->v, gs->slay.count, "optimizer state");
        BUF(gs->sigma, gs->p.nsel, "optimizer state");
        BUF(gs->rho, gs->p.nsel, "optimizer state");
        BUF(gs->full, gs->p.full_numel, "grass refresh");
    }
    BUF(a->x, (L + 1) * N * d, "activations");
    BUF(a->ln1, L * N * d, "activations");
    BUF(a->rstd1, L * N, "activations");
    BUF(a->q, L * N * q, "activations");
    BUF(a->k, L * N * kv, "activations");
    BUF(a->v, L * N * kv, "activations");
    BUF(a->att, L * m->B * H * T * T, "activations");
    BUF(a->atty, L * N * q, "activations");
    BUF(a->h, L * N * d, "activations");
    BUF(a->ln2, L * N * d, "activations");
    BUF(a->rstd2, L * N, "activations");
    BUF(a->gate, L * N * f, "activations");
    BUF(a->up, L * N * f, "activations");
    BUF(a->act, L * N * f, "activations");
    BUF(a->lnf, N * d, "activations");
    BUF(a->rstdf, N, "activations");
    BUF(a->logits, N * V, "activations");
    BUF(a->losses, N, "activations");
    BUF(a->rope_cos, T * llama_head_dim(c) / 2, "activations");
    BUF(a->rope_sin, T * llama_head_dim(c) / 2, "activations");
    BUF(a->dres, N * d, "backward scratch");
    BUF(a->dln, N * d, "backward scratch");
    BUF(a->dq, N * q, "backward scratch");
    BUF(a->dk, N * kv, "backward scratch");
    BUF(a->dv, N * kv, "backward scratch");
    BUF(a->datty, N * q, "backward scratch");
    BUF(a->dgate, N * f, "backward scratch");
    BUF(a->dup, N * f, "backward scratch");
    BUF(a->dact, N * f, "backward scratch");
    if (m->ranks > 1) {
        size_t slot = m->reduce.max_slot > m->weights.max_slot ? m->reduce.max_slot : m->weights.max_slot;
        BUF(m->bucket, slot * m->owners, "communication");
        BUF(m->slot, slot, "communication");
    }
#undef BUF
    return n;
}
// Prints the plan: bytes per category and the total.
static void llama_plan_print(Llama *m) {
    Buffer buf[LLAMA_MAX_BUFFERS];
    int n = llama_buffers(m, buf);
    size_t total = 0;
    printf("memory plan (host, fp32 %s%s):\n", m->grass.p.enabled ? "Grass" : "AdamW",
           m->owners > 1 ? ", optimizer state sharded over the ranks" : "");
    for (int k = 0; k < LLAMA_NUM_CATEGORIES; k++) {
        size_t bytes = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(buf[i].category, llama_categories[k])) bytes += buf[i].count * buf[i].elem;
        printf("  %-18s %14zu bytes %10.3f GiB\n", llama_categories[k], bytes, bytes / GIB);
        total += bytes;
    }
    printf("  %-18s %14zu bytes %10.3f GiB\n", "total", total, total / GIB);
    // the part of gradients and optimizer state that belongs to the block projections (what Grass changes)
    const GrassPlan *gp = &m->grass.p;
    size_t proj = llama_projection_numel(&m->cfg);
    size_t pg = gp->enabled ? 4 * gp->nstate : 4 * proj, po = gp->enabled ? 8 * gp->nstate + 8 * gp->nsel : 8 * proj;
    printf("  projections: gradients %zu bytes, optimizer state %zu bytes\n", pg, po);
}

// Sizes of the model for a batch of B x T on each of `ranks` ranks and the optimizer the options choose (no
// allocation): the buffers, and how the ranks divide the collectives and the optimizer state (shard.h).
static void llama_plan(Llama *m, const LlamaConfig *cfg, int B, int T, const TrainOptions *opt, int grass_rank, int ranks) {
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    m->B = B;
    m->T = T;
    m->comm = &comm_solo;
    llama_param_layout(cfg, &m->lay);
    GrassPlan *gp = &m->grass.p;
    grass_plan(gp, cfg, !strcmp(opt->optimizer, "grass"), opt->grass_select, opt->grass_side, grass_rank,
               opt->grass_interval, opt->grass_alpha, (uint64_t)opt->seed);
    llama_param_layout_of(cfg, &m->glay, !gp->enabled);
    m->ranks = ranks;
    m->owners = opt->shard_optimizer ? ranks : 1;
    shard_layout(&m->slay, cfg, !gp->enabled, NULL, m->owners);
    shard_layout(&m->grass.slay, cfg, 0, gp, m->owners);
    size_t bucket = (size_t)((double)opt->bucket_mb * 1048576.0 / sizeof(float));
    shard_plan(&m->reduce, SHARD_GRADS, cfg, &m->lay, &m->glay, gp, m->owners, bucket);
    shard_plan(&m->weights, SHARD_WEIGHTS, cfg, &m->lay, &m->glay, gp, m->owners, bucket);
    shard_plan(&m->updates, SHARD_UPDATES, cfg, &m->lay, &m->glay, gp, m->owners, bucket);
}

static void llama_alloc(Llama *m, const LlamaConfig *cfg, int B, int T, const TrainOptions *opt, int grass_rank, int ranks) {
    llama_plan(m, cfg, B, T, opt, grass_rank, ranks);
    Buffer buf[LLAMA_MAX_BUFFERS];
    int n = llama_buffers(m, buf);
    for (int i = 0; i < n; i++) *buf[i].ptr = xcalloc(buf[i].count, buf[i].elem);
    llama_rope_tables(cfg, m->a.rope_cos, m->a.rope_sin, T);
}

static void llama_free(Llama *m) {
    Buffer buf[LLAMA_MAX_BUFFERS];
    int n = llama_buffers(m, buf);
    for (int i = 0; i < n; i++) free(*buf[i].ptr);
    shard_plan_free(&m->reduce);
    shard_plan_free(&m->weights);
    shard_plan_free(&m->updates);
}

static float *llama_param(Llama *m, float *base, int kind, int layer) {
    return base + llama_param_offset(&m->cfg, &m->lay, kind, layer);
}

// The full gradient of a tensor; under Grass the projections have none.
static float *llama_grad(Llama *m, int kind, int layer) {
    if (m->grass.p.enabled && llama_param_kinds[kind].is_projection) fail("internal: no full gradient for a Grass projection");
    return m->grads + llama_param_offset(&m->cfg, &m->glay, kind, layer);
}

// ----------------------------------------------------------------------------------------------------
// Grass on the CPU (docs/design.md §3). W is m x n (out x in); dout = dY [N, m], inp = X [N, n].

static int *grass_sigma(GrassState *gs, int kind, int layer) { return gs->sigma + grass_sel_offset(&gs->p, kind, layer); }
static float *grass_rho(GrassState *gs, int kind, int layer) { return gs->rho + grass_sel_offset(&gs->p, kind, layer); }

// g [r, E] += diag(rho) B dY^T X without forming dY^T X: rows side, g[j] += rho_j * sum_t dY[t, sigma_j] X[t];
// columns side, g[j] += rho_j * sum_t X[t, sigma_j] dY[t]. The selected columns of dY (or X) are read in place.
static void grass_compressed_grad(float *g, const int *sigma, const float *rho, GrassShape sh, const float *dout,
                                  const float *inp, int N, int n, int m) {
    if (sh.rows) matmul_rows(g, sh.r, sh.E, dout, 1, sigma, rho, (size_t)m, inp, N);  // columns sigma of dY, rows of X
    else matmul_rows(g, sh.r, sh.E, inp, 1, sigma, rho, (size_t)n, dout, N);          // columns sigma of X, rows of dY
}

// A refresh of one matrix: its full gradient G = dY^T X into the scratch, averaged over the ranks, the squared
// norms of its rows (or columns), a new selection keyed by (seed, refresh, layer, kind), the same on every
// rank, g from the selected rows of G, and the moments restarted. Every rank puts the rank-averaged rows into
// its g, so the average of the g's at the end of the step counts them once (docs/design.md §3, §7).
static void grass_refresh_matrix(GrassState *gs, const Comm *comm, int kind, int layer, const float *dout, const float *inp,
                                 int N, int n, int m) {
    GrassShape sh = gs->p.shape[kind];
    memset(gs->full, 0, sizeof(float) * (size_t)m * n);
    matmul_backward(NULL, gs->full, dout, inp, NULL, N, n, m);
    comm_mean_f32(comm, gs->full, (size_t)m * n);
    gs->full_grads++;
    double *norms = (double *)xmalloc(sizeof(double) * sh.D);
    grass_norms(gs->full, m, n, sh.rows, norms);
    Rng rng;
    grass_rng(&rng, gs->p.seed, gs->refresh_index, layer, kind);
    int *sigma = grass_sigma(gs, kind, layer);
    float *rho = grass_rho(gs, kind, layer);
    grass_select(gs->p.selector, norms, sh.D, sh.r, &rng, sigma, rho);
    free(norms);
    size_t off = grass_state_offset(&gs->p, kind, layer);
    float *g = gs->g + off;
    for (int j = 0; j < sh.r; j++)
        for (int e = 0; e < sh.E; e++)
            g[(size_t)j * sh.E + e] += rho[j] * (sh.rows ? gs->full[(size_t)sigma[j] * n + e] : gs->full[(size_t)e * n + sigma[j]]);
    size_t at = shard_offset(&gs->slay, kind, layer);  // the owned part's moments restart
    memset(gs->m + at, 0, sizeof(float) * gs->slay.chunk[kind]);
    memset(gs->v + at, 0, sizeof(float) * gs->slay.chunk[kind]);
}

// The backward of a projection out [N, m] = inp [N, n] @ W^T: dinp += dout @ W, and the weight gradient:
// the full one (AdamW), or Grass's compressed one (a refresh computes the full one first).
static void projection_backward(Llama *m, int kind, int layer, float *dinp, const float *dout, const float *inp, int N,
                                int n, int mo) {
    matmul_backward(dinp, NULL, dout, inp, llama_param(m, m->params, kind, layer), N, n, mo);
    GrassState *gs = &m->grass;
    if (!gs->p.enabled) {
        matmul_backward(NULL, llama_grad(m, kind, layer), dout, inp, NULL, N, n, mo);
    } else if (gs->refresh_now) {
        grass_refresh_matrix(gs, m->comm, kind, layer, dout, inp, N, n, mo);
    } else {
        grass_compressed_grad(gs->g + grass_state_offset(&gs->p, kind, layer), grass_sigma(gs, kind, layer),
                              grass_rho(gs, kind, layer), gs->p.shape[kind], dout, inp, N, n, mo);
    }
}

// Subspace Adam on elements [lo, hi) of one matrix's g (its owned part; mom and var hold that part): g there is
// overwritten with U. t counts the steps since the last refresh (1 at the refresh).
static void grass_adam(float *g, float *mom, float *var, size_t lo, size_t hi, const TrainOptions *opt, int t) {
    float b1 = opt->beta1, b2 = opt->beta2, bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
#pragma omp parallel for schedule(static)
    for (size_t i = lo; i < hi; i++) {
        float *mi = mom + (i - lo), *vi = var + (i - lo);
        *mi = b1 * *mi + (1.0f - b1) * g[i];
        *vi = b2 * *vi + (1.0f - b2) * g[i] * g[i];
        g[i] = (*mi / bc1) / (sqrtf(*vi / bc2) + opt->eps);
    }
}

// The update of elements [lo, hi) of one matrix W [D x E rows side, E x D columns side] from its U [r, E]: weight
// decay, then the scatter W -= lr * alpha * P U.
static void grass_apply(GrassState *gs, float *W, int kind, int layer, size_t lo, size_t hi, float lr, const TrainOptions *opt) {
    GrassShape sh = gs->p.shape[kind];
    const float *U = gs->g + grass_state_offset(&gs->p, kind, layer);
    float decay = 1.0f - lr * opt->weight_decay;
    const int *sigma = grass_sigma(gs, kind, layer);
    const float *rho = grass_rho(gs, kind, layer);
    if (decay != 1.0f) {
#pragma omp parallel for schedule(static)
        for (size_t i = lo; i < hi; i++) W[i] *= decay;
    }
    // each thread owns whole elements of W and walks j in order, so duplicate indices accumulate deterministically
    float step = lr * gs->p.alpha;
    int n = sh.rows ? sh.E : sh.D;  // W's row length
#pragma omp parallel for schedule(static)
    for (int e = 0; e < sh.E; e++)
        for (int j = 0; j < sh.r; j++) {
            size_t w = sh.rows ? (size_t)sigma[j] * n + e : (size_t)e * n + sigma[j];
            if (w >= lo && w < hi) W[w] -= step * rho[j] * U[(size_t)j * sh.E + e];
        }
}

// checkpoint_read_model's consumer: a tensor into the flat parameter buffer.
static void llama_take_tensor(void *ctx, int kind, int layer, const float *data, size_t n) {
    Llama *m = (Llama *)ctx;
    memcpy(llama_param(m, m->params, kind, layer), data, sizeof(float) * n);
}

static void llama_init_weights(Llama *m, uint64_t seed) {
    int nt = llama_num_tensors(&m->cfg);
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < nt; i++) {
        int kind, layer;
        llama_tensor_at(&m->cfg, i, &kind, &layer);
        llama_init_tensor(&m->cfg, llama_param(m, m->params, kind, layer), kind, layer, seed);
    }
}

// Forward through the blocks and the final norm: fills the activations up to lnf for tokens [B, T].
static void llama_forward_blocks(Llama *m, const int *tokens, int B, int T) {
    const LlamaConfig *c = &m->cfg;
    Activations *a = &m->a;
    int N = B * T, d = c->dim, qd = llama_q_dim(c), kvd = llama_kv_dim(c), f = c->ffn_dim, hd = llama_head_dim(c);
    embedding_forward(a->x, tokens, llama_param(m, m->params, PARAM_EMBED, 0), N, d);
    for (int l = 0; l < c->n_layers; l++) {
        float *x = a->x + (size_t)l * N * d, *xo = x + (size_t)N * d;
        float *ln1 = a->ln1 + (size_t)l * N * d, *ln2 = a->ln2 + (size_t)l * N * d, *h = a->h + (size_t)l * N * d;
        float *q = a->q + (size_t)l * N * qd, *k = a->k + (size_t)l * N * kvd, *v = a->v + (size_t)l * N * kvd;
        float *atty = a->atty + (size_t)l * N * qd, *att = a->att + (size_t)l * B * c->n_heads * T * T;
        float *gate = a->gate + (size_t)l * N * f, *up = a->up + (size_t)l * N * f, *act = a->act + (size_t)l * N * f;
        rmsnorm_forward(ln1, a->rstd1 + (size_t)l * N, x, llama_param(m, m->params, PARAM_ATTN_NORM, l), N, d, c->norm_eps);
        matmul_forward(q, ln1, llama_param(m, m->params, PARAM_WQ, l), N, d, qd);
        matmul_forward(k, ln1, llama_param(m, m->params, PARAM_WK, l), N, d, kvd);
        matmul_forward(v, ln1, llama_param(m, m->params, PARAM_WV, l), N, d, kvd);
        rope_apply(q, a->rope_cos, a->rope_sin, N, T, c->n_heads, hd, 1.0f);
        rope_apply(k, a->rope_cos, a->rope_sin, N, T, c->n_kv_heads, hd, 1.0f);
        attention_forward(atty, att, q, k, v, B, T, c->n_heads, c->n_kv_heads, hd);
        matmul_forward(h, atty, llama_param(m, m->params, PARAM_WO, l), N, qd, d);
        for (size_t i = 0; i < (size_t)N * d; i++) h[i] += x[i];
        rmsnorm_forward(ln2, a->rstd2 + (size_t)l * N, h, llama_param(m, m->params, PARAM_MLP_NORM, l), N, d, c->norm_eps);
        matmul_forward(gate, ln2, llama_param(m, m->params, PARAM_WGATE, l), N, d, f);
        matmul_forward(up, ln2, llama_param(m, m->params, PARAM_WUP, l), N, d, f);
        swiglu_forward(act, gate, up, (size_t)N * f);
        matmul_forward(xo, act, llama_param(m, m->params, PARAM_WDOWN, l), N, f, d);
        for (size_t i = 0; i < (size_t)N * d; i++) xo[i] += h[i];
    }
    rmsnorm_forward(a->lnf, a->rstdf, a->x + (size_t)c->n_layers * N * d, llama_param(m, m->params, PARAM_FINAL_NORM, 0),
                    N, d, c->norm_eps);
}

// Full forward: logits [B*T, V]; with targets, the softmax and per-token losses too. Returns the mean loss
// (0 without targets).
static float llama_forward(Llama *m, const int *tokens, const int *targets, int B, int T) {
    if (B > m->B || T > m->T) fail("internal: batch %d x %d exceeds the allocated %d x %d", B, T, m->B, m->T);
    const LlamaConfig *c = &m->cfg;
    int N = B * T;
    llama_forward_blocks(m, tokens, B, T);
    matmul_forward(m->a.logits, m->a.lnf, llama_param(m, m->params, PARAM_LM_HEAD, 0), N, c->dim, c->vocab_size);
    if (!targets) return 0.0f;
    crossentropy_forward(m->a.losses, m->a.logits, targets, N, c->vocab_size);
    double sum = 0.0;
    for (int n = 0; n < N; n++) sum += m->a.losses[n];
    return (float)(sum / N);
}

// Backward of the loss `loss_scale * sum of per-token losses` after llama_forward with targets; the
// gradients accumulate into m->grads and Grass's compressed gradients (llama_zero_grads before the first
// micro-batch of a step).
static void llama_backward(Llama *m, const int *tokens, const int *targets, int B, int T, float loss_scale) {
    const LlamaConfig *c = &m->cfg;
    Activations *a = &m->a;
    int N = B * T, d = c->dim, qd = llama_q_dim(c), kvd = llama_kv_dim(c), f = c->ffn_dim, hd = llama_head_dim(c);
    size_t Nd = (size_t)N * d;
    crossentropy_backward(a->logits, targets, N, c->vocab_size, loss_scale);
    memset(a->dln, 0, sizeof(float) * Nd);
    matmul_backward(a->dln, llama_grad(m, PARAM_LM_HEAD, 0), a->logits, a->lnf,
                    llama_param(m, m->params, PARAM_LM_HEAD, 0), N, d, c->vocab_size);
    memset(a->dres, 0, sizeof(float) * Nd);
    rmsnorm_backward(a->dres, llama_grad(m, PARAM_FINAL_NORM, 0), a->dln, a->x + (size_t)c->n_layers * Nd,
                     llama_param(m, m->params, PARAM_FINAL_NORM, 0), a->rstdf, N, d);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        float *x = a->x + (size_t)l * Nd, *ln1 = a->ln1 + (size_t)l * Nd, *ln2 = a->ln2 + (size_t)l * Nd, *h = a->h + (size_t)l * Nd;
        float *q = a->q + (size_t)l * N * qd, *k = a->k + (size_t)l * N * kvd, *v = a->v + (size_t)l * N * kvd;
        float *atty = a->atty + (size_t)l * N * qd, *att = a->att + (size_t)l * B * c->n_heads * T * T;
        float *gate = a->gate + (size_t)l * N * f, *up = a->up + (size_t)l * N * f, *act = a->act + (size_t)l * N * f;
        // MLP: x[l+1] = h + down(silu(gate(ln2)) * up(ln2)); dres holds d x[l+1] and becomes d h
        memset(a->dact, 0, sizeof(float) * N * f);
        projection_backward(m, PARAM_WDOWN, l, a->dact, a->dres, act, N, f, d);
        swiglu_backward(a->dgate, a->dup, a->dact, gate, up, (size_t)N * f);
        memset(a->dln, 0, sizeof(float) * Nd);
        projection_backward(m, PARAM_WGATE, l, a->dln, a->dgate, ln2, N, d, f);
        projection_backward(m, PARAM_WUP, l, a->dln, a->dup, ln2, N, d, f);
        rmsnorm_backward(a->dres, llama_grad(m, PARAM_MLP_NORM, l), a->dln, h,
                         llama_param(m, m->params, PARAM_MLP_NORM, l), a->rstd2 + (size_t)l * N, N, d);
        // attention: h = x + o(attn(rope(q(ln1)), rope(k(ln1)), v(ln1))); dres becomes d x[l]
        memset(a->datty, 0, sizeof(float) * N * qd);
        projection_backward(m, PARAM_WO, l, a->datty, a->dres, atty, N, qd, d);
        memset(a->dq, 0, sizeof(float) * N * qd);
        memset(a->dk, 0, sizeof(float) * N * kvd);
        memset(a->dv, 0, sizeof(float) * N * kvd);
        attention_backward(a->dq, a->dk, a->dv, a->datty, att, q, k, v, B, T, c->n_heads, c->n_kv_heads, hd);
        rope_apply(a->dq, a->rope_cos, a->rope_sin, N, T, c->n_heads, hd, -1.0f);
        rope_apply(a->dk, a->rope_cos, a->rope_sin, N, T, c->n_kv_heads, hd, -1.0f);
        memset(a->dln, 0, sizeof(float) * Nd);
        projection_backward(m, PARAM_WQ, l, a->dln, a->dq, ln1, N, d, qd);
        projection_backward(m, PARAM_WK, l, a->dln, a->dk, ln1, N, d, kvd);
        projection_backward(m, PARAM_WV, l, a->dln, a->dv, ln1, N, d, kvd);
        rmsnorm_backward(a->dres, llama_grad(m, PARAM_ATTN_NORM, l), a->dln, x,
                         llama_param(m, m->params, PARAM_ATTN_NORM, l), a->rstd1 + (size_t)l * N, N, d);
    }
    embedding_backward(llama_grad(m, PARAM_EMBED, 0), a->dres, tokens, N, d);
    m->grass.refresh_now = 0;  // a refresh selects on the step's first micro-batch only
}

// Sum of squares, in fixed chunks so the result does not depend on the thread count.
static double grad_sumsq(const float *g, size_t n) {
    enum { CHUNKS = 64 };
    double part[CHUNKS];
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < CHUNKS; ch++) {
        size_t i0 = n * ch / CHUNKS, i1 = n * (ch + 1) / CHUNKS;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)g[i] * g[i];
        part[ch] = s;
    }
    double s = 0.0;
    for (int ch = 0; ch < CHUNKS; ch++) s += part[ch];
    return s;
}

static void grad_scale(float *g, size_t n, float s) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= s;
}

// One AdamW step (torch.optim.AdamW semantics) on n parameters; t is the 1-based step count.
static void adamw_update(float *p, const float *g, float *mom, float *var, size_t n, float lr, float beta1, float beta2,
                         float eps, float weight_decay, int t) {
    float bc1 = 1.0f - powf(beta1, (float)t), bc2_sqrt = sqrtf(1.0f - powf(beta2, (float)t));
    float step_size = lr / bc1, decay = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        mom[i] = beta1 * mom[i] + (1.0f - beta1) * gi;
        var[i] = beta2 * var[i] + (1.0f - beta2) * gi * gi;
        p[i] = p[i] * decay - step_size * mom[i] / (sqrtf(var[i]) / bc2_sqrt + eps);
    }
}

// Zeroes the gradients before a step's first micro-batch; under Grass, marks whether this step refreshes.
static void llama_zero_grads(Llama *m, int step) {
    memset(m->grads, 0, sizeof(float) * m->glay.count);
    GrassState *gs = &m->grass;
    if (!gs->p.enabled) return;
    memset(gs->g, 0, sizeof(float) * gs->p.nstate);
    gs->refresh_now = grass_is_refresh(step, gs->p.interval);
    gs->refresh_index = grass_refresh_number(step, gs->p.interval);
}

// This rank's part [*lo, *hi) of a tensor of n elements (all of it with one owner).
static void llama_owned(const Llama *m, size_t n, size_t *lo, size_t *hi) {
    shard_slice(n, m->owners, m->owners > 1 ? m->comm->rank : 0, lo, hi);
}

// The buffer segment s of plan p lies in: the gradients, Grass's g, or the weights.
static float *llama_segment_data(Llama *m, const ShardPlan *p, const ShardSeg *s) {
    return (s->grass ? m->grass.g : p->what == SHARD_WEIGHTS ? m->params : m->grads) + s->offset;
}

// Averages the step's gradients (the full ones and Grass's compressed ones) over the ranks, bucket by bucket
// (shard.h): all of them with one owner (an all-reduce), or each rank's own parts (a reduce-scatter).
static void llama_reduce_grads(Llama *m) {
    if (m->comm->world == 1) return;
    const ShardPlan *p = &m->reduce;
    int sharded = p->ranks > 1;
    for (int b = 0; b < p->nbucket; b++) {
        const ShardBucket *bk = &p->bucket[b];
        memset(m->bucket, 0, sizeof(float) * bk->slot * p->ranks);
        for (int i = bk->first; i < bk->first + bk->count; i++) {
            const ShardSeg *s = &p->seg[i];
            const float *src = llama_segment_data(m, p, s);
            for (int r = 0; r < p->ranks; r++) {
                size_t e0, e1;
                shard_seg_range(s, r, &e0, &e1);
                for (size_t e = e0; e < e1; e++) m->bucket[shard_packed_index(p, s, r, e)] = src[e];
            }
        }
        float *mine = m->bucket;
        int owner = sharded ? m->comm->rank : 0;
        if (sharded) comm_reduce_scatter_mean_f32(m->comm, m->bucket, mine = m->slot, bk->slot);
        else comm_mean_f32(m->comm, m->bucket, bk->slot);
        for (int i = bk->first; i < bk->first + bk->count; i++) {
            const ShardSeg *s = &p->seg[i];
            float *dst = llama_segment_data(m, p, s);
            size_t e0, e1, base = (size_t)owner * bk->slot;  // where this rank's slot starts
            shard_seg_range(s, owner, &e0, &e1);
            for (size_t e = e0; e < e1; e++) dst[e] = mine[shard_packed_index(p, s, owner, e) - base];
        }
    }
}

// Every rank's own parts of plan p's segments (the weights or Grass's updates) to every rank, bucket by bucket.
static void llama_allgather(Llama *m, const ShardPlan *p) {
    if (m->owners == 1) return;
    for (int b = 0; b < p->nbucket; b++) {
        const ShardBucket *bk = &p->bucket[b];
        for (int pass = 0; pass < 2; pass++) {  // this rank's parts into its slot; after the all-gather, every part out
            for (int i = bk->first; i < bk->first + bk->count; i++) {
                const ShardSeg *s = &p->seg[i];
                float *data = llama_segment_data(m, p, s);
                for (int r = pass ? 0 : m->comm->rank; r < (pass ? p->ranks : m->comm->rank + 1); r++) {
                    size_t e0, e1;
                    shard_seg_range(s, r, &e0, &e1);
                    for (size_t e = e0; e < e1; e++) {
                        float *packed = &m->bucket[shard_packed_index(p, s, r, e)];
                        if (pass == 0) *packed = data[e];
                        else data[e] = *packed;
                    }
                }
            }
            if (pass == 0) comm_allgather(m->comm, m->bucket, sizeof(float) * bk->slot);
        }
    }
}

// Floats all-reduced per step on every rank of plain data parallelism: in an ordinary step, the part of it that
// belongs to the projections, and in a refresh step (which also averages each projection's full gradient).
static void llama_comm_floats(const Llama *m, size_t *step, size_t *proj, size_t *refresh) {
    const GrassState *gs = &m->grass;
    size_t proj_full = llama_projection_numel(&m->cfg);
    *step = m->glay.count + (gs->p.enabled ? gs->p.nstate : 0);
    *proj = gs->p.enabled ? gs->p.nstate : proj_full;
    *refresh = *step + (gs->p.enabled ? proj_full : 0);
}

// Bytes each rank's collectives move in a step (the buffers of its reduce, all-reduce or all-gather calls), by
// category: the gradients, the updated weights and Grass's updates (with --shard-optimizer), and a refresh's full
// projection gradients (refresh steps only). A world of one moves none.
static void llama_comm_bytes(const Llama *m, double *bytes) {
    size_t step, proj, refresh;
    llama_comm_floats(m, &step, &proj, &refresh);
    int several = m->ranks > 1, sharded = m->owners > 1;
    bytes[COMM_GRADS] = several ? 4.0 * m->reduce.total : 0.0;
    bytes[COMM_WEIGHTS] = sharded ? 4.0 * m->weights.total : 0.0;
    bytes[COMM_UPDATES] = sharded && m->grass.p.enabled ? 4.0 * m->updates.total : 0.0;
    bytes[COMM_REFRESH] = several ? 4.0 * (refresh - step) : 0.0;
}


// The global gradient norm over every gradient there is (full gradients, and Grass's compressed ones): each rank sums
// the squares of its own parts.
static float llama_grad_norm(Llama *m) {
    const ShardPlan *p = &m->reduce;
    double sum = 0.0;
    for (int i = 0; i < p->nseg; i++) {
        size_t e0, e1;
        shard_seg_range(&p->seg[i], m->owners > 1 ? m->comm->rank : 0, &e0, &e1);
        sum += grad_sumsq(llama_segment_data(m, p, &p->seg[i]) + e0, e1 - e0);
    }
    if (m->owners > 1) sum = comm_sum_f64(m->comm, sum, "an all-reduce of the gradient norm");
    return (float)sqrt(sum);
}

// Clips (when opt->grad_clip > 0) by the global norm (llama_grad_norm's), then updates this rank's parts: AdamW on
// the tensors with full gradients (weight decay on the matrices only), Grass on the projections (subspace Adam on
// the owned parts of g, every rank's U to every rank, then the owned parts of the weights). With the state sharded,
// the updated weights then go to every rank. step is 0-based.
static void llama_optimizer_step(Llama *m, const TrainOptions *opt, int step, float lr, float norm) {
    GrassState *gs = &m->grass;
    const ShardPlan *p = &m->reduce;
    if (opt->grad_clip > 0.0f) {
        float coef = opt->grad_clip / (norm + 1e-6f);
        for (int i = 0; coef < 1.0f && i < p->nseg; i++) {
            size_t e0, e1;
            shard_seg_range(&p->seg[i], m->owners > 1 ? m->comm->rank : 0, &e0, &e1);
            grad_scale(llama_segment_data(m, p, &p->seg[i]) + e0, e1 - e0, coef);
        }
    }
    if (gs->p.enabled) {
        for (int kind = 0; kind < NUM_PARAM_KINDS; kind++) {
            if (!llama_param_kinds[kind].is_projection) continue;
            size_t lo, hi, n = (size_t)gs->p.shape[kind].r * gs->p.shape[kind].E;
            llama_owned(m, n, &lo, &hi);
            for (int l = 0; l < m->cfg.n_layers; l++) {
                size_t at = shard_offset(&gs->slay, kind, l);
                grass_adam(gs->g + grass_state_offset(&gs->p, kind, l), gs->m + at, gs->v + at, lo, hi, opt,
                           grass_adam_t(step, gs->p.interval));
            }
        }
        llama_allgather(m, &m->updates);
        for (int kind = 0; kind < NUM_PARAM_KINDS; kind++) {
            if (!llama_param_kinds[kind].is_projection) continue;
            size_t lo, hi;
            llama_owned(m, llama_param_numel(&m->cfg, kind), &lo, &hi);
            for (int l = 0; l < m->cfg.n_layers; l++) grass_apply(gs, llama_param(m, m->params, kind, l), kind, l, lo, hi, lr, opt);
        }
    }
    for (int kind = 0; kind < NUM_PARAM_KINDS; kind++) {
        if (!llama_param_present(&m->cfg, kind) || (gs->p.enabled && llama_param_kinds[kind].is_projection)) continue;
        float wd = llama_param_is_matrix(kind) ? opt->weight_decay : 0.0f;
        size_t lo, hi;
        llama_owned(m, llama_param_numel(&m->cfg, kind), &lo, &hi);
        for (int l = 0; l < (llama_param_kinds[kind].per_layer ? m->cfg.n_layers : 1); l++) {
            size_t at = shard_offset(&m->slay, kind, l);
            adamw_update(llama_param(m, m->params, kind, l) + lo, m->grads + llama_param_offset(&m->cfg, &m->glay, kind, l) + lo,
                         m->adam_m + at, m->adam_v + at, hi - lo, lr, opt->beta1, opt->beta2, opt->eps, wd, step + 1);
        }
    }
    llama_allgather(m, &m->weights);
}

// ----------------------------------------------------------------------------------------------------
// Training driver

// The mean loss of `batches` validation batches, each of a step's tokens (val->accum micro-batches on every rank).
static float evaluate(Llama *m, DataLoader *val, int batches) {
    dataloader_reset(val);
    double sum = 0.0;
    batches *= val->accum;
    for (int i = 0; i < batches; i++) {
        dataloader_next_batch(val);
        sum += llama_forward(m, val->inputs, val->targets, val->B, val->T);
    }
    return (float)comm_mean_f64(m->comm, sum / batches);
}

// Generates `ntok` tokens after BOS (docs/design.md §4, --sample-every) and prints them.
static void sample_print(Llama *m, const Tokenizer *tok, int ntok, float temperature, uint64_t seed, int step) {
    int T = m->T, V = m->cfg.vocab_size, d = m->cfg.dim;
    int *seq = (int *)xmalloc(sizeof(int) * (ntok + 1));
    float *logits = (float *)xmalloc(sizeof(float) * V);
    Rng r;
    seq[0] = sample_start(&r, tok, &m->cfg, seed, step);
    for (int i = 1; i <= ntok; i++) {
        int ctx = i < T ? i : T, *window = seq + i - ctx;
        llama_forward_blocks(m, window, 1, ctx);
        matmul_forward(logits, m->a.lnf + (size_t)(ctx - 1) * d, llama_param(m, m->params, PARAM_LM_HEAD, 0), 1, d, V);
        seq[i] = sample_next(logits, V, temperature, &r);
    }
    sample_report(tok, seq + 1, ntok, step);
    free(seq);
    free(logits);
}

// The trainer state (docs/design.md §8, checkpoint.h's sections): AdamW's moments and Grass's selection and moments live
// in host buffers. Grass's counters are derived from the step. The parameters are fp32, so model.safetensors holds them
// exactly and a save writes no master weights; a resume (resuming) takes those of a GPU checkpoint, whose
// model.safetensors holds bf16 weights, as its parameters. With the moments sharded (owners > 1) their sections move a
// tensor at a time (StateIO), gathered from every rank's part for a save, each rank taking its part on a resume.
static int trainer_state_sections(Llama *m, StateHeader *h, StateSection *sec, int resuming) {
    GrassState *gs = &m->grass;
    int parts = m->owners > 1;
    void *data[STATE_TENSORS];
    data[STATE_ADAMW_M] = parts ? NULL : m->adam_m;
    data[STATE_ADAMW_V] = parts ? NULL : m->adam_v;
    data[STATE_GRASS_SIGMA] = gs->sigma;
    data[STATE_GRASS_RHO] = gs->rho;
    data[STATE_GRASS_M] = parts ? NULL : gs->m;
    data[STATE_GRASS_V] = parts ? NULL : gs->v;
    data[STATE_MASTER] = m->params;
    return state_sections(h, sec, m->glay.count, &gs->p, 0, resuming ? m->lay.count : 0, data);
}

// The sharded moments' StateIO: part p of section i is the p-th tensor it holds (shard_state_tensors).
typedef struct {
    Llama *m;
    const StateSection *sec;
} LlamaStateIO;

// Section i's part `part`: this rank's owned elements of it (*owned), their range [*lo, *hi) and the tensor's size.
static size_t llama_state_part(LlamaStateIO *io, int i, int part, float **owned, size_t *lo, size_t *hi) {
    Llama *m = io->m;
    int t = io->sec[i].tensor, grass = t == STATE_GRASS_M || t == STATE_GRASS_V, kind, layer;
    shard_state_tensors(&m->cfg, grass ? SHARD_STATE_GRASS : m->grass.p.enabled ? SHARD_STATE_DENSE : SHARD_STATE_ALL, part,
                        &kind, &layer);
    GrassShape sh = m->grass.p.shape[kind];
    size_t n = grass ? (size_t)sh.r * sh.E : llama_param_numel(&m->cfg, kind);
    float *base = t == STATE_ADAMW_M ? m->adam_m : t == STATE_ADAMW_V ? m->adam_v : t == STATE_GRASS_M ? m->grass.m : m->grass.v;
    *owned = base + shard_offset(grass ? &m->grass.slay : &m->slay, kind, layer);
    llama_owned(m, n, lo, hi);
    return n;
}

static int llama_state_parts(void *ctx, int i) {
    LlamaStateIO *io = (LlamaStateIO *)ctx;
    int t = io->sec[i].tensor, grass = t == STATE_GRASS_M || t == STATE_GRASS_V;
    return shard_state_tensors(&io->m->cfg, grass ? SHARD_STATE_GRASS : io->m->grass.p.enabled ? SHARD_STATE_DENSE : SHARD_STATE_ALL,
                               -1, NULL, NULL);
}

static size_t llama_state_part_bytes(void *ctx, int i, int part) {
    float *owned;
    size_t lo, hi;
    return 4 * llama_state_part((LlamaStateIO *)ctx, i, part, &owned, &lo, &hi);
}

static void llama_state_fetch(void *ctx, int i, int part, void *dst) {
    LlamaStateIO *io = (LlamaStateIO *)ctx;
    float *owned;
    size_t lo, hi, n = llama_state_part(io, i, part, &owned, &lo, &hi);
    shard_gather(io->m->comm, owned, dst, n, sizeof(float));
}

static void llama_state_store(void *ctx, int i, int part, const void *src) {
    float *owned;
    size_t lo, hi;
    llama_state_part((LlamaStateIO *)ctx, i, part, &owned, &lo, &hi);
    memcpy(owned, (const float *)src + lo, sizeof(float) * (hi - lo));
}

// Rank 0 writes the checkpoint: every rank holds the same weights, and the data position is the same window index on
// every rank; sharded moments are gathered from every rank as they are written. The others wait until it is complete.
static void save_checkpoint(Llama *m, const TrainOptions *opt, int step, const DataLoader *train, int accum) {
    StateHeader h = state_header_make(opt, &m->cfg, &m->grass.p, step, train, m->comm->world, accum);
    StateSection sec[STATE_MAX_SECTIONS];
    int n = trainer_state_sections(m, &h, sec, 0);
    LlamaStateIO ctx = {m, sec};
    StateIO io = {llama_state_parts, llama_state_part_bytes, llama_state_fetch, llama_state_store, &ctx};
    if (m->comm->rank == 0) checkpoint_save(opt, step, &m->cfg, m->params, "F32", NULL, n, sec, &io, &m->grass.p);
    else if (m->owners > 1) state_serve(n, sec, &io);
    comm_barrier(m->comm);
}

// Restores the optimizer state (this rank's parts of sharded moments), step and data position of the checkpoint in
// dir; returns the step.
static int load_trainer_state(Llama *m, const TrainOptions *opt, const char *dir, DataLoader *train, int accum) {
    StateHeader h = state_header_make(opt, &m->cfg, &m->grass.p, 0, train, m->comm->world, accum);
    StateSection sec[STATE_MAX_SECTIONS];
    int n = trainer_state_sections(m, &h, sec, 1);
    LlamaStateIO ctx = {m, sec};
    StateIO io = {llama_state_parts, llama_state_part_bytes, llama_state_fetch, llama_state_store, &ctx};
    checkpoint_load_state(dir, &h, n, sec, &io, &m->grass.p);
    dataloader_seek(train, (int)h.data[0], (int)h.data[1], (int)h.data[2]);
    return (int)h.step;
}

#ifndef TESTING
int main(int argc, char **argv) {
    Comm comm;
    TrainOptions opt;
    if (!train_setup_start(&comm, &opt, &argc, &argv, 0)) return 0;

    train_setup_guard(&comm, &opt);
    TrainSetup setup;
    train_setup_model(&setup, &opt);
    const LlamaConfig cfg = setup.cfg;
    const char *weights_dir = setup.weights_dir, *resume_dir = setup.resume_dir;
    int grass_rank = setup.grass_rank;
    int world = comm.world, rank = comm.rank, planned_ranks = opt.ranks ? opt.ranks : world;  // --ranks: --dry-run's
    int accum = train_options_grad_accum(&opt, planned_ranks), B = opt.batch, T = opt.seq;

    Llama model;
    char desc[256];
    llama_config_describe(&cfg, desc, sizeof(desc));
    llama_plan(&model, &cfg, B, T, &opt, grass_rank, planned_ranks);
    printf("model: %s; %zu parameters\n", desc, model.lay.count);
    if (model.grass.p.enabled)
        printf("grass: rank %d, interval %d, selector %s, side %s, alpha %g\n", grass_rank, opt.grass_interval,
               opt.grass_select, opt.grass_side, (double)opt.grass_alpha);
    llama_plan_print(&model);
    size_t comm_step, comm_proj, comm_refresh;
    llama_comm_floats(&model, &comm_step, &comm_proj, &comm_refresh);
    printf("all-reduce per step and rank: %zu bytes, of which projections %zu bytes (refresh steps: %zu bytes)\n",
           4 * comm_step, 4 * comm_proj, 4 * comm_refresh);
    double comm_bytes[COMM_CATEGORIES];
    llama_comm_bytes(&model, comm_bytes);
    if (planned_ranks > 1) comm_bytes_print("host", planned_ranks, model.owners > 1 ? "optimizer state sharded" : "", "fp32", comm_bytes);
    if (opt.dry_run) {  // the plan needs the sizes only: nothing is allocated. Every rank holds the same.
        printf("plan of each of %d rank%s: batch %d x %d tokens, %d micro-batches per step = %lld tokens per step\n",
               planned_ranks, planned_ranks > 1 ? "s" : "", B, T, accum, (long long)B * T * accum * planned_ranks);
        comm_finalize(&comm);
        return 0;
    }
    TrainData data;  // opened before the model is allocated and initialised, so that a bad shard is reported at once
    train_data_open(&data, &opt, &cfg, rank, world);
    DataLoader *train = &data.train, *val = &data.val;
    llama_alloc(&model, &cfg, B, T, &opt, grass_rank, world);
    model.comm = &comm;
    if (world > 1) printf("ranks: %d\n", world);
    printf("batch: %d x %d tokens, %d micro-batches per step = %lld tokens per step; %d threads\n", B, T, accum,
           (long long)B * T * accum * world, omp_get_max_threads());
    if (weights_dir) {
        checkpoint_read_model(weights_dir, &cfg, llama_take_tensor, &model);
        printf("weights: %s\n", weights_dir);
    } else {
        llama_init_weights(&model, (uint64_t)opt.seed);
    }

    if (opt.eval_only) {
        Logger none;
        logger_init(&none, NULL, 0);
        logger_val(&none, 0, evaluate(&model, val, opt.eval_batches));
        comm_finalize(&comm);
        return 0;
    }
    int start = resume_dir[0] ? load_trainer_state(&model, &opt, resume_dir, train, accum) : 0;
    Logger log;
    train_log_open(&log, &opt, &setup, rank, start);
    if (data.have_val && schedule_eval_due(&opt, start, start))
        logger_val(&log, start, evaluate(&model, val, opt.eval_batches));

    int skipped = 0;  // steps skipped for a non-finite loss or gradient norm (--skip-nonfinite)
    for (int step = start; step < opt.steps; step++) {
        comm.step = step + 1;  // the step a timed-out collective names
        double t0 = wall_time();
        llama_zero_grads(&model, step);
        double loss = 0.0;
        for (int micro = 0; micro < accum; micro++) {
            dataloader_next_batch(train);
            loss += llama_forward(&model, train->inputs, train->targets, B, T);
            llama_backward(&model, train->inputs, train->targets, B, T, 1.0f / ((float)B * T * accum));
        }
        loss = comm_mean_f64(&comm, loss / accum);
        llama_reduce_grads(&model);
        float lr = lr_at_step(&opt, step), norm = llama_grad_norm(&model);
        int done = step + 1;
        if (guard_step_finite(&opt, &log, &skipped, done, loss, norm)) {
            llama_optimizer_step(&model, &opt, step, lr, norm);
            double ms = 1000.0 * (wall_time() - t0);
            double step_bytes[COMM_CATEGORIES];
            memcpy(step_bytes, comm_bytes, sizeof(step_bytes));
            if (!grass_is_refresh(step, opt.grass_interval)) step_bytes[COMM_REFRESH] = 0.0;
            logger_step(&log, done, opt.steps, (float)loss, lr, norm, ms, (double)B * T * accum * world / (ms / 1000.0), -1, -1,
                        world > 1 ? step_bytes : NULL, NULL);
        }
        if (data.have_val && schedule_eval_due(&opt, done, start))
            logger_val(&log, done, evaluate(&model, val, opt.eval_batches));
        if (rank == 0 && schedule_sample_due(&opt, done))
            sample_print(&model, setup.have_tok ? &setup.tok : NULL, opt.sample_tokens, opt.sample_temperature, (uint64_t)opt.seed,
                         done);
        int saved = schedule_ckpt_due(&opt, done);
        if (saved) save_checkpoint(&model, &opt, done, train, accum);
        if (done < opt.steps && guard_stop_requested(&comm)) {
            if (guard_saves(&opt) && !saved) save_checkpoint(&model, &opt, done, train, accum);
            guard_exit_interrupted(&comm, &opt, done);
        }
    }
    logger_close(&log);
    train_data_close(&data);
    train_setup_close(&setup);
    llama_free(&model);
    comm_finalize(&comm);
    return 0;
}
#endif
