/*
 * llama_config.h: the one place for the model's shape, shared by the CPU and GPU trainers: the config
 * struct, the presets of docs/design.md §2, reading and writing Hugging Face `config.json`, the parameter tensors
 * (their HF names, shapes and order in the flat parameter buffer) and size arithmetic.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_LLAMA_CONFIG_H
#define GRASS_LLAMA_CONFIG_H

#include <float.h>
#include <limits.h>
#include <math.h>
#include "common.h"
#include "json.h"
#include "rng.h"

typedef struct {
    int dim;         // d: model width
    int n_layers;    // L
    int n_heads;     // query heads; head_dim = dim / n_heads
    int n_kv_heads;  // key/value heads (GQA when fewer than n_heads)
    int ffn_dim;     // SwiGLU hidden width
    int vocab_size;  // V
    int max_seq;     // longest sequence the model is configured for (HF max_position_embeddings)
    float norm_eps;  // RMSNorm epsilon
    float rope_theta;
} LlamaConfig;

typedef struct {
    const char *name;
    LlamaConfig cfg;
    int grass_rank;  // default Grass rank (docs/design.md §3)
} LlamaPreset;

// docs/design.md §2 presets (the GaLore / Grass sizes) and small ones for tests and CPU demos.
static const LlamaPreset llama_presets[] = {
    // name      dim  layers heads kv  ffn    vocab  max_seq eps   theta        grass rank
    {"test",   {64, 2, 4, 2, 172, 512, 256, 1e-6f, 10000.0f}, 16},     // tests: GQA, ffn not a multiple of 8
    {"tiny",   {128, 4, 4, 4, 344, 32000, 1024, 1e-6f, 10000.0f}, 32}, // CPU quick start with the LLaMA tokenizer
    {"60m",    {512, 8, 8, 8, 1376, 32000, 2048, 1e-6f, 10000.0f}, 128},
    {"130m",   {768, 12, 12, 12, 2048, 32000, 2048, 1e-6f, 10000.0f}, 256},
    {"350m",   {1024, 24, 16, 16, 2736, 32000, 2048, 1e-6f, 10000.0f}, 256},
    {"1b",     {2048, 24, 32, 32, 5461, 32000, 2048, 1e-6f, 10000.0f}, 512},
    {"7b",     {4096, 32, 32, 32, 11008, 32000, 4096, 1e-6f, 10000.0f}, 1024},
    {"13b",    {5120, 40, 40, 40, 13824, 32000, 4096, 1e-6f, 10000.0f}, 1024},
};
#define LLAMA_NUM_PRESETS ((int)(sizeof(llama_presets) / sizeof(llama_presets[0])))

static int llama_head_dim(const LlamaConfig *c) { return c->dim / c->n_heads; }
static int llama_q_dim(const LlamaConfig *c) { return c->n_heads * llama_head_dim(c); }
static int llama_kv_dim(const LlamaConfig *c) { return c->n_kv_heads * llama_head_dim(c); }

// Finds a preset by name; returns NULL when there is none.
static const LlamaPreset *llama_preset_find(const char *name) {
    for (int i = 0; i < LLAMA_NUM_PRESETS; i++)
        if (!strcmp(llama_presets[i].name, name)) return &llama_presets[i];
    return NULL;
}

// The largest sizes a model may have, so that every size product the trainers form (a vocab x dim matrix, a
// layer's activations, the parameter count) fits its type: dim, ffn, vocab and max-seq at most 2^20 each,
// layers and heads at most 2^12.
#define LLAMA_MAX_SIZE (1 << 20)
#define LLAMA_MAX_COUNT (1 << 12)

// Fails with a message naming `source` (a preset, a file or the flags) when the sizes are inconsistent.
static void llama_config_validate(const LlamaConfig *c, const char *source) {
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->ffn_dim <= 0 ||
        c->vocab_size <= 0 || c->max_seq <= 0)
        fail("%s: every size must be positive (dim %d, layers %d, heads %d, kv-heads %d, ffn %d, vocab %d, max-seq %d)",
             source, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, c->vocab_size, c->max_seq);
    const struct { const char *name; int value, max; } bounds[] = {
        {"dim", c->dim, LLAMA_MAX_SIZE}, {"ffn", c->ffn_dim, LLAMA_MAX_SIZE}, {"vocab", c->vocab_size, LLAMA_MAX_SIZE},
        {"max-seq", c->max_seq, LLAMA_MAX_SIZE}, {"layers", c->n_layers, LLAMA_MAX_COUNT},
        {"heads", c->n_heads, LLAMA_MAX_COUNT}, {"kv-heads", c->n_kv_heads, LLAMA_MAX_COUNT},
    };
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++)
        if (bounds[i].value > bounds[i].max)
            fail("%s: %s %d is above the largest supported, %d", source, bounds[i].name, bounds[i].value, bounds[i].max);
    if (c->dim % c->n_heads) fail("%s: dim %d is not a multiple of heads %d", source, c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        fail("%s: heads %d is not a multiple of kv-heads %d", source, c->n_heads, c->n_kv_heads);
    if (llama_head_dim(c) % 2) fail("%s: head dim %d must be even for RoPE", source, llama_head_dim(c));
    if (!(c->norm_eps > 0.0f) || !(c->rope_theta > 0.0f) || !isfinite(c->norm_eps) || !isfinite(c->rope_theta))
        fail("%s: rms_norm_eps and rope_theta must be positive and finite", source);
}

static int llama_config_equal(const LlamaConfig *a, const LlamaConfig *b) {
    return a->dim == b->dim && a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
           a->n_kv_heads == b->n_kv_heads && a->ffn_dim == b->ffn_dim && a->vocab_size == b->vocab_size &&
           a->max_seq == b->max_seq && a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta;
}

static void llama_config_describe(const LlamaConfig *c, char *buf, size_t n) {
    snprintf(buf, n, "dim %d, layers %d, heads %d, kv-heads %d, ffn %d, vocab %d, max-seq %d", c->dim,
             c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, c->vocab_size, c->max_seq);
}

static int json_int_field(const JsonValue *root, const char *key, const char *path, int required, int dflt) {
    const JsonValue *v = json_get(root, key);
    if (!v || v->type == JSON_NULL) {
        if (required) fail("%s: missing field \"%s\"", path, key);
        return dflt;
    }
    if (v->type != JSON_NUMBER || v->number != floor(v->number))
        fail("%s: field \"%s\" must be an integer", path, key);
    if (!(v->number >= INT_MIN && v->number <= INT_MAX))
        fail("%s: field \"%s\" is %g, outside the range of an int", path, key, v->number);
    return (int)v->number;
}

static float json_float_field(const JsonValue *root, const char *key, const char *path, float dflt) {
    const JsonValue *v = json_get(root, key);
    if (!v || v->type == JSON_NULL) return dflt;
    if (v->type != JSON_NUMBER) fail("%s: field \"%s\" must be a number", path, key);
    if (!(fabs(v->number) <= FLT_MAX)) fail("%s: field \"%s\" is %g, too large for a float", path, key, v->number);
    return (float)v->number;
}

// Reads a Hugging Face LlamaConfig config.json.
static void llama_config_read_json(LlamaConfig *c, const char *path) {
    size_t len;
    char *text = file_read_all(path, &len);
    JsonValue root;
    json_parse(&root, text, len, path);
    if (root.type != JSON_OBJECT) fail("%s: expected a JSON object", path);
    const JsonValue *mt = json_get(&root, "model_type");
    if (mt && (mt->type != JSON_STRING || strcmp(mt->string, "llama")))
        fail("%s: model_type must be \"llama\"", path);
    const JsonValue *act = json_get(&root, "hidden_act");
    if (act && (act->type != JSON_STRING || strcmp(act->string, "silu")))
        fail("%s: hidden_act must be \"silu\" (the LLaMA SwiGLU)", path);
    const JsonValue *tie = json_get(&root, "tie_word_embeddings");
    if (tie && tie->type == JSON_BOOL && tie->number)
        fail("%s: tie_word_embeddings is true; grass.c trains LLaMA with an untied lm_head", path);
    const JsonValue *scaling = json_get(&root, "rope_scaling");
    if (scaling && scaling->type != JSON_NULL) fail("%s: rope_scaling is not supported", path);
    c->dim = json_int_field(&root, "hidden_size", path, 1, 0);
    c->n_layers = json_int_field(&root, "num_hidden_layers", path, 1, 0);
    c->n_heads = json_int_field(&root, "num_attention_heads", path, 1, 0);
    c->n_kv_heads = json_int_field(&root, "num_key_value_heads", path, 0, c->n_heads);
    c->ffn_dim = json_int_field(&root, "intermediate_size", path, 1, 0);
    c->vocab_size = json_int_field(&root, "vocab_size", path, 1, 0);
    c->max_seq = json_int_field(&root, "max_position_embeddings", path, 0, 2048);
    c->norm_eps = json_float_field(&root, "rms_norm_eps", path, 1e-6f);
    c->rope_theta = json_float_field(&root, "rope_theta", path, 10000.0f);
    json_free_value(&root);
    free(text);
    llama_config_validate(c, path);
}

// Writes the config as a Hugging Face LlamaConfig, so LlamaForCausalLM.from_pretrained reads it.
// dtype is the safetensors weight dtype name the checkpoint uses ("float32" or "bfloat16").
static void llama_config_write_json(const LlamaConfig *c, const char *path, const char *dtype) {
    FILE *f = xfopen(path, "w");
    fprintf(f,
            "{\n"
            "  \"architectures\": [\"LlamaForCausalLM\"],\n"
            "  \"model_type\": \"llama\",\n"
            "  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n"
            "  \"rms_norm_eps\": %.9g,\n"
            "  \"rope_theta\": %.9g,\n"
            "  \"hidden_act\": \"silu\",\n"
            "  \"tie_word_embeddings\": false,\n"
            "  \"attention_bias\": false,\n"
            "  \"initializer_range\": 0.02,\n"
            "  \"bos_token_id\": 1,\n"
            "  \"eos_token_id\": 2,\n"
            "  \"torch_dtype\": \"%s\"\n"
            "}\n",
            c->dim, c->ffn_dim, c->n_heads, c->n_kv_heads, c->n_layers, c->vocab_size, c->max_seq,
            (double)c->norm_eps, (double)c->rope_theta, dtype);
    if (fclose(f)) fail("cannot write %s: %s", path, strerror(errno));
}

// ----------------------------------------------------------------------------------------------------
// Parameter tensors. The flat parameter buffer holds the kinds in this order; a per-layer kind holds its
// L tensors one after another (layer-major within the kind), each row-major `rows x cols` (HF `out x in`).

enum {
    PARAM_EMBED,       // V x d
    PARAM_ATTN_NORM,   // d (per layer)
    PARAM_WQ,          // n_heads*hd x d
    PARAM_WK,          // n_kv_heads*hd x d
    PARAM_WV,          // n_kv_heads*hd x d
    PARAM_WO,          // d x n_heads*hd
    PARAM_MLP_NORM,    // d
    PARAM_WGATE,       // ffn x d
    PARAM_WUP,         // ffn x d
    PARAM_WDOWN,       // d x ffn
    PARAM_FINAL_NORM,  // d
    PARAM_LM_HEAD,     // V x d
    NUM_PARAM_KINDS
};

// HF tensor name (printf format taking the layer for per-layer kinds), whether the kind repeats per
// layer, and whether it is a projection matrix inside a block (the matrices Grass compresses).
static const struct {
    const char *hf_name;
    int per_layer;
    int is_projection;
} llama_param_kinds[NUM_PARAM_KINDS] = {
    {"model.embed_tokens.weight", 0, 0},
    {"model.layers.%d.input_layernorm.weight", 1, 0},
    {"model.layers.%d.self_attn.q_proj.weight", 1, 1},
    {"model.layers.%d.self_attn.k_proj.weight", 1, 1},
    {"model.layers.%d.self_attn.v_proj.weight", 1, 1},
    {"model.layers.%d.self_attn.o_proj.weight", 1, 1},
    {"model.layers.%d.post_attention_layernorm.weight", 1, 0},
    {"model.layers.%d.mlp.gate_proj.weight", 1, 1},
    {"model.layers.%d.mlp.up_proj.weight", 1, 1},
    {"model.layers.%d.mlp.down_proj.weight", 1, 1},
    {"model.norm.weight", 0, 0},
    {"lm_head.weight", 0, 0},
};

// Shape of one tensor of a kind; cols is 1 for the norm vectors.
static void llama_param_shape(const LlamaConfig *c, int kind, size_t *rows, size_t *cols) {
    size_t d = c->dim, q = llama_q_dim(c), kv = llama_kv_dim(c), f = c->ffn_dim, v = c->vocab_size;
    size_t r = d, k = 1;
    switch (kind) {
        case PARAM_EMBED: case PARAM_LM_HEAD: r = v; k = d; break;
        case PARAM_WQ: r = q; k = d; break;
        case PARAM_WK: case PARAM_WV: r = kv; k = d; break;
        case PARAM_WO: r = d; k = q; break;
        case PARAM_WGATE: case PARAM_WUP: r = f; k = d; break;
        case PARAM_WDOWN: r = d; k = f; break;
        default: break;  // norms: d x 1
    }
    *rows = r;
    *cols = k;
}

static int llama_param_is_matrix(int kind) {
    return kind != PARAM_ATTN_NORM && kind != PARAM_MLP_NORM && kind != PARAM_FINAL_NORM;
}

static size_t llama_param_numel(const LlamaConfig *c, int kind) {
    size_t r, k;
    llama_param_shape(c, kind, &r, &k);
    return r * k;
}

typedef struct {
    size_t offset[NUM_PARAM_KINDS];  // element offset of each kind's first tensor in the flat buffer
    size_t count;                    // total number of parameters
} ParamLayout;

// Elements of a kind over all its layers.
static size_t llama_param_kind_numel(const LlamaConfig *c, int kind) {
    return llama_param_numel(c, kind) * (llama_param_kinds[kind].per_layer ? (size_t)c->n_layers : 1);
}

// The layout of every tensor, or (with_projections = 0) of the tensors outside the block projections only:
// the gradient and AdamW-moment buffers of Grass, which hold no m x n space for the projections.
static void llama_param_layout_of(const LlamaConfig *c, ParamLayout *lay, int with_projections) {
    size_t off = 0;
    for (int k = 0; k < NUM_PARAM_KINDS; k++) {
        lay->offset[k] = off;
        if (with_projections || !llama_param_kinds[k].is_projection) off += llama_param_kind_numel(c, k);
    }
    lay->count = off;
}

static void llama_param_layout(const LlamaConfig *c, ParamLayout *lay) { llama_param_layout_of(c, lay, 1); }

// Element offset of (kind, layer) in the flat buffer; layer is ignored for the kinds that do not repeat.
static size_t llama_param_offset(const LlamaConfig *c, const ParamLayout *lay, int kind, int layer) {
    return lay->offset[kind] + (llama_param_kinds[kind].per_layer ? (size_t)layer * llama_param_numel(c, kind) : 0);
}

static void llama_param_name(int kind, int layer, char *buf, size_t n) {
    snprintf(buf, n, llama_param_kinds[kind].hf_name, layer);
}

// Number of tensors (kind, layer) in the model, and the i-th of them in checkpoint order.
static int llama_num_tensors(const LlamaConfig *c) {
    int n = 0;
    for (int k = 0; k < NUM_PARAM_KINDS; k++) n += llama_param_kinds[k].per_layer ? c->n_layers : 1;
    return n;
}

static void llama_tensor_at(const LlamaConfig *c, int i, int *kind, int *layer) {
    for (int k = 0; k < NUM_PARAM_KINDS; k++) {
        int reps = llama_param_kinds[k].per_layer ? c->n_layers : 1;
        if (i < reps) { *kind = k; *layer = i; return; }
        i -= reps;
    }
    fail("tensor index out of range");
}

// The initial value of one tensor (docs/design.md §2): N(0, 0.02) for the matrices and the embedding, 1 for the norm
// weights. A matrix is drawn in chunks of LLAMA_INIT_CHUNK values, each from its own stream keyed by (seed,
// kind, layer, chunk), so both trainers start from the same weights and the chunks fill in parallel (OpenMP)
// with the same values for any number of threads: a 13b model is 13e9 draws, minutes on one core.
#define LLAMA_INIT_CHUNK 65536
static void llama_init_tensor(const LlamaConfig *c, float *p, int kind, int layer, uint64_t seed) {
    size_t n = llama_param_numel(c, kind);
    if (!llama_param_is_matrix(kind)) {
        for (size_t j = 0; j < n; j++) p[j] = 1.0f;
        return;
    }
    long chunks = (long)((n + LLAMA_INIT_CHUNK - 1) / LLAMA_INIT_CHUNK);
#pragma omp parallel for schedule(static)
    for (long ch = 0; ch < chunks; ch++) {
        Rng r;
        rng_init(&r, seed, RNG_STREAM_INIT, (uint64_t)layer << 8 | (uint64_t)kind, (uint64_t)ch);
        size_t end = (size_t)(ch + 1) * LLAMA_INIT_CHUNK < n ? (size_t)(ch + 1) * LLAMA_INIT_CHUNK : n;
        for (size_t j = (size_t)ch * LLAMA_INIT_CHUNK; j < end; j += 2) {
            double z[2];
            rng_normal2(&r, z);
            p[j] = (float)(0.02 * z[0]);
            if (j + 1 < end) p[j + 1] = (float)(0.02 * z[1]);
        }
    }
}

// RoPE tables cos/sin [T, hd/2] computed as HF does (fp32 inverse frequencies, fp32 angles).
static void llama_rope_tables(float *cosb, float *sinb, int T, int hd, float theta) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        for (int t = 0; t < T; t++) {
            float angle = (float)t * inv_freq;
            cosb[t * half + i] = cosf(angle);
            sinb[t * half + i] = sinf(angle);
        }
    }
}

#endif
