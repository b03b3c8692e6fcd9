/*
 * llama_model.cuh: the LLaMA model on the GPU for train_llama.cu: the memory plan (every device allocation,
 * by category; --dry-run prints it without touching a GPU, and the allocator uses exactly it), the parameter,
 * gradient and optimizer buffers (the flat layout of llama_config.h, in floatX), the activations with the
 * recomputation levels of docs/design.md §6, forward, backward and the AdamW step. The math is train_llama.c's; the
 * kernels are in kernels/.
 *
 * Recomputation (--recompute): 0 keeps every activation of every layer; 1 recomputes the two RMSNorm outputs
 * and the SwiGLU product in the backward (cheap elementwise work) instead of keeping them per layer; 2 keeps
 * only each layer's input and reruns the whole layer forward before its backward.
 *
 * Padding: the GPU stores the model with its ffn width rounded up to matmul_padded (1b's 5461 to 5464), so
 * every product has 16-byte aligned rows for cuBLASLt's fast kernels (kernels/matmul.cuh). The extra rows of
 * gate_proj and up_proj and columns of down_proj are zero, their gradients are exactly zero (so AdamW and
 * weight decay keep them zero), and Grass never selects them: the trainer computes the model exactly. Only
 * the boundary sees it: weights and moments go in and out in the model's shapes (gpu_tensor_copy).
 *
 * Tied embeddings (cfg.tie_embeddings): the lm_head is the embedding's storage (llama_config.h's layout gives it no
 * elements of its own, and its offset is the embedding's), so every loop over tensors sees the matrix once. Its
 * gradient is the sum of both uses: the lm_head's weight-gradient product and the embedding backward both add into
 * it (+=), zeroed once per step; with several ranks it is averaged once, after the embedding backward has added the
 * second use (gpu_backward).
 */
#pragma once

#include "kernels/common.cuh"
#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/crossentropy.cuh"
#include "kernels/embedding.cuh"
#include "kernels/matmul.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "kernels/swiglu.cuh"
#include "comm_gpu.cuh"
#include "gpu_profile.cuh"
#include "grass.cuh"
#include "llama_config.h"
#include "train_config.h"

#define GPU_MATMUL_WORKSPACE ((size_t)32 << 20)  // cuBLASLt workspace
#define GPU_LOGITS_CHUNK_BYTES ((size_t)256 << 20)  // the lm_head's logits are computed this many bytes at a time
// The projections that read one input, whose backward runs together (gpu_projections_backward): q, k and v from
// PARAM_WQ on, which read ln1; gate and up from PARAM_WGATE on, which read ln2.
enum { GPU_QKV = 3, GPU_GATE_UP = 2 };
static_assert(GPU_QKV <= GRASS_GROUP_MAX && GPU_GATE_UP <= GRASS_GROUP_MAX, "a backward group larger than grass.cuh's");

enum { GPU_WEIGHTS, GPU_MASTER, GPU_GRADS, GPU_OPTSTATE, GPU_GRASS_REFRESH, GPU_ACTS, GPU_WORKSPACE, GPU_COMM, GPU_NUM_CATEGORIES };
static const char *gpu_category_names[GPU_NUM_CATEGORIES] = {"weights", "master weights", "gradients", "optimizer state",
                                                             "grass refresh", "activations", "workspace", "communication"};

typedef struct {
    floatX *x;             // [L+1, N, d] residual stream: each layer's input, then the last layer's output
    floatX *ln1;           // [La, N, d] attention RMSNorm output
    float *rstd1;          // [Ls, N]
    floatX *q;             // [Ls, N, H*hd] after RoPE
    floatX *k;             // [Ls, N, KV*hd] after RoPE
    floatX *v;             // [Ls, N, KV*hd]
    float *lse;            // [Ls, B, H, T] attention logsumexp
    floatX *atty;          // [Ls, N, H*hd] attention output
    floatX *h;             // [Ls, N, d] residual stream after attention
    floatX *ln2;           // [La, N, d] MLP RMSNorm output
    float *rstd2;          // [Ls, N]
    floatX *gate, *up;     // [Ls, N, ffn]
    floatX *act;           // [La, N, ffn] silu(gate) * up
    floatX *lnf;           // [N, d] final RMSNorm output
    float *rstdf;          // [N]
    float *losses;         // [N] per-token loss
    int *tokens, *targets; // [N]
    int *buckets;          // [3N + 1] embedding-backward buckets
    float *rope_cos, *rope_sin;  // [T, hd/2]
    // backward scratch (one layer)
    floatX *dres, *dln;    // [N, d]
    floatX *dq, *datty;    // [N, H*hd]
    floatX *dk, *dv;       // [N, KV*hd]
    floatX *dgate, *dup, *dact;  // [N, ffn]
    float *attn_scratch;   // [attention_backward_scratch_floats]: D [B, H, T] (and version 7's dS tiles)
    float *norm_scratch;   // rmsnorm backward partial sums
    floatX *logits;        // [chunk_rows, V] the lm_head's logits, then their gradient
    double *norm_partials; // [NORM_BLOCKS]
    float *norm_out;       // [1]
    double *finite_out;    // [1] the sum of squares of gpu_state_finite
} GpuActivations;

// Grass on the GPU (grass.cuh): the plan shared with the CPU trainer, and the device (and host) buffers.
typedef struct {
    GrassPlan p;          // the model's shapes (grass.h): the same selection as the CPU trainer
    size_t stored_full_numel;  // the largest projection matrix as stored (refresh scratch); p.full_numel: the model's
    int stored_dmax;           // the largest selected dimension as stored; p.dmax: the model's
    int *sigma;           // [nsel] selected rows (or columns), ascending
    float *rho;           // [nsel] their scales
    float *g;             // [nsel x E summed: nstate] fp32 compressed gradients, then the update U; with --shard-weights
                          // [slay.count]: this rank's parts of them, summed over the ranks and micro-batches
    float *gwin;          // [gwin_numel] --shard-weights: one layer's g (at gwoff[kind]) until its reduce-scatter, and
                          // in the optimizer one layer's U gathered from the ranks
    size_t gwoff[NUM_PARAM_KINDS], gwin_numel;
    void *m, *v;          // [slay.count] subspace Adam moments of the owned parts (shard.h), float or bf16
    ShardLayout slay;     // where the owned parts of the r x E state are
    float *full;          // [stored_full_numel] one full gradient, at refresh steps only
    int group_max;        // the most projections one compressed product serves (grass_group_size)
    floatX *sel;          // [group_max, N, matmul_padded(rmax)] the gathered, scaled columns of one product
    double *norms;        // [stored_dmax] row or column norms of the refresh gradient, padding included
    int *host_sigma;      // [nsel] staging: the selection is made on the host (grass.h), then copied
    float *host_rho;      // [nsel]
    double *host_norms;   // [p.dmax] the norms selected from: the model's sh.D, without the padding
    int refresh_now, refresh_index;
} GpuGrass;

typedef struct {
    LlamaConfig stored_cfg;  // the sizes as stored: model_cfg with ffn_dim = matmul_padded(ffn) (see the top)
    LlamaConfig model_cfg;   // the model's sizes (checkpoints, initial weights, Grass selection, FLOPs)
    ParamLayout lay;      // parameters
    ParamLayout glay;     // gradients and AdamW moments: every tensor, or those outside the projections (Grass)
    int B, T;             // the micro-batch the activations hold
    int ranks;            // data-parallel ranks (the all-reduce buffers exist with several)
    int recompute;        // 0, 1, 2 (see the top of this file)
    int master_weights;   // 1: fp32 master copy; 0: floatX weights updated with stochastic rounding
    int state_bf16;       // optimizer moments in bf16 (else fp32)
    int chunk_rows;       // lm_head rows per logits chunk
    int owners;           // the ranks the optimizer state is divided among: ranks with --shard-optimizer, else 1
    int owner;            // this rank's place among them (0 with one owner)
    ShardLayout slay;     // where the owned parts of the AdamW moments (glay's tensors) are
    ShardLayout mlay;     // where the owned parts of the master weights (lay's tensors) are
    ShardPlan reduce;     // the gradients' buckets (shard.h)
    ShardPlan weights;    // the weights' buckets, all-gathered after a sharded update
    ShardPlan updates;    // Grass's updates U, all-gathered before a sharded update of the weights
    int reduce_bf16;      // --reduce-dtype bf16: the ranks' gradients are summed in bf16 (else fp32)
    size_t bucket_bytes;  // of each bucket buffer: the largest bucket of the three plans
    void *bucket[2];      // [bucket_bytes] two bucket buffers, in turn: one fills while the other is in a collective
    cudaEvent_t bucket_free[2];  // where each buffer's last collective and unpacking end
    int next_seg;         // the reduce plan's segment the backward finishes next
    int bucket_turn;      // counts the uses of the bucket buffers: use t takes bucket[t % 2]
    int reduce_buf;       // the buffer of the gradient bucket being filled
    int shard_weights;    // --shard-weights: params holds this rank's parts (mlay's layout); a layer's weights are
                          // gathered into wlayer before its forward and backward, the others' into wglobal
    floatX *wlayer[2];    // [layer_numel] two layers' gathered weights, layer l in wlayer[l % 2]
    int wlayer_of[2];     // the layer each holds (-1: none, or stale after an update)
    floatX *wglobal;      // [global_numel] the gathered embedding, or lm_head (untied: in the embedding's place, as the
                          // two are needed in turn), and the final norm
    int wembed_ok, whead_ok;  // whether wglobal holds the current embedding; lm_head and final norm
    cudaEvent_t wready[3];  // where the last gathers into wlayer[0], wlayer[1] and wglobal end
    size_t woff[NUM_PARAM_KINDS];     // a kind's place in its gathered buffer (a layer's or the global one)
    size_t layer_numel, global_numel;
    size_t *owned_ranges; // [2 x reduce.nseg] this rank's parts of the full gradients, then of g: start, end (the norm's)
    int owned_full, owned_grass;  // how many of each
    floatX *params;       // [P] weights, or [mlay.count] this rank's parts of them (--shard-weights)
    float *master;        // [mlay.count] fp32 master weights of the owned parts, or NULL
    floatX *grads;        // [G] (G = glay.count), or with --shard-weights [slay.count] this rank's parts, summed over
                          // the ranks and micro-batches
    floatX *gwin;         // [gwin_numel] --shard-weights: the gradients being computed, before their reduce-scatter: those
                          // outside the blocks (the lm_head's, reduced before the embedding backward, then the
                          // embedding's in the same place), then one layer's; kind's at gwoff[kind]
    size_t gwoff[NUM_PARAM_KINDS], gwin_global, gwin_numel;
    void *mom, *var;      // [slay.count] AdamW moments of the owned parts, float or bf16
    GpuActivations a;
    GpuGrass grass;
    Matmul mm;
    cudaStream_t stream;
    int *host_buckets;    // [3N + 1]
    int bucket_count;     // distinct tokens of the micro-batch (embedding_buckets' U)
    GpuComm *gcomm;       // the data-parallel ranks gradients are averaged over (NULL: one rank)
    int reduce_in_backward;  // this backward is the step's last: average each layer's gradients as it finishes
    GpuProfile prof;      // --profile: GPU time by kind of work (gpu_profile.cuh)
} GpuLlama;

typedef struct {
    void **ptr;
    size_t bytes;
    int category;
} GpuBuffer;

// Layers of storage of the per-layer activations: Ls for what level 2 recomputes, La for what level 1 does.
static size_t gpu_stored_layers(const GpuLlama *m) { return m->recompute >= 2 ? 1 : (size_t)m->stored_cfg.n_layers; }
static size_t gpu_norm_layers(const GpuLlama *m) { return m->recompute >= 1 ? 1 : (size_t)m->stored_cfg.n_layers; }

#define GPU_MAX_BUFFERS 64

// The memory plan: every device buffer with its size and category. gpu_alloc allocates exactly these.
// buf holds GPU_MAX_BUFFERS.
static int gpu_buffers(GpuLlama *m, GpuBuffer *buf) {
    const LlamaConfig *c = &m->stored_cfg;
    size_t L = c->n_layers, N = (size_t)m->B * m->T, d = c->dim, qd = llama_q_dim(c), kvd = llama_kv_dim(c);
    size_t f = c->ffn_dim, V = c->vocab_size, H = c->n_heads, P = m->lay.count, G = m->glay.count, X = sizeof(floatX);
    size_t Ls = gpu_stored_layers(m), La = gpu_norm_layers(m), mom = m->state_bf16 ? 2 : 4;
    size_t norm_scratch = rmsnorm_backward_scratch_floats((int)N, (int)d);
    GpuActivations *a = &m->a;
    int n = 0;
#define GBUF(p, bytes, cat)                                                              \
    do {                                                                                 \
        if (n == GPU_MAX_BUFFERS) fail("internal: more than %d GPU buffers", GPU_MAX_BUFFERS); \
        buf[n++] = (GpuBuffer){(void **)&(p), (bytes), (cat)};                           \
    } while (0)
    GBUF(m->params, (m->shard_weights ? m->mlay.count : P) * X, GPU_WEIGHTS);
    if (m->shard_weights) {
        for (int b = 0; b < 2; b++) GBUF(m->wlayer[b], m->layer_numel * X, GPU_WEIGHTS);
        GBUF(m->wglobal, m->global_numel * X, GPU_WEIGHTS);
    }
    if (m->master_weights) GBUF(m->master, m->mlay.count * 4, GPU_MASTER);
    GBUF(m->grads, (m->shard_weights ? m->slay.count : G) * X, GPU_GRADS);
    if (m->shard_weights) GBUF(m->gwin, m->gwin_numel * X, GPU_GRADS);
    GBUF(m->mom, m->slay.count * mom, GPU_OPTSTATE);
    GBUF(m->var, m->slay.count * mom, GPU_OPTSTATE);
    if (m->ranks > 1) {
        for (int b = 0; b < 2; b++) GBUF(m->bucket[b], m->bucket_bytes, GPU_COMM);
        GBUF(m->owned_ranges, 2 * sizeof(size_t) * m->reduce.nseg, GPU_COMM);
    }
    GpuGrass *gs = &m->grass;
    if (gs->p.enabled) {
        GBUF(gs->g, (m->shard_weights ? gs->slay.count : gs->p.nstate) * 4, GPU_GRADS);
        if (m->shard_weights) GBUF(gs->gwin, gs->gwin_numel * 4, GPU_GRADS);
        GBUF(gs->m, gs->slay.count * mom, GPU_OPTSTATE);
        GBUF(gs->v, gs->slay.count * mom, GPU_OPTSTATE);
        GBUF(gs->sigma, gs->p.nsel * 4, GPU_OPTSTATE);
        GBUF(gs->rho, gs->p.nsel * 4, GPU_OPTSTATE);
        GBUF(gs->full, gs->stored_full_numel * 4, GPU_GRASS_REFRESH);
        GBUF(gs->norms, (size_t)gs->stored_dmax * 8, GPU_GRASS_REFRESH);
        GBUF(gs->sel, gs->group_max * N * matmul_padded(gs->p.rmax) * X, GPU_WORKSPACE);
    }
    GBUF(a->x, (L + 1) * N * d * X, GPU_ACTS);
    GBUF(a->ln1, La * N * d * X, GPU_ACTS);
    GBUF(a->rstd1, Ls * N * 4, GPU_ACTS);
    GBUF(a->q, Ls * N * qd * X, GPU_ACTS);
    GBUF(a->k, Ls * N * kvd * X, GPU_ACTS);
    GBUF(a->v, Ls * N * kvd * X, GPU_ACTS);
    GBUF(a->lse, Ls * N * H * 4, GPU_ACTS);
    GBUF(a->atty, Ls * N * qd * X, GPU_ACTS);
    GBUF(a->h, Ls * N * d * X, GPU_ACTS);
    GBUF(a->ln2, La * N * d * X, GPU_ACTS);
    GBUF(a->rstd2, Ls * N * 4, GPU_ACTS);
    GBUF(a->gate, Ls * N * f * X, GPU_ACTS);
    GBUF(a->up, Ls * N * f * X, GPU_ACTS);
    GBUF(a->act, La * N * f * X, GPU_ACTS);
    GBUF(a->lnf, N * d * X, GPU_ACTS);
    GBUF(a->rstdf, N * 4, GPU_ACTS);
    GBUF(a->losses, N * 4, GPU_ACTS);
    GBUF(a->tokens, N * 4, GPU_ACTS);
    GBUF(a->targets, N * 4, GPU_ACTS);
    GBUF(a->buckets, (3 * N + 1) * 4, GPU_ACTS);
    GBUF(a->rope_cos, (size_t)m->T * llama_head_dim(c) / 2 * 4, GPU_ACTS);
    GBUF(a->rope_sin, (size_t)m->T * llama_head_dim(c) / 2 * 4, GPU_ACTS);
    GBUF(a->dres, N * d * X, GPU_WORKSPACE);
    GBUF(a->dln, N * d * X, GPU_WORKSPACE);
    GBUF(a->dq, N * qd * X, GPU_WORKSPACE);
    GBUF(a->datty, N * qd * X, GPU_WORKSPACE);
    GBUF(a->dk, N * kvd * X, GPU_WORKSPACE);
    GBUF(a->dv, N * kvd * X, GPU_WORKSPACE);
    GBUF(a->dgate, N * f * X, GPU_WORKSPACE);
    GBUF(a->dup, N * f * X, GPU_WORKSPACE);
    GBUF(a->dact, N * f * X, GPU_WORKSPACE);
    GBUF(a->attn_scratch, attention_backward_scratch_floats(m->B, m->T, (int)H) * 4, GPU_WORKSPACE);
    GBUF(a->norm_scratch, norm_scratch * 4, GPU_WORKSPACE);
    GBUF(a->logits, (size_t)m->chunk_rows * V * X, GPU_WORKSPACE);
    GBUF(a->norm_partials, NORM_BLOCKS * sizeof(double), GPU_WORKSPACE);
    GBUF(a->norm_out, 4, GPU_WORKSPACE);
    GBUF(a->finite_out, 8, GPU_WORKSPACE);
#undef GBUF
    return n;
}

// Sizes for a micro-batch B x T on each of `ranks` ranks and the options (no allocation, no GPU needed).
static void gpu_plan(GpuLlama *m, const LlamaConfig *cfg, int B, int T, int ranks, const TrainOptions *opt, int grass_rank) {
    memset(m, 0, sizeof(*m));
    int hd = llama_head_dim(cfg);
    if (!attention_head_dim_supported(hd))
        fail("--dim %d with --heads %d gives head dim %d: the GPU attention kernels take " ATTENTION_HEAD_DIMS, cfg->dim,
             cfg->n_heads, hd);
    m->model_cfg = *cfg;
    m->stored_cfg = *cfg;
    m->stored_cfg.ffn_dim = matmul_padded(cfg->ffn_dim);
    llama_param_layout(&m->stored_cfg, &m->lay);
    GpuGrass *gs = &m->grass;
    grass_plan(&gs->p, cfg, !strcmp(opt->optimizer, "grass"), opt->grass_select, opt->grass_side, grass_rank,
               opt->grass_interval, opt->grass_alpha, (uint64_t)opt->seed);
    for (int k = 0; gs->p.enabled && k < NUM_PARAM_KINDS; k++) {  // the refresh buffers, over the stored matrices
        if (!llama_param_kinds[k].is_projection) continue;
        size_t rows, cols, D;
        llama_param_shape(&m->stored_cfg, k, &rows, &cols);
        D = gs->p.shape[k].rows ? rows : cols;
        if (rows * cols > gs->stored_full_numel) gs->stored_full_numel = rows * cols;
        if ((int)D > gs->stored_dmax) gs->stored_dmax = (int)D;
    }
    if (gs->p.enabled) {
        int qkv = grass_group_size(&gs->p, PARAM_WQ, GPU_QKV), gate_up = grass_group_size(&gs->p, PARAM_WGATE, GPU_GATE_UP);
        gs->group_max = qkv > gate_up ? qkv : gate_up;
    }
    llama_param_layout_of(&m->stored_cfg, &m->glay, !gs->p.enabled);
    m->B = B;
    m->T = T;
    m->ranks = ranks;
    m->recompute = opt->recompute;
    m->master_weights = opt->master_weights;
    m->state_bf16 = !strcmp(opt->state_dtype, "bf16");
    size_t rows = GPU_LOGITS_CHUNK_BYTES / ((size_t)cfg->vocab_size * sizeof(floatX));
    m->chunk_rows = (int)(rows < 1 ? 1 : rows > (size_t)B * T ? (size_t)B * T : rows);
    // how the ranks divide the collectives and the optimizer state (shard.h), over the stored tensors
    m->owners = opt->shard_optimizer || opt->shard_weights ? ranks : 1;  // a weight part's owner updates it
    m->reduce_bf16 = !strcmp(opt->reduce_dtype, "bf16");
    shard_layout(&m->slay, &m->stored_cfg, !gs->p.enabled, NULL, m->owners);
    shard_layout(&m->mlay, &m->stored_cfg, 1, NULL, m->owners);
    shard_layout(&gs->slay, &m->stored_cfg, 0, &gs->p, m->owners);
    size_t bucket = (size_t)((double)opt->bucket_mb * 1048576.0 / (m->reduce_bf16 ? 2 : 4));
    shard_plan(&m->reduce, SHARD_GRADS, &m->stored_cfg, &m->lay, &m->glay, &gs->p, m->owners, bucket);
    shard_plan(&m->weights, SHARD_WEIGHTS, &m->stored_cfg, &m->lay, &m->glay, &gs->p, m->owners, bucket);
    shard_plan(&m->updates, SHARD_UPDATES, &m->stored_cfg, &m->lay, &m->glay, &gs->p, m->owners, bucket);
    m->shard_weights = opt->shard_weights && ranks > 1;  // one rank holds every part: nothing to gather
    // --shard-weights' buffers of gathered weights and of gradients being computed: outside the blocks, the embedding
    // and the lm_head (of the same shape) take turns in one place and the final norm follows; a layer's kinds in order
    size_t vd = llama_param_numel(&m->stored_cfg, PARAM_EMBED);
    m->woff[PARAM_EMBED] = m->woff[PARAM_LM_HEAD] = m->gwoff[PARAM_EMBED] = m->gwoff[PARAM_LM_HEAD] = 0;
    m->woff[PARAM_FINAL_NORM] = m->gwoff[PARAM_FINAL_NORM] = vd;
    m->global_numel = m->gwin_global = m->gwin_numel = vd + llama_param_numel(&m->stored_cfg, PARAM_FINAL_NORM);
    for (int k = 0; k < NUM_PARAM_KINDS; k++) {
        if (!llama_param_kinds[k].per_layer) continue;
        size_t n = llama_param_numel(&m->stored_cfg, k);
        m->woff[k] = m->layer_numel;
        m->layer_numel += n;
        if (gs->p.enabled && llama_param_kinds[k].is_projection) {
            gs->gwoff[k] = gs->gwin_numel;
            gs->gwin_numel += (size_t)gs->p.shape[k].r * gs->p.shape[k].E;
        } else {
            m->gwoff[k] = m->gwin_numel;
            m->gwin_numel += n;
        }
    }
    size_t rb = m->reduce_bf16 ? 2 : 4, wb = m->weights.max_slot * m->owners * sizeof(floatX);
    m->bucket_bytes = m->reduce.max_slot * m->owners * rb;
    if (m->owners > 1 && wb > m->bucket_bytes) m->bucket_bytes = wb;
    if (m->owners > 1 && m->updates.max_slot * m->owners * 4 > m->bucket_bytes) m->bucket_bytes = m->updates.max_slot * m->owners * 4;
}

static size_t gpu_plan_total(GpuLlama *m, size_t *by_category) {
    GpuBuffer buf[GPU_MAX_BUFFERS];
    int n = gpu_buffers(m, buf);
    size_t total = GPU_MATMUL_WORKSPACE;
    for (int k = 0; k < GPU_NUM_CATEGORIES; k++) by_category[k] = k == GPU_WORKSPACE ? GPU_MATMUL_WORKSPACE : 0;
    for (int i = 0; i < n; i++) {
        by_category[buf[i].category] += buf[i].bytes;
        total += buf[i].bytes;
    }
    return total;
}

// What is sharded over the ranks, in words ("" for nothing).
static const char *gpu_sharding(const GpuLlama *m) {
    return m->shard_weights ? "weights, gradients and optimizer state sharded" : m->owners > 1 ? "optimizer state sharded" : "";
}

static void gpu_plan_print(GpuLlama *m) {
    size_t cat[GPU_NUM_CATEGORIES];
    size_t total = gpu_plan_total(m, cat);
    printf("memory plan (GPU, %s, %s weights%s, %s moments, recompute %d%s%s):\n", m->grass.p.enabled ? "Grass" : "AdamW",
           PRECISION_NAME, m->master_weights ? " + fp32 master" : "", m->state_bf16 ? "bf16" : "fp32", m->recompute,
           m->owners > 1 ? ", " : "", gpu_sharding(m));
    for (int k = 0; k < GPU_NUM_CATEGORIES; k++)
        printf("  %-18s %14zu bytes %10.3f GiB\n", gpu_category_names[k], cat[k], cat[k] / GIB);
    printf("  %-18s %14zu bytes %10.3f GiB (plus the CUDA context)\n", "total", total, total / GIB);
}

static void gpu_alloc(GpuLlama *m) {
    GpuBuffer buf[GPU_MAX_BUFFERS];
    int n = gpu_buffers(m, buf);
    for (int i = 0; i < n; i++) {
        cudaCheck(cudaMalloc(buf[i].ptr, buf[i].bytes > 0 ? buf[i].bytes : 1));
        cudaCheck(cudaMemset(*buf[i].ptr, 0, buf[i].bytes));
    }
    cudaCheck(cudaStreamCreate(&m->stream));
    for (int b = 0; b < 2; b++) cudaCheck(cudaEventCreateWithFlags(&m->bucket_free[b], cudaEventDisableTiming));
    for (int b = 0; b < 3; b++) cudaCheck(cudaEventCreateWithFlags(&m->wready[b], cudaEventDisableTiming));
    m->wlayer_of[0] = m->wlayer_of[1] = -1;
    matmul_init(&m->mm, GPU_MATMUL_WORKSPACE);
    m->host_buckets = (int *)xmalloc(sizeof(int) * (3 * (size_t)m->B * m->T + 1));
    if (m->grass.p.enabled) {
        m->grass.host_sigma = (int *)xmalloc(sizeof(int) * m->grass.p.nsel);
        m->grass.host_rho = (float *)xmalloc(sizeof(float) * m->grass.p.nsel);
        m->grass.host_norms = (double *)xmalloc(sizeof(double) * m->grass.p.dmax);
    }
    rope_tables_init(m->a.rope_cos, m->a.rope_sin, &m->stored_cfg, m->T);
}

static void gpu_free(GpuLlama *m) {
    GpuBuffer buf[GPU_MAX_BUFFERS];
    int n = gpu_buffers(m, buf);
    for (int i = 0; i < n; i++) cudaCheck(cudaFree(*buf[i].ptr));
    matmul_free(&m->mm);
    cudaCheck(cudaStreamDestroy(m->stream));
    for (int b = 0; b < 2; b++) cudaCheck(cudaEventDestroy(m->bucket_free[b]));
    for (int b = 0; b < 3; b++) cudaCheck(cudaEventDestroy(m->wready[b]));
    shard_plan_free(&m->reduce);
    shard_plan_free(&m->weights);
    shard_plan_free(&m->updates);
    free(m->host_buckets);
    free(m->grass.host_sigma);
    free(m->grass.host_rho);
    free(m->grass.host_norms);
    gpu_profile_free(&m->prof);
}

// The work queued from here on is of this kind (--profile).
static void gpu_mark(GpuLlama *m, int kind) { gpu_profile_mark(&m->prof, kind, m->stream); }

// The whole weights of tensor (kind, layer): in params, or with --shard-weights in the buffer its gather filled (which
// the compute stream must have waited for: gpu_weights_ready).
static floatX *gpu_weight(GpuLlama *m, int kind, int layer) {
    if (!m->shard_weights) return m->params + llama_param_offset(&m->stored_cfg, &m->lay, kind, layer);
    if (!llama_param_present(&m->stored_cfg, kind)) kind = PARAM_EMBED;  // tied
    if (!llama_param_kinds[kind].per_layer) {
        if (!(kind == PARAM_EMBED ? m->wembed_ok : m->whead_ok)) fail("internal: weights of kind %d are not gathered", kind);
        return m->wglobal + m->woff[kind];
    }
    if (m->wlayer_of[layer % 2] != layer) fail("internal: layer %d's weights are not gathered", layer);
    return m->wlayer[layer % 2] + m->woff[kind];
}

// The full gradient of a tensor that the backward adds to (with --shard-weights: in the window of gradients being
// computed, which holds one layer's); under Grass the projections have none.
static floatX *gpu_grad(GpuLlama *m, int kind, int layer) {
    if (m->grass.p.enabled && llama_param_kinds[kind].is_projection) fail("internal: no full gradient for a Grass projection");
    if (!m->shard_weights) return m->grads + llama_param_offset(&m->stored_cfg, &m->glay, kind, layer);
    return m->gwin + m->gwoff[kind];  // a tied lm_head's is the embedding's
}

// Grass's compressed gradient g [r, E] of projection (kind, layer) that the backward adds to (with --shard-weights: in
// the window that holds one layer's), and its update U in the optimizer.
static float *gpu_grass_g(GpuLlama *m, int kind, int layer) {
    GpuGrass *gs = &m->grass;
    return m->shard_weights ? gs->gwin + gs->gwoff[kind] : gs->g + grass_state_offset(&gs->p, kind, layer);
}

// With --shard-weights, zeroes the window's gradients of `group` (shard.h: a layer's, Grass's g included; the head's,
// which are all those outside the blocks; or the embedding's alone, where the untied lm_head's were) before a
// micro-batch's backward adds to them.
static void gpu_window_zero(GpuLlama *m, int group) {
    if (!m->shard_weights) return;
    size_t at = 0, n = group == SHARD_GROUP_EMBED ? llama_param_numel(&m->stored_cfg, PARAM_EMBED) : m->gwin_global;
    if (group >= 0) at = m->gwin_global, n = m->gwin_numel - m->gwin_global;
    cudaCheck(cudaMemsetAsync(m->gwin + at, 0, sizeof(floatX) * n, m->stream));
    if (group >= 0 && m->grass.p.enabled) cudaCheck(cudaMemsetAsync(m->grass.gwin, 0, sizeof(float) * m->grass.gwin_numel, m->stream));
}

// ----------------------------------------------------------------------------------------------------
// Weights and moments in and out, in the model's shapes (checkpoints) from and to the stored ones (padded).

// Copies tensor (kind, layer) between host, in the model's shape, and the device buffer dev of stored layout
// dlay (the parameters' or the moments'), esize bytes per element. Padding stays untouched (zero).
static void gpu_tensor_copy(GpuLlama *m, int kind, int layer, void *host, void *dev, const ParamLayout *dlay, size_t esize,
                            int to_device) {
    size_t rows, cols, srows, scols;
    llama_param_shape(&m->model_cfg, kind, &rows, &cols);
    llama_param_shape(&m->stored_cfg, kind, &srows, &scols);
    char *d = (char *)dev + llama_param_offset(&m->stored_cfg, dlay, kind, layer) * esize;
    if (cols == scols)  // contiguous (padded rows, if any, follow the model's)
        cudaCheck(cudaMemcpy(to_device ? (void *)d : host, to_device ? host : (void *)d, rows * cols * esize,
                             to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost));
    else if (to_device)
        cudaCheck(cudaMemcpy2D(d, scols * esize, host, cols * esize, cols * esize, rows, cudaMemcpyHostToDevice));
    else
        cudaCheck(cudaMemcpy2D(host, cols * esize, d, scols * esize, cols * esize, rows, cudaMemcpyDeviceToHost));
}

// Copies between the host tensor `to` and `from` of rows rows, whose rows hold to_cols and from_cols elements of esize
// bytes: the first cols of each row (the model's shape within the stored, padded one, or back).
static void tensor_rows_copy(void *to, size_t to_cols, const void *from, size_t from_cols, size_t rows, size_t cols, size_t esize) {
    for (size_t i = 0; i < rows; i++) memcpy((char *)to + i * to_cols * esize, (const char *)from + i * from_cols * esize, cols * esize);
}

// This rank's part [*lo, *hi) of a tensor of n elements (all of it with one owner).
static void gpu_owned(const GpuLlama *m, size_t n, size_t *lo, size_t *hi) { shard_slice(n, m->owners, m->owner, lo, hi); }

// The elements [*lo, *hi) of tensor (kind, layer) in the model's shape (n elements) that this rank needs to set its
// weights: with --shard-weights the model's rows that its part of the stored tensor covers (the stored rows
// [slo / scols, shi / scols]), else all of them.
static void gpu_model_part(GpuLlama *m, int kind, size_t n, size_t *lo, size_t *hi) {
    *lo = 0, *hi = n;
    if (!m->shard_weights) return;
    size_t rows, cols, srows, scols, slo, shi;
    llama_param_shape(&m->model_cfg, kind, &rows, &cols);
    llama_param_shape(&m->stored_cfg, kind, &srows, &scols);
    gpu_owned(m, srows * scols, &slo, &shi);
    *lo = slo < shi ? slo / scols * cols : 0, *hi = slo < shi ? ((shi - 1) / scols + 1) * cols : 0;
    if (*hi > n) *hi = n;
    if (*lo > *hi) *lo = *hi;  // a part within the padding alone
}

// Tensor (kind, layer) (Grass's r x E state when grass is set) between the host, in the model's shape, and this rank's
// part of it on the device at d (esize bytes an element): to the host, the ranks' parts are gathered on rank 0 (host is
// NULL on the others); to the device, every rank takes its part of the tensor.
static void gpu_shard_tensor_copy(GpuLlama *m, int kind, int layer, int grass, void *d, size_t esize, void *host, int to_device) {
    size_t rows, cols, srows, scols, n, lo, hi;
    llama_param_shape(&m->model_cfg, kind, &rows, &cols);
    llama_param_shape(&m->stored_cfg, kind, &srows, &scols);
    if (grass) rows = srows = m->grass.p.shape[kind].r, cols = scols = m->grass.p.shape[kind].E;
    n = srows * scols;
    gpu_owned(m, n, &lo, &hi);
    if (to_device) {  // the stored rows [r0, r1) that hold the part, from the host's rows (the padding's stay zero)
        size_t r0 = lo / scols, r1 = hi > lo ? (hi - 1) / scols + 1 : r0, present = r1 < rows ? r1 : rows;
        char *part_rows = (char *)xcalloc((r1 - r0) * scols + 1, esize);
        if (r0 < present) tensor_rows_copy(part_rows, scols, (char *)host + r0 * cols * esize, cols, present - r0, cols, esize);
        cudaCheck(cudaMemcpy(d, part_rows + (lo - r0 * scols) * esize, (hi - lo) * esize, cudaMemcpyHostToDevice));
        free(part_rows);
        return;
    }
    char *stored = (char *)xcalloc(n, esize);  // the whole stored tensor
    void *mine = xmalloc((hi - lo) * esize + 1);
    cudaCheck(cudaMemcpy(mine, d, (hi - lo) * esize, cudaMemcpyDeviceToHost));
    shard_gather(m->gcomm->comm, mine, stored, n, esize);
    if (host) tensor_rows_copy(host, cols, stored, scols, rows, cols, esize);
    free(mine);
    free(stored);
}

// Tensor (kind, layer) from data [n] (the model's shape; with --shard-weights only the rows gpu_model_part names are
// read): the weights (this rank's part of them with --shard-weights), and this rank's part of the master weights.
static void gpu_set_tensor(GpuLlama *m, int kind, int layer, const float *data, size_t n) {
    size_t lo, hi;
    gpu_model_part(m, kind, n, &lo, &hi);
    floatX *tmp = (floatX *)xmalloc(sizeof(floatX) * n);
#pragma omp parallel for schedule(static)
    for (size_t i = lo; i < hi; i++) tmp[i] = from_float<floatX>(data[i]);
    size_t at = shard_offset(&m->mlay, kind, layer);
    if (m->shard_weights) gpu_shard_tensor_copy(m, kind, layer, 0, m->params + at, sizeof(floatX), tmp, 1);
    else gpu_tensor_copy(m, kind, layer, tmp, m->params, &m->lay, sizeof(floatX), 1);
    free(tmp);
    if (m->master) gpu_shard_tensor_copy(m, kind, layer, 0, m->master + at, sizeof(float), (void *)data, 1);
    m->wlayer_of[0] = m->wlayer_of[1] = -1, m->wembed_ok = m->whead_ok = 0;  // gathered copies are stale
}

static void gpu_take_tensor(void *ctx, int kind, int layer, const float *data, size_t n) {
    gpu_set_tensor((GpuLlama *)ctx, kind, layer, data, n);
}

static void gpu_take_part(void *ctx, int kind, int layer, size_t n, size_t *lo, size_t *hi) {
    (void)layer;
    gpu_model_part((GpuLlama *)ctx, kind, n, lo, hi);
}

// The initial weights (llama_config.h's). With --shard-weights a rank draws only the rows of each tensor that its part
// covers (gpu_model_part), 1/N of the draws (a 70B model is 7e10); gpu_set_tensor reads no others.
static void gpu_init_weights(GpuLlama *m, uint64_t seed) {
    size_t cap = 0;
    float *buf = NULL;
    for (int i = 0; i < llama_num_tensors(&m->stored_cfg); i++) {
        int kind, layer;
        llama_tensor_at(&m->stored_cfg, i, &kind, &layer);
        size_t n = llama_param_numel(&m->model_cfg, kind), lo, hi;
        if (n > cap) { free(buf); cap = n; buf = (float *)xmalloc(sizeof(float) * cap); }
        gpu_model_part(m, kind, n, &lo, &hi);
        llama_init_tensor_part(&m->model_cfg, buf, kind, layer, seed, lo, hi);
        gpu_set_tensor(m, kind, layer, buf, n);
    }
    free(buf);
}

// ----------------------------------------------------------------------------------------------------
// Buckets (shard.h, docs/design.md §7): a plan's segments between their tensors and the two bucket buffers.

// Where segment s of plan p lies on this rank: whole (part 0) where the step uses it (the gradients as the backward
// adds to them, gpu_grad and gpu_grass_g; the weights, in params or gathered; Grass's updates U), or (part 1) where
// this rank keeps its own part of it, whose element *base the pointer holds first: with --shard-weights the parts
// alone (the weights', the summed gradients', U's); else the whole tensor (base 0).
static void *gpu_seg_at(GpuLlama *m, const ShardPlan *p, const ShardSeg *s, int part, size_t *base) {
    GpuGrass *gs = &m->grass;
    *base = 0;
    if (part && m->shard_weights) {
        *base = (size_t)m->owner * s->chunk;
        if (s->grass) return gs->g + shard_offset(&gs->slay, s->kind, s->layer);
        if (p->what == SHARD_WEIGHTS) return m->params + shard_offset(&m->mlay, s->kind, s->layer);
        return m->grads + shard_offset(&m->slay, s->kind, s->layer);
    }
    if (s->grass) return gpu_grass_g(m, s->kind, s->layer);
    if (p->what != SHARD_WEIGHTS) return gpu_grad(m, s->kind, s->layer);
    if (!m->shard_weights) return m->params + s->offset;
    return (shard_seg_group(s) < 0 ? m->wglobal : m->wlayer[s->layer % 2]) + m->woff[s->kind];
}

// Ranks [r0, r1)'s pieces of plan p's segment s between bucket buffer `bucket` and the segment's tensor, whole or this
// rank's part of it (gpu_seg_at), in direction dir (comm_gpu.cuh); the bucket holds bf16 (bf16 set), or fp32 for
// gradients and U, or floatX for weights.
static void gpu_bucket_copy(GpuLlama *m, void *bucket, int bf16, const ShardPlan *p, const ShardSeg *s, int r0, int r1, int dir,
                            int part, cudaStream_t stream) {
    size_t base;
    void *t = gpu_seg_at(m, p, s, part, &base);
    if (s->grass && bf16) shard_copy((__nv_bfloat16 *)bucket, (float *)t, base, p, s, r0, r1, dir, stream);
    else if (s->grass) shard_copy((float *)bucket, (float *)t, base, p, s, r0, r1, dir, stream);
    else if (bf16) shard_copy((__nv_bfloat16 *)bucket, (floatX *)t, base, p, s, r0, r1, dir, stream);
    else if (p->what == SHARD_WEIGHTS) shard_copy((floatX *)bucket, (floatX *)t, base, p, s, r0, r1, dir, stream);
    else shard_copy((float *)bucket, (floatX *)t, base, p, s, r0, r1, dir, stream);
}

// Every rank's own parts of plan p's segments of `group` (shard.h's: a layer, SHARD_GROUP_HEAD ... SHARD_GROUP_ALL)
// into the whole tensors (gpu_seg_at) on every rank, bucket by bucket: packing, all-gather and unpacking all on the
// communication stream, after the work queued so far on the compute stream (which includes the last reads of what the
// gather overwrites). The compute stream waits for the result by gpu_comm_wait, or by an event recorded on
// gpu_comm_stream.
static void gpu_gather(GpuLlama *m, const ShardPlan *p, int group, int category) {
    cudaStream_t cs = gpu_comm_stream(m->gcomm, m->stream);
    gpu_comm_follow(m->gcomm, m->stream);
    gpu_mark(m, PROF_COMM);
    for (int bi = 0; bi < p->nbucket; bi++) {
        const ShardBucket *bk = &p->bucket[bi];
        if (group != SHARD_GROUP_ALL && shard_seg_group(&p->seg[bk->first]) != group) continue;
        int b = m->bucket_turn++ % 2;
        void *buf = m->bucket[b];
        for (int i = bk->first; i < bk->first + bk->count; i++)
            gpu_bucket_copy(m, buf, 0, p, &p->seg[i], m->owner, m->owner + 1, SHARD_PACK, 1, cs);
        if (p->what == SHARD_WEIGHTS) gpu_comm_allgather(m->gcomm, (floatX *)buf, bk->slot, category, cs);
        else gpu_comm_allgather(m->gcomm, (float *)buf, bk->slot, category, cs);
        for (int i = bk->first; i < bk->first + bk->count; i++)
            gpu_bucket_copy(m, buf, 0, p, &p->seg[i], 0, p->ranks, SHARD_UNPACK, 0, cs);
        cudaCheck(cudaEventRecord(m->bucket_free[b], cs));
    }
}

// ----------------------------------------------------------------------------------------------------
// Sharded weights (--shard-weights): every rank stores its parts (shard.h) of every weight; a layer's weights are
// all-gathered, bucket by bucket of the weights plan, into one of two layer buffers before its forward and again before
// its backward (unless still there), the next layer's gather queued ahead on the communication stream so that it
// overlaps this layer's compute; the embedding before the forward and the lm_head and final norm before its end into
// a buffer of their own (an untied lm_head in the embedding's place: each micro-batch gathers both).

// Queues the gather of `group`'s weights (shard.h: a layer, SHARD_GROUP_EMBED or SHARD_GROUP_HEAD) into its buffer
// (gpu_gather); nothing when the buffer holds them.
static void gpu_weights_gather(GpuLlama *m, int group) {
    if (!m->shard_weights || group >= m->stored_cfg.n_layers) return;
    int slot = group < 0 ? 2 : group % 2;
    if (group >= 0 ? m->wlayer_of[slot] == group : group == SHARD_GROUP_EMBED ? m->wembed_ok : m->whead_ok) return;
    gpu_gather(m, &m->weights, group, COMM_WEIGHTS);
    cudaCheck(cudaEventRecord(m->wready[slot], gpu_comm_stream(m->gcomm, m->stream)));
    int untied = llama_param_present(&m->stored_cfg, PARAM_LM_HEAD);  // the embedding and the lm_head share a place
    if (group >= 0) m->wlayer_of[slot] = group;
    else if (group == SHARD_GROUP_EMBED) m->wembed_ok = 1, m->whead_ok &= !untied;
    else m->whead_ok = 1, m->wembed_ok &= !untied;
}

// Makes the compute stream wait for the gather of `group`'s weights (gpu_weights_gather first).
static void gpu_weights_ready(GpuLlama *m, int group) {
    if (m->shard_weights) cudaCheck(cudaStreamWaitEvent(m->stream, m->wready[group < 0 ? 2 : group % 2], 0));
}

// ----------------------------------------------------------------------------------------------------
// Forward

// out [N, OC] = resid + inp @ weight^T: the o_proj and down_proj products add the residual stream in the
// GEMM itself (beta = 1, with the residual as cuBLASLt's C and out as its D).
static void gpu_matmul_residual(GpuLlama *m, floatX *out, const floatX *resid, const floatX *inp, const floatX *weight,
                                int N, int C, int OC) {
    Gemm g = matmul_forward_gemm(out, inp, weight, N, C, OC);
    g.C_in = resid;
    g.beta = 1.0f;
    matmul_gemm(&m->mm, &g, m->stream);
}

// The activations of layer l: per-layer buffers at slot l, recomputed ones in slot 0.
typedef struct {
    floatX *x, *xo, *ln1, *q, *k, *v, *atty, *h, *ln2, *gate, *up, *act;
    float *rstd1, *rstd2, *lse;
} LayerActs;

static LayerActs gpu_layer_acts(GpuLlama *m, int l) {
    const LlamaConfig *c = &m->stored_cfg;
    GpuActivations *a = &m->a;
    size_t N = (size_t)m->B * m->T, d = c->dim, qd = llama_q_dim(c), kvd = llama_kv_dim(c), f = c->ffn_dim;
    size_t s = m->recompute >= 2 ? 0 : (size_t)l, r = m->recompute >= 1 ? 0 : (size_t)l;
    LayerActs la;
    la.x = a->x + (size_t)l * N * d;
    la.xo = la.x + N * d;
    la.ln1 = a->ln1 + r * N * d;
    la.ln2 = a->ln2 + r * N * d;
    la.act = a->act + r * N * f;
    la.q = a->q + s * N * qd;
    la.k = a->k + s * N * kvd;
    la.v = a->v + s * N * kvd;
    la.atty = a->atty + s * N * qd;
    la.h = a->h + s * N * d;
    la.gate = a->gate + s * N * f;
    la.up = a->up + s * N * f;
    la.rstd1 = a->rstd1 + s * N;
    la.rstd2 = a->rstd2 + s * N;
    la.lse = a->lse + s * N * c->n_heads;
    return la;
}

static void gpu_layer_forward(GpuLlama *m, int l) {
    const LlamaConfig *c = &m->stored_cfg;
    int B = m->B, T = m->T, N = B * T, d = c->dim, qd = llama_q_dim(c), kvd = llama_kv_dim(c), f = c->ffn_dim;
    int hd = llama_head_dim(c);
    LayerActs la = gpu_layer_acts(m, l);
    cudaStream_t s = m->stream;
    gpu_mark(m, PROF_RMSNORM);
    rmsnorm_forward(la.ln1, la.rstd1, la.x, gpu_weight(m, PARAM_ATTN_NORM, l), N, d, c->norm_eps, s);
    gpu_mark(m, PROF_MATMUL_FWD);
    matmul_forward(&m->mm, la.q, la.ln1, gpu_weight(m, PARAM_WQ, l), N, d, qd, s);
    matmul_forward(&m->mm, la.k, la.ln1, gpu_weight(m, PARAM_WK, l), N, d, kvd, s);
    matmul_forward(&m->mm, la.v, la.ln1, gpu_weight(m, PARAM_WV, l), N, d, kvd, s);
    gpu_mark(m, PROF_ROPE);
    rope_forward(la.q, la.q, m->a.rope_cos, m->a.rope_sin, N, T, c->n_heads, hd, s);
    rope_forward(la.k, la.k, m->a.rope_cos, m->a.rope_sin, N, T, c->n_kv_heads, hd, s);
    gpu_mark(m, PROF_ATTENTION_FWD);
    attention_forward(la.atty, la.lse, la.q, la.k, la.v, B, T, c->n_heads, c->n_kv_heads, hd, s);
    gpu_mark(m, PROF_MATMUL_FWD);
    gpu_matmul_residual(m, la.h, la.x, la.atty, gpu_weight(m, PARAM_WO, l), N, qd, d);
    gpu_mark(m, PROF_RMSNORM);
    rmsnorm_forward(la.ln2, la.rstd2, la.h, gpu_weight(m, PARAM_MLP_NORM, l), N, d, c->norm_eps, s);
    gpu_mark(m, PROF_MATMUL_FWD);
    matmul_forward(&m->mm, la.gate, la.ln2, gpu_weight(m, PARAM_WGATE, l), N, d, f, s);
    matmul_forward(&m->mm, la.up, la.ln2, gpu_weight(m, PARAM_WUP, l), N, d, f, s);
    gpu_mark(m, PROF_SWIGLU);
    swiglu_forward(la.act, la.gate, la.up, (size_t)N * f, s);
    gpu_mark(m, PROF_MATMUL_FWD);
    gpu_matmul_residual(m, la.xo, la.h, la.act, gpu_weight(m, PARAM_WDOWN, l), N, f, d);
}

// Copies a micro-batch to the device (and the embedding-backward buckets, when training).
static void gpu_set_batch(GpuLlama *m, const int *tokens, const int *targets, int train) {
    size_t N = (size_t)m->B * m->T;
    gpu_mark(m, PROF_HOST);
    cudaCheck(cudaMemcpyAsync(m->a.tokens, tokens, sizeof(int) * N, cudaMemcpyHostToDevice, m->stream));
    cudaCheck(cudaMemcpyAsync(m->a.targets, targets, sizeof(int) * N, cudaMemcpyHostToDevice, m->stream));
    if (!train) return;
    int U = embedding_buckets(m->host_buckets, tokens, (int)N);
    cudaCheck(cudaMemcpyAsync(m->a.buckets, m->host_buckets, sizeof(int) * (N + 2 * (size_t)U + 1), cudaMemcpyHostToDevice,
                              m->stream));
    m->bucket_count = U;
}

// Forward of a micro-batch (gpu_set_batch first) through the blocks and the final norm, into lnf.
static void gpu_forward_blocks(GpuLlama *m) {
    const LlamaConfig *c = &m->stored_cfg;
    int N = m->B * m->T, d = c->dim;
    gpu_weights_gather(m, SHARD_GROUP_EMBED);
    gpu_weights_gather(m, 0);
    gpu_weights_ready(m, SHARD_GROUP_EMBED);
    gpu_mark(m, PROF_EMBEDDING);
    embedding_forward(m->a.x, m->a.tokens, gpu_weight(m, PARAM_EMBED, 0), N, d, m->stream);
    for (int l = 0; l < c->n_layers; l++) {
        gpu_weights_gather(m, l + 1 < c->n_layers ? l + 1 : SHARD_GROUP_HEAD);  // the next gather overlaps this layer
        gpu_weights_ready(m, l);
        gpu_layer_forward(m, l);
    }
    gpu_weights_ready(m, SHARD_GROUP_HEAD);
    gpu_mark(m, PROF_RMSNORM);
    rmsnorm_forward(m->a.lnf, m->a.rstdf, m->a.x + (size_t)c->n_layers * N * d, gpu_weight(m, PARAM_FINAL_NORM, 0),
                    N, d, c->norm_eps, m->stream);
}

// Forward of a micro-batch through the loss; with dloss != 0 also the backward of the lm_head (its weight
// gradient and d(loss)/d(lnf) into dln), for loss = dloss * sum of per-token losses. Returns the mean loss
// (synchronises).
static float gpu_forward(GpuLlama *m, float dloss) {
    const LlamaConfig *c = &m->stored_cfg;
    int N = m->B * m->T, d = c->dim;
    cudaStream_t s = m->stream;
    gpu_forward_blocks(m);
    int backward = dloss != 0.0f;
    gpu_mark(m, PROF_LM_HEAD_LOSS);
    if (backward) gpu_window_zero(m, SHARD_GROUP_HEAD);
    crossentropy_forward_backward(&m->mm, m->a.losses, backward ? m->a.dln : NULL,
                                  backward ? gpu_grad(m, PARAM_LM_HEAD, 0) : NULL, m->a.logits, m->chunk_rows,
                                  m->a.lnf, gpu_weight(m, PARAM_LM_HEAD, 0), m->a.targets, N, d, c->vocab_size,
                                  dloss, s);
    float *losses = (float *)xmalloc(sizeof(float) * N);
    gpu_mark(m, PROF_HOST);
    // the watched wait (with --shard-weights the forward waits for NCCL's gathers, and the backward for its
    // reduce-scatters), before a copy to pageable memory blocks the host
    gpu_comm_sync(m->gcomm, s);
    cudaCheck(cudaMemcpyAsync(losses, m->a.losses, sizeof(float) * N, cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += losses[i];
    free(losses);
    return (float)(sum / N);
}

// ----------------------------------------------------------------------------------------------------
// Grass: the refresh of one matrix and the backward of a projection

// A refresh (docs/design.md §3): the full gradient into the scratch, its row or column norms, the selection on the
// host (keyed by seed, refresh, layer, kind: the CPU trainer's indices), g from the selected rows, moments reset.
static void gpu_grass_refresh(GpuLlama *m, int kind, int layer, const floatX *dout, const floatX *inp, int N, int n, int mo) {
    GpuGrass *gs = &m->grass;
    GrassShape sh = gs->p.shape[kind];
    cudaStream_t s = m->stream;
    grass_full_grad(&m->mm, gs->full, dout, inp, N, n, mo, s);
    if (m->gcomm) {  // every rank selects from the same G
        gpu_comm_mean(m->gcomm, gs->full, (size_t)mo * n, 1, COMM_REFRESH, s);
        gpu_comm_wait(m->gcomm, s);
    }
    // the norms of all stored rows or columns; the model's sh.D come first and are the ones selected from
    grass_norms_compute(gs->norms, gs->full, mo, n, sh.rows, s);
    gpu_comm_sync(m->gcomm, s);  // the watched wait for the all-reduce, before a copy to pageable memory blocks the host
    cudaCheck(cudaMemcpyAsync(gs->host_norms, gs->norms, sizeof(double) * sh.D, cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
    size_t so = grass_sel_offset(&gs->p, kind, layer);
    Rng rng;
    grass_rng(&rng, gs->p.seed, gs->refresh_index, layer, kind);
    grass_select(gs->p.selector, gs->host_norms, sh.D, sh.r, &rng, gs->host_sigma + so, gs->host_rho + so);
    cudaCheck(cudaMemcpyAsync(gs->sigma + so, gs->host_sigma + so, sizeof(int) * sh.r, cudaMemcpyHostToDevice, s));
    cudaCheck(cudaMemcpyAsync(gs->rho + so, gs->host_rho + so, sizeof(float) * sh.r, cudaMemcpyHostToDevice, s));
    size_t cnt = (size_t)sh.r * sh.E, mb = m->state_bf16 ? 2 : 4, at = shard_offset(&gs->slay, kind, layer);
    grass_take_kernel<<<grid_stride_blocks(cnt, 256), 256, 0, s>>>(gpu_grass_g(m, kind, layer), gs->full, gs->sigma + so,
                                                                   gs->rho + so, sh.r, sh.E, n, sh.rows);
    cudaCheckLaunch();
    cudaCheck(cudaMemsetAsync((char *)gs->m + at * mb, 0, gs->slay.chunk[kind] * mb, s));  // the owned part's moments restart
    cudaCheck(cudaMemsetAsync((char *)gs->v + at * mb, 0, gs->slay.chunk[kind] * mb, s));
}

// The backward of `count` projections kind, kind + 1, ... of a layer that read one input, out_i [N, mo_i] = inp [N, n]
// @ W_i^T (q, k, v; gate, up; or one alone): dinp = sum_i dout[i] @ W_i, then the weight gradients: the full ones
// (AdamW), or Grass's compressed ones (a refresh computes each full one first), one batched product for each run
// of them that grass_group_size allows.
static void gpu_projections_backward(GpuLlama *m, int kind, int count, int layer, floatX *dinp, const floatX *const *dout,
                                     const floatX *inp, int N, int n) {
    int mo[GRASS_GROUP_MAX];
    for (int i = 0; i < count; i++) {
        size_t rows, cols;
        llama_param_shape(&m->stored_cfg, kind + i, &rows, &cols);
        mo[i] = (int)rows;
    }
    gpu_mark(m, PROF_MATMUL_DINP);
    for (int i = 0; i < count; i++)
        matmul_backward(&m->mm, dinp, NULL, dout[i], inp, gpu_weight(m, kind + i, layer), N, n, mo[i], i > 0, m->stream);
    GpuGrass *gs = &m->grass;
    gpu_mark(m, !gs->p.enabled ? PROF_MATMUL_DW : gs->refresh_now ? PROF_GRASS_REFRESH : PROF_GRASS_GRAD);
    for (int i = 0; i < count;) {
        int k = kind + i, c = 1;
        if (!gs->p.enabled) {
            matmul_backward(&m->mm, NULL, gpu_grad(m, k, layer), dout[i], inp, NULL, N, n, mo[i], 0, m->stream);
        } else if (gs->refresh_now) {
            gpu_grass_refresh(m, k, layer, dout[i], inp, N, n, mo[i]);
        } else {
            c = grass_group_size(&gs->p, k, count - i);
            float *g = gpu_grass_g(m, k, layer);
            GrassGroup gr = grass_group(&gs->p, g, c > 1 ? (size_t)(gpu_grass_g(m, k + 1, layer) - g) : 0, gs->sigma, gs->rho, k,
                                        layer, c, dout + i);
            grass_compressed_grad(&m->mm, &gr, gs->sel, gs->p.shape[k], inp, N, n, mo[i], m->stream);
        }
        i += c;
    }
}


// This process is rank `rank` of the run (after gpu_alloc, before the weights): its place among the owners, and the
// ranges of its parts for the gradient norm (with several ranks).
static void gpu_shard_init(GpuLlama *m, int rank) {
    m->owner = m->owners > 1 ? rank : 0;
    if (m->ranks == 1) return;
    const ShardPlan *p = &m->reduce;
    size_t *r = (size_t *)xmalloc(2 * sizeof(size_t) * p->nseg);
    m->owned_full = m->owned_grass = 0;
    for (int grass = 0; grass < 2; grass++)  // the full gradients' ranges first, then g's
        for (int i = 0; i < p->nseg; i++) {
            size_t e0, e1, k = m->owned_full + m->owned_grass;
            if (p->seg[i].grass != grass) continue;
            shard_seg_range(&p->seg[i], m->owner, &e0, &e1);
            r[2 * k] = p->seg[i].offset + e0, r[2 * k + 1] = p->seg[i].offset + e1;
            (grass ? m->owned_grass : m->owned_full)++;
        }
    cudaCheck(cudaMemcpy(m->owned_ranges, r, 2 * sizeof(size_t) * p->nseg, cudaMemcpyHostToDevice));
    free(r);
}

// A segment of the reduce plan whose gradient is complete (the step's last backward; every backward with
// --shard-weights): it is packed into its bucket (in --reduce-dtype), and once that bucket is full the bucket is
// averaged over the ranks (an all-reduce, or a reduce-scatter with the state sharded) on the communication stream, and
// the results this rank owns are unpacked there into the gradients or g (with --shard-weights added to this rank's
// parts of them), while the backward goes on (docs/design.md §7). The two bucket buffers take turns: a bucket waits
// for the one before the last to be out of its buffer.
static void gpu_reduce_piece(GpuLlama *m, const ShardSeg *s) {
    const ShardPlan *p = &m->reduce;
    const ShardBucket *bk = &p->bucket[s->bucket];
    if (s == &p->seg[bk->first]) m->reduce_buf = m->bucket_turn++ % 2;
    int b = m->reduce_buf;
    void *buf = m->bucket[b];
    gpu_mark(m, PROF_COMM);
    if (s == &p->seg[bk->first]) {  // a new bucket in this buffer: its previous one must be out
        cudaCheck(cudaStreamWaitEvent(m->stream, m->bucket_free[b], 0));
        cudaCheck(cudaMemsetAsync(buf, 0, bk->slot * p->ranks * (m->reduce_bf16 ? 2 : 4), m->stream));
    }
    gpu_bucket_copy(m, buf, m->reduce_bf16, p, s, 0, p->ranks, SHARD_PACK, 0, m->stream);
    if (s != &p->seg[bk->first + bk->count - 1]) return;
    if (m->reduce_bf16) gpu_comm_mean(m->gcomm, (__nv_bfloat16 *)buf, bk->slot, p->ranks, COMM_GRADS, m->stream);
    else gpu_comm_mean(m->gcomm, (float *)buf, bk->slot, p->ranks, COMM_GRADS, m->stream);
    cudaStream_t cs = gpu_comm_stream(m->gcomm, m->stream);
    int owner = p->ranks > 1 ? m->owner : 0, dir = m->shard_weights ? SHARD_UNPACK_ADD : SHARD_UNPACK;
    for (int i = bk->first; i < bk->first + bk->count; i++)
        gpu_bucket_copy(m, buf, m->reduce_bf16, p, &p->seg[i], owner, owner + 1, dir, 1, cs);
    cudaCheck(cudaEventRecord(m->bucket_free[b], cs));
}

// The gradient of tensor (kind, layer) is complete: its segments, the reduce plan's next (one, or its pieces).
static void gpu_reduce_segment(GpuLlama *m, int kind, int layer) {
    const ShardPlan *p = &m->reduce;
    if (m->next_seg >= p->nseg || p->seg[m->next_seg].kind != kind || p->seg[m->next_seg].layer != layer)
        fail("internal: the backward finished tensor %d of layer %d out of the reduce plan's order", kind, layer);
    while (m->next_seg < p->nseg && p->seg[m->next_seg].kind == kind && p->seg[m->next_seg].layer == layer)
        gpu_reduce_piece(m, &p->seg[m->next_seg++]);
}

// ----------------------------------------------------------------------------------------------------
// Backward (after gpu_forward with dloss != 0): the gradients accumulate into m->grads (and Grass's g). With
// reduce_in_backward (the step's last micro-batch) each finished tensor is averaged over the ranks at once. With
// --shard-weights (gradients sharded too) every micro-batch's are: a layer's gradients are computed into the window
// (gpu_grad, gpu_grass_g), reduce-scattered as soon as the layer is done, and each rank adds the average of its parts
// to its sums (m->grads, g), so that no rank holds more than one layer's whole gradients. Every rank put the
// rank-averaged refresh rows into its g, so the average counts them once (docs/design.md §3).

static void gpu_backward(GpuLlama *m) {
    const LlamaConfig *c = &m->stored_cfg;
    GpuActivations *a = &m->a;
    int B = m->B, T = m->T, N = B * T, d = c->dim, qd = llama_q_dim(c), f = c->ffn_dim;
    int hd = llama_head_dim(c);
    cudaStream_t s = m->stream;
    gpu_mark(m, PROF_RMSNORM);
    cudaCheck(cudaMemsetAsync(a->dres, 0, sizeof(floatX) * N * d, s));
    rmsnorm_backward(a->dres, gpu_grad(m, PARAM_FINAL_NORM, 0), a->norm_scratch, a->dln,
                     a->x + (size_t)c->n_layers * N * d, gpu_weight(m, PARAM_FINAL_NORM, 0), a->rstdf, N, d, s);
    int reduce = m->gcomm && (m->reduce_in_backward || m->shard_weights);
    m->next_seg = 0;
    if (reduce) {  // a tied lm_head's gradient is the embedding's, whose reduce at the end carries both uses
        if (llama_param_present(c, PARAM_LM_HEAD)) gpu_reduce_segment(m, PARAM_LM_HEAD, 0);
        gpu_reduce_segment(m, PARAM_FINAL_NORM, 0);
    }
    for (int l = c->n_layers - 1; l >= 0; l--) {
        LayerActs la = gpu_layer_acts(m, l);
        gpu_weights_gather(m, l);
        if (l > 0) gpu_weights_gather(m, l - 1);  // the next layer's gather overlaps this one's backward
        gpu_weights_ready(m, l);
        gpu_window_zero(m, l);
        if (m->recompute >= 2) {
            gpu_layer_forward(m, l);
        } else if (m->recompute == 1) {
            gpu_mark(m, PROF_RMSNORM);
            rmsnorm_forward(la.ln1, la.rstd1, la.x, gpu_weight(m, PARAM_ATTN_NORM, l), N, d, c->norm_eps, s);
            rmsnorm_forward(la.ln2, la.rstd2, la.h, gpu_weight(m, PARAM_MLP_NORM, l), N, d, c->norm_eps, s);
            gpu_mark(m, PROF_SWIGLU);
            swiglu_forward(la.act, la.gate, la.up, (size_t)N * f, s);
        }
        // MLP: x[l+1] = h + down(silu(gate(ln2)) * up(ln2)); dres holds d x[l+1] and becomes d h
        gpu_projections_backward(m, PARAM_WDOWN, 1, l, a->dact, &a->dres, la.act, N, f);
        gpu_mark(m, PROF_SWIGLU);
        swiglu_backward(a->dgate, a->dup, a->dact, la.gate, la.up, (size_t)N * f, s);
        const floatX *dgate_up[GPU_GATE_UP] = {a->dgate, a->dup};
        gpu_projections_backward(m, PARAM_WGATE, GPU_GATE_UP, l, a->dln, dgate_up, la.ln2, N, d);
        gpu_mark(m, PROF_RMSNORM);
        rmsnorm_backward(a->dres, gpu_grad(m, PARAM_MLP_NORM, l), a->norm_scratch, a->dln, la.h,
                         gpu_weight(m, PARAM_MLP_NORM, l), la.rstd2, N, d, s);
        // attention: h = x + o(attn(rope(q(ln1)), rope(k(ln1)), v(ln1))); dres becomes d x[l]
        gpu_projections_backward(m, PARAM_WO, 1, l, a->datty, &a->dres, la.atty, N, qd);
        gpu_mark(m, PROF_ATTENTION_BWD);
        attention_backward(a->dq, a->dk, a->dv, a->attn_scratch, a->datty, la.atty, la.q, la.k, la.v, la.lse, B, T,
                           c->n_heads, c->n_kv_heads, hd, s);
        gpu_mark(m, PROF_ROPE);
        rope_backward(a->dq, a->dq, a->rope_cos, a->rope_sin, N, T, c->n_heads, hd, s);
        rope_backward(a->dk, a->dk, a->rope_cos, a->rope_sin, N, T, c->n_kv_heads, hd, s);
        const floatX *dqkv[GPU_QKV] = {a->dq, a->dk, a->dv};
        gpu_projections_backward(m, PARAM_WQ, GPU_QKV, l, a->dln, dqkv, la.ln1, N, d);
        gpu_mark(m, PROF_RMSNORM);
        rmsnorm_backward(a->dres, gpu_grad(m, PARAM_ATTN_NORM, l), a->norm_scratch, a->dln, la.x,
                         gpu_weight(m, PARAM_ATTN_NORM, l), la.rstd1, N, d, s);
        for (int i = 0; reduce && i < SHARD_BLOCK_KINDS; i++) gpu_reduce_segment(m, shard_block_order[i], l);
    }
    gpu_mark(m, PROF_EMBEDDING);
    if (llama_param_present(c, PARAM_LM_HEAD)) gpu_window_zero(m, SHARD_GROUP_EMBED);  // where the lm_head's was, reduced
    // adds (tied: to the lm_head's gradient, which gpu_forward added); only then is the gradient complete to reduce
    embedding_backward(gpu_grad(m, PARAM_EMBED, 0), a->dres, a->buckets, m->bucket_count, N, d, s);
    if (reduce) gpu_reduce_segment(m, PARAM_EMBED, 0);
    if (reduce && m->reduce_in_backward) gpu_comm_wait(m->gcomm, s);  // the optimizer reads the averaged gradients
    m->grass.refresh_now = 0;  // a refresh selects on the step's first micro-batch only
}

// ----------------------------------------------------------------------------------------------------
// Optimizer

// Zeroes the gradients before a step's first micro-batch; under Grass, marks whether this step refreshes.
static void gpu_zero_grads(GpuLlama *m, int step) {
    gpu_mark(m, PROF_OTHER);
    cudaCheck(cudaMemsetAsync(m->grads, 0, sizeof(floatX) * (m->shard_weights ? m->slay.count : m->glay.count), m->stream));
    GpuGrass *gs = &m->grass;
    if (!gs->p.enabled) return;
    cudaCheck(cudaMemsetAsync(gs->g, 0, sizeof(float) * (m->shard_weights ? gs->slay.count : gs->p.nstate), m->stream));
    gs->refresh_now = grass_is_refresh(step, gs->p.interval);
    gs->refresh_index = grass_refresh_number(step, gs->p.interval);
}

// Bytes each rank's collectives move in a step of accum micro-batches by category (comm.h's COMM_GRADS ...; the
// refresh's at refresh steps). With --shard-weights every micro-batch's gradients are reduced.
static void gpu_comm_bytes(const GpuLlama *m, int accum, double *bytes) {
    int several = m->ranks > 1, sharded = m->owners > 1;
    size_t proj_full = llama_projection_numel(&m->stored_cfg);
    bytes[COMM_GRADS] = several ? (double)m->reduce.total * (m->reduce_bf16 ? 2 : 4) * (m->shard_weights ? accum : 1) : 0.0;
    bytes[COMM_WEIGHTS] = sharded ? (double)m->weights.total * sizeof(floatX) : 0.0;
    if (several && m->shard_weights) {  // gathered before they are used: a layer 2 accum times less the two the backward
        double layers = 0.0, other = 0.0;  // and the next forward find in place; the others once a step, or (untied)
                                           // every micro-batch, as the embedding and lm_head take turns in one place
        int L = m->stored_cfg.n_layers;
        for (int b = 0; b < m->weights.nbucket; b++) {
            double n = (double)m->weights.bucket[b].slot * m->weights.ranks * sizeof(floatX);
            if (shard_seg_group(&m->weights.seg[m->weights.bucket[b].first]) < 0) other += n;
            else layers += n;
        }
        int gathers = L + (2 * accum - 1) * (L > 2 ? L - 2 : 0);
        bytes[COMM_WEIGHTS] = other * (llama_param_present(&m->stored_cfg, PARAM_LM_HEAD) ? accum : 1) + layers / L * gathers;
    }
    bytes[COMM_UPDATES] = sharded && m->grass.p.enabled ? 4.0 * m->updates.total : 0.0;
    bytes[COMM_REFRESH] = several && m->grass.p.enabled ? 4.0 * proj_full : 0.0;
}

// The global gradient norm over the full gradients and Grass's compressed ones (synchronises).
// With the state sharded each rank sums the squares of its own parts and the ranks add their sums.
static float gpu_grad_norm(GpuLlama *m) {
    gpu_mark(m, PROF_GRAD_NORM);
    if (m->owners == 1) {
        global_norm_squared(m->a.norm_partials, m->grads, m->glay.count, 0, m->stream);
        if (m->grass.p.enabled) global_norm_squared(m->a.norm_partials, m->grass.g, m->grass.p.nstate, 1, m->stream);
        global_norm_squared_finish(m->a.norm_out, m->a.norm_partials, m->stream);
        gpu_comm_sync(m->gcomm, m->stream);  // the watched wait for the all-reduces, before a copy to pageable memory blocks the host
        float sq;
        cudaCheck(cudaMemcpyAsync(&sq, m->a.norm_out, sizeof(float), cudaMemcpyDeviceToHost, m->stream));
        cudaCheck(cudaStreamSynchronize(m->stream));
        gpu_mark(m, PROF_HOST);
        return sqrtf(sq);
    }
    if (m->shard_weights) {  // the parts alone (a shorter last part is padded with zeros)
        global_norm_squared(m->a.norm_partials, m->grads, m->slay.count, 0, m->stream);
        if (m->grass.p.enabled) global_norm_squared(m->a.norm_partials, m->grass.g, m->grass.slay.count, 1, m->stream);
    } else {
        global_norm_squared_ranges(m->a.norm_partials, m->grads, m->owned_ranges, m->owned_full, 0, m->stream);
        global_norm_squared_ranges(m->a.norm_partials, m->grass.g, m->owned_ranges + 2 * m->owned_full, m->owned_grass, 1, m->stream);
    }
    global_norm_squared_finish(m->a.finite_out, m->a.norm_partials, m->stream);
    gpu_comm_sync(m->gcomm, m->stream);
    double sq;
    cudaCheck(cudaMemcpyAsync(&sq, m->a.finite_out, sizeof(double), cudaMemcpyDeviceToHost, m->stream));
    cudaCheck(cudaStreamSynchronize(m->stream));
    gpu_mark(m, PROF_HOST);
    return (float)sqrt(comm_sum_f64(m->gcomm->comm, sq, "an all-reduce of the gradient norm"));
}

static void gpu_moments_norm_squared(GpuLlama *m, const void *mom, const void *var, size_t n) {
    // adds the squares of a pair of moments [n] (bf16 or fp32, --state-dtype) to the norm partials
    if (m->state_bf16) {
        global_norm_squared(m->a.norm_partials, (const __nv_bfloat16 *)mom, n, 1, m->stream);
        global_norm_squared(m->a.norm_partials, (const __nv_bfloat16 *)var, n, 1, m->stream);
    } else {
        global_norm_squared(m->a.norm_partials, (const float *)mom, n, 1, m->stream);
        global_norm_squared(m->a.norm_partials, (const float *)var, n, 1, m->stream);
    }
}

// Whether the weights (and fp32 master weights) and the optimizer state are all finite: one deterministic reduction
// on the device, the double sum of their squares (the kernels of the gradient norm), and one number to the host, not a
// copy of the model. The sum is finite exactly when every value is: each |x| < 3.4e38 (fp32 or bf16), so the sum of
// even 1e12 squares stays far below a double's 1.8e308. Checked before every checkpoint.
static int gpu_state_finite(GpuLlama *m) {
    gpu_mark(m, PROF_OTHER);
    double *part = m->a.norm_partials, sum;
    GpuGrass *gs = &m->grass;
    global_norm_squared(part, m->params, m->shard_weights ? m->mlay.count : m->lay.count, 0, m->stream);
    if (m->master) global_norm_squared(part, m->master, m->mlay.count, 1, m->stream);
    gpu_moments_norm_squared(m, m->mom, m->var, m->slay.count);
    if (gs->p.enabled) {
        global_norm_squared(part, gs->rho, gs->p.nsel, 1, m->stream);
        gpu_moments_norm_squared(m, gs->m, gs->v, gs->slay.count);
    }
    global_norm_squared_finish(m->a.finite_out, part, m->stream);
    cudaCheck(cudaMemcpyAsync(&sum, m->a.finite_out, sizeof(double), cudaMemcpyDeviceToHost, m->stream));
    cudaCheck(cudaStreamSynchronize(m->stream));
    gpu_mark(m, PROF_HOST);
    return isfinite(sum);
}

// The seed of the stochastic rounding of Grass's update of projection (kind, layer) at step `step` (0-based).
static uint64_t gpu_grass_seed(const TrainOptions *opt, int step, int kind, int layer) {
    Rng r;
    rng_init(&r, (uint64_t)opt->seed, RNG_STREAM_ROUNDING, (uint64_t)step, (uint64_t)(NUM_PARAM_KINDS * (layer + 1) + kind));
    return rng_next(&r);
}

// Clipping by the global gradient norm (gpu_grad_norm's), AdamW on the tensors with full gradients (weight decay on
// the matrices only) and Grass on the projections, as llama_optimizer_step in train_llama.c, each on this rank's parts
// (all of every tensor with one owner): Grass's subspace Adam on the owned parts of g, every rank's U to every rank,
// then the owned parts of the weights; with the state sharded the updated weights then go to every rank. With
// --shard-weights U is gathered a layer at a time, into the window of one layer's g, and each layer's weights are
// updated from it. step is 0-based; the stochastic-rounding seeds are keyed by (seed, step, kind, layer) and the random
// bits by the element's index in its tensor, so that a part draws what it would draw in the whole.
static void gpu_optimizer_step(GpuLlama *m, const TrainOptions *opt, int step, float lr, float norm) {
    float coef = 1.0f;
    if (opt->grad_clip > 0.0f && opt->grad_clip / (norm + 1e-6f) < 1.0f) coef = opt->grad_clip / (norm + 1e-6f);
    GpuGrass *gs = &m->grass;
    const LlamaConfig *c = &m->stored_cfg;
    int L = c->n_layers, sw = m->shard_weights;
    size_t mb = m->state_bf16 ? 2 : 4;
    gpu_mark(m, PROF_OPTIMIZER);
    uint64_t *seeds = (uint64_t *)xmalloc(sizeof(uint64_t) * L);
    for (int kind = 0; gs->p.enabled && kind < NUM_PARAM_KINDS; kind++) {  // subspace Adam: g becomes U
        if (!llama_param_kinds[kind].is_projection) continue;
        for (int l = 0; l < L; l++) seeds[l] = gpu_grass_seed(opt, step, kind, l);
        GrassShape sh = gs->p.shape[kind];
        size_t lo, hi, at = shard_offset(&gs->slay, kind, 0), mp = gs->slay.chunk[kind];
        gpu_owned(m, (size_t)sh.r * sh.E, &lo, &hi);
        float *g = sw ? gs->g + at : gs->g + grass_state_offset(&gs->p, kind, 0);
        int t = grass_adam_t(step, gs->p.interval);
        if (m->state_bf16)
            grass_adam_step(g, (__nv_bfloat16 *)gs->m + at, (__nv_bfloat16 *)gs->v + at, sh, L, lo, hi, mp, sw, opt, coef, t, seeds,
                            m->stream);
        else
            grass_adam_step(g, (float *)gs->m + at, (float *)gs->v + at, sh, L, lo, hi, mp, sw, opt, coef, t, seeds, m->stream);
    }
    if (gs->p.enabled && m->owners > 1 && !sw) {
        gpu_gather(m, &m->updates, SHARD_GROUP_ALL, COMM_UPDATES);
        gpu_comm_wait(m->gcomm, m->stream);
    }
    for (int l = 0; gs->p.enabled && l < (sw ? L : 1); l++) {  // the weights: every layer at once, or (sw) layer l
        if (sw) {
            gpu_gather(m, &m->updates, l, COMM_UPDATES);
            gpu_comm_wait(m->gcomm, m->stream);
        }
        gpu_mark(m, PROF_OPTIMIZER);
        for (int kind = 0; kind < NUM_PARAM_KINDS; kind++) {
            if (!llama_param_kinds[kind].is_projection) continue;
            int l0 = sw ? l : 0, layers = sw ? 1 : L;
            for (int i = 0; i < layers; i++) seeds[i] = gpu_grass_seed(opt, step, kind, l0 + i);
            size_t wm, wn, lo, hi;  // the stored matrix: decay and scatter address it
            llama_param_shape(c, kind, &wm, &wn);
            gpu_owned(m, wm * wn, &lo, &hi);
            size_t so = grass_sel_offset(&gs->p, kind, l0), at = shard_offset(&m->mlay, kind, l0);
            float *master = m->master ? m->master + at : NULL;
            floatX *W = sw ? m->params + at : m->params + llama_param_offset(c, &m->lay, kind, l0);
            grass_apply(W, master, gpu_grass_g(m, kind, l0), gs->sigma + so, gs->rho + so, gs->p.shape[kind], (int)wm, (int)wn,
                        layers, lo, hi, m->mlay.chunk[kind], sw, opt, lr, gs->p.alpha, seeds, m->stream);
        }
    }
    free(seeds);
    for (int kind = 0; kind < NUM_PARAM_KINDS; kind++) {
        if (!llama_param_present(c, kind)) continue;  // a tied lm_head: updated as the embedding
        if (gs->p.enabled && llama_param_kinds[kind].is_projection) continue;
        size_t n = llama_param_numel(c, kind), lo, hi, mp = m->slay.chunk[kind];
        int tensors = llama_param_kinds[kind].per_layer ? L : 1;
        gpu_owned(m, n, &lo, &hi);
        Rng r;
        rng_init(&r, (uint64_t)opt->seed, RNG_STREAM_ROUNDING, (uint64_t)step, (uint64_t)kind);
        AdamWParams hp = {lr, opt->beta1, opt->beta2, opt->eps, llama_param_is_matrix(kind) ? opt->weight_decay : 0.0f,
                          coef, step + 1, rng_next(&r)};
        floatX *params = m->shard_weights ? m->params + shard_offset(&m->mlay, kind, 0) : m->params + m->lay.offset[kind];
        const floatX *grads = m->shard_weights ? m->grads + shard_offset(&m->slay, kind, 0) : m->grads + m->glay.offset[kind];
        float *master = m->master ? m->master + shard_offset(&m->mlay, kind, 0) : NULL;  // parts as long as the moments'
        char *mom = (char *)m->mom + shard_offset(&m->slay, kind, 0) * mb, *var = (char *)m->var + shard_offset(&m->slay, kind, 0) * mb;
        if (m->state_bf16)
            adamw_update_part(params, master, grads, (__nv_bfloat16 *)mom, (__nv_bfloat16 *)var, n, tensors, lo, hi, mp,
                              m->shard_weights, &hp, m->stream);
        else
            adamw_update_part(params, master, grads, (float *)mom, (float *)var, n, tensors, lo, hi, mp, m->shard_weights, &hp,
                              m->stream);
    }
    if (m->shard_weights) m->wlayer_of[0] = m->wlayer_of[1] = -1, m->wembed_ok = m->whead_ok = 0;  // gathered anew when next needed
    else if (m->owners > 1) {
        gpu_gather(m, &m->weights, SHARD_GROUP_ALL, COMM_WEIGHTS);
        gpu_comm_wait(m->gcomm, m->stream);
    }
}
