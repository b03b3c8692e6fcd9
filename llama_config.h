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

// RoPE frequency scaling (Hugging Face `rope_scaling`): the inverse frequencies as transformers computes them.
enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_LLAMA3, ROPE_NUM_TYPES };
static const char *const rope_type_names[ROPE_NUM_TYPES] = {"default", "linear", "llama3"};

typedef struct {
    int type;                // ROPE_DEFAULT; ROPE_LINEAR: every frequency / factor; ROPE_LLAMA3: Llama-3.1's three bands
    float factor;            // linear, llama3
    float low_freq_factor;   // llama3: wavelengths above original_max_seq / low_freq_factor are divided by factor
    float high_freq_factor;  // llama3: those below original_max_seq / high_freq_factor are kept; between, a blend
    int original_max_seq;    // llama3: original_max_position_embeddings
} RopeScaling;

#define LLAMA_MAX_EOS 8  // eos_token_id may be a list (Llama-3.1 Instruct names three)

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
    RopeScaling rope;
    int tie_embeddings;  // one V x d matrix is both the embedding and the lm_head (HF tie_word_embeddings)
    // the special tokens config.json names: kept as read and written back into every checkpoint (the model does
    // not use them; generate does)
    int bos_id;                  // bos_token_id, -1 for null
    int n_eos;                   // eos_token_id: n_eos ids, 0 for null
    int eos_list;                // eos_token_id is written as a list (as it was read), else as one number
    int eos_ids[LLAMA_MAX_EOS];
} LlamaConfig;

typedef struct {
    const char *name;
    LlamaConfig cfg;
    int grass_rank;  // default Grass rank (docs/design.md §3)
} LlamaPreset;

// Columns of the preset table: RoPE scaling, and the special tokens of the vocabulary.
#define ROPE_NONE {ROPE_DEFAULT, 0.0f, 0.0f, 0.0f, 0}
#define ROPE_LLAMA31(f) {ROPE_LLAMA3, f, 1.0f, 4.0f, 8192}  // Llama-3.1 and 3.2: factor f, low 1, high 4, original 8192
#define TOKENS_LLAMA2 1, 1, 0, {2}                            // bos 1, eos 2: LLaMA-2's SentencePiece vocabulary
#define TOKENS_LLAMA3 128000, 1, 0, {128001}                  // <|begin_of_text|>, <|end_of_text|>

// docs/design.md §2 presets: the GaLore / Grass sizes, the released Llama-3.1 and 3.2 sizes as their config.json files
// publish them, and small ones for tests and CPU demos. The Grass rank is about dim / 4.
static const LlamaPreset llama_presets[] = {
    // name          dim   layers heads kv ffn    vocab   max_seq eps    theta      rope scaling          tie tokens      rank
    {"test",         {64, 2, 4, 2, 172, 512, 256, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 16},  // GQA, ffn % 8 != 0
    {"tiny",         {128, 4, 4, 4, 344, 32000, 1024, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 32},  // CPU quick start
    {"60m",          {512, 8, 8, 8, 1376, 32000, 2048, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 128},
    {"130m",         {768, 12, 12, 12, 2048, 32000, 2048, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 256},
    {"350m",         {1024, 24, 16, 16, 2736, 32000, 2048, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 256},
    {"1b",           {2048, 24, 32, 32, 5461, 32000, 2048, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 512},
    {"7b",           {4096, 32, 32, 32, 11008, 32000, 4096, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 1024},
    {"13b",          {5120, 40, 40, 40, 13824, 32000, 4096, 1e-6f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 1024},
    {"llama2-70b",   {8192, 80, 64, 8, 28672, 32000, 4096, 1e-5f, 10000.0f, ROPE_NONE, 0, TOKENS_LLAMA2}, 2048},
    {"llama3.2-1b",  {2048, 16, 32, 8, 8192, 128256, 131072, 1e-5f, 500000.0f, ROPE_LLAMA31(32.0f), 1, TOKENS_LLAMA3}, 512},
    {"llama3.2-3b",  {3072, 28, 24, 8, 8192, 128256, 131072, 1e-5f, 500000.0f, ROPE_LLAMA31(32.0f), 1, TOKENS_LLAMA3}, 768},
    {"llama3.1-8b",  {4096, 32, 32, 8, 14336, 128256, 131072, 1e-5f, 500000.0f, ROPE_LLAMA31(8.0f), 0, TOKENS_LLAMA3}, 1024},
    {"llama3.1-70b", {8192, 80, 64, 8, 28672, 128256, 131072, 1e-5f, 500000.0f, ROPE_LLAMA31(8.0f), 0, TOKENS_LLAMA3}, 2048},
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

// The preset names, comma-separated, for messages.
static const char *llama_preset_names(void) {
    static char buf[512];
    size_t n = 0;
    for (int i = 0; i < LLAMA_NUM_PRESETS && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? ", " : "", llama_presets[i].name);
    return buf;
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
    const RopeScaling *r = &c->rope;
    if (r->type < 0 || r->type >= ROPE_NUM_TYPES) fail("%s: unknown RoPE scaling type %d", source, r->type);
    if (r->type != ROPE_DEFAULT && !(r->factor > 0.0f && isfinite(r->factor)))
        fail("%s: rope_scaling factor must be positive and finite", source);
    if (r->type == ROPE_LLAMA3 &&
        !(r->low_freq_factor > 0.0f && r->high_freq_factor > r->low_freq_factor && isfinite(r->high_freq_factor) &&
          r->original_max_seq > 0))
        fail("%s: llama3 rope_scaling needs low_freq_factor > 0, high_freq_factor > low_freq_factor and "
             "original_max_position_embeddings > 0", source);
    if (c->tie_embeddings != 0 && c->tie_embeddings != 1) fail("%s: tie_word_embeddings must be true or false", source);
    if (c->n_eos < 0 || c->n_eos > LLAMA_MAX_EOS) fail("%s: at most %d eos_token_id values", source, LLAMA_MAX_EOS);
}

// A float as JSON: the shortest text that reads back as the same float (1e-05, not 9.99999975e-06), with a '.' or
// an exponent so that Python reads a float, as transformers writes them.
static const char *json_float_text(float v, char *buf, size_t n) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) snprintf(buf + strlen(buf), n - strlen(buf), ".0");
    return buf;
}

// The fields that define the model, with their Hugging Face names and values as text: what a mismatch names.
#define LLAMA_CONFIG_FIELDS 15
static void llama_config_fields(const LlamaConfig *c, const char **names, char (*values)[32]) {
    static const char *const hf[LLAMA_CONFIG_FIELDS] = {
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
        "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "rope_scaling.type",
        "rope_scaling.factor", "rope_scaling.low_freq_factor", "rope_scaling.high_freq_factor",
        "rope_scaling.original_max_position_embeddings"};
    const RopeScaling *r = &c->rope;
    int n = 0;
#define FIELD(...) snprintf(values[n++], 32, __VA_ARGS__)
    FIELD("%d", c->dim);
    FIELD("%d", c->n_layers);
    FIELD("%d", c->n_heads);
    FIELD("%d", c->n_kv_heads);
    FIELD("%d", c->ffn_dim);
    FIELD("%d", c->vocab_size);
    FIELD("%d", c->max_seq);
    json_float_text(c->norm_eps, values[n++], 32);
    json_float_text(c->rope_theta, values[n++], 32);
    FIELD("%s", c->tie_embeddings ? "true" : "false");
    FIELD("%s", rope_type_names[r->type]);
    json_float_text(r->type != ROPE_DEFAULT ? r->factor : 0.0f, values[n++], 32);
    json_float_text(r->type == ROPE_LLAMA3 ? r->low_freq_factor : 0.0f, values[n++], 32);
    json_float_text(r->type == ROPE_LLAMA3 ? r->high_freq_factor : 0.0f, values[n++], 32);
    FIELD("%d", r->type == ROPE_LLAMA3 ? r->original_max_seq : 0);
#undef FIELD
    for (int i = 0; i < LLAMA_CONFIG_FIELDS; i++) names[i] = hf[i];
}

// Whether two configs describe the same model; when not, buf names every differing field with a's and b's values.
static int llama_config_diff(const LlamaConfig *a, const LlamaConfig *b, char *buf, size_t n) {
    const char *names[LLAMA_CONFIG_FIELDS];
    char va[LLAMA_CONFIG_FIELDS][32], vb[LLAMA_CONFIG_FIELDS][32];
    llama_config_fields(a, names, va);
    llama_config_fields(b, names, vb);
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < LLAMA_CONFIG_FIELDS; i++)
        if (strcmp(va[i], vb[i]) && len < n)
            len += (size_t)snprintf(buf + len, n - len, "%s%s %s vs %s", len ? ", " : "", names[i], va[i], vb[i]);
    return len == 0;
}

static int llama_config_equal(const LlamaConfig *a, const LlamaConfig *b) {
    char buf[8];
    return llama_config_diff(a, b, buf, sizeof(buf));
}

static void llama_config_describe(const LlamaConfig *c, char *buf, size_t n) {
    int len = snprintf(buf, n, "dim %d, layers %d, heads %d, kv-heads %d, ffn %d, vocab %d, max-seq %d", c->dim,
                       c->n_layers, c->n_heads, c->n_kv_heads, c->ffn_dim, c->vocab_size, c->max_seq);
    if (c->tie_embeddings && len >= 0 && (size_t)len < n) len += snprintf(buf + len, n - (size_t)len, ", tied embeddings");
    if (c->rope.type != ROPE_DEFAULT && len >= 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, ", RoPE %s x%g", rope_type_names[c->rope.type], (double)c->rope.factor);
}

static int json_int_value(const JsonValue *v, const char *key, const char *path) {
    if (v->type != JSON_NUMBER || v->number != floor(v->number)) fail("%s: field \"%s\" must be an integer", path, key);
    if (!(v->number >= INT_MIN && v->number <= INT_MAX))
        fail("%s: field \"%s\" is %g, outside the range of an int", path, key, v->number);
    return (int)v->number;
}

static int json_int_field(const JsonValue *root, const char *key, const char *path, int required, int dflt) {
    const JsonValue *v = json_get(root, key);
    if (!v || v->type == JSON_NULL) {
        if (required) fail("%s: missing field \"%s\"", path, key);
        return dflt;
    }
    return json_int_value(v, key, path);
}

static float json_float_field(const JsonValue *root, const char *key, const char *path, float dflt) {
    const JsonValue *v = json_get(root, key);
    if (!v || v->type == JSON_NULL) return dflt;
    if (v->type != JSON_NUMBER) fail("%s: field \"%s\" must be a number", path, key);
    if (!(fabs(v->number) <= FLT_MAX)) fail("%s: field \"%s\" is %g, too large for a float", path, key, v->number);
    return (float)v->number;
}

// A boolean field: absent or null gives dflt.
static int json_bool_field(const JsonValue *root, const char *key, const char *path, int dflt) {
    const JsonValue *v = json_get(root, key);
    if (!v || v->type == JSON_NULL) return dflt;
    if (v->type != JSON_BOOL) fail("%s: field \"%s\" must be true or false", path, key);
    return (int)v->number;
}

// `rope_scaling`: null, or an object naming its type ("rope_type", or "type" in older files) and its parameters.
static void llama_rope_scaling_read(RopeScaling *r, const JsonValue *root, const char *path) {
    memset(r, 0, sizeof(*r));
    const JsonValue *s = json_get(root, "rope_scaling");
    if (!s || s->type == JSON_NULL) return;
    if (s->type != JSON_OBJECT) fail("%s: rope_scaling must be null or an object", path);
    const JsonValue *t = json_get(s, "rope_type");
    if (!t) t = json_get(s, "type");
    if (!t || t->type != JSON_STRING) fail("%s: rope_scaling has no \"rope_type\" string", path);
    r->type = -1;
    for (int i = 0; i < ROPE_NUM_TYPES; i++)
        if (!strcmp(t->string, rope_type_names[i])) r->type = i;
    if (r->type < 0)
        fail("%s: rope_scaling type \"%s\" is not supported (supported: default, linear, llama3)", path, t->string);
    if (r->type == ROPE_DEFAULT) return;
    if (!json_get(s, "factor")) fail("%s: rope_scaling of type %s needs \"factor\"", path, t->string);
    r->factor = json_float_field(s, "factor", path, 0.0f);
    if (r->type != ROPE_LLAMA3) return;
    const char *need[3] = {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"};
    for (int i = 0; i < 3; i++)
        if (!json_get(s, need[i])) fail("%s: rope_scaling of type llama3 needs \"%s\"", path, need[i]);
    r->low_freq_factor = json_float_field(s, "low_freq_factor", path, 0.0f);
    r->high_freq_factor = json_float_field(s, "high_freq_factor", path, 0.0f);
    r->original_max_seq = json_int_field(s, "original_max_position_embeddings", path, 1, 0);
}

// Reads a Hugging Face LlamaConfig config.json. What would change the model's function and is not implemented (biases,
// another head_dim, another activation, another RoPE scaling) is refused, naming the field.
static void llama_config_read_json(LlamaConfig *c, const char *path) {
    size_t len;
    char *text = file_read_all(path, &len);
    JsonValue root;
    json_parse(&root, text, len, path);
    if (root.type != JSON_OBJECT) fail("%s: expected a JSON object", path);
    memset(c, 0, sizeof(*c));
    const JsonValue *mt = json_get(&root, "model_type");
    if (mt && (mt->type != JSON_STRING || strcmp(mt->string, "llama")))
        fail("%s: model_type must be \"llama\"", path);
    const JsonValue *act = json_get(&root, "hidden_act");
    if (act && (act->type != JSON_STRING || strcmp(act->string, "silu")))
        fail("%s: hidden_act must be \"silu\" (the LLaMA SwiGLU), not %s", path,
             act->type == JSON_STRING ? act->string : "a non-string");
    if (json_bool_field(&root, "attention_bias", path, 0))
        fail("%s: attention_bias is true: grass.c's LLaMA has no q/k/v/o biases", path);
    if (json_bool_field(&root, "mlp_bias", path, 0)) fail("%s: mlp_bias is true: grass.c's LLaMA has no MLP biases", path);
    c->tie_embeddings = json_bool_field(&root, "tie_word_embeddings", path, 0);
    llama_rope_scaling_read(&c->rope, &root, path);
    c->dim = json_int_field(&root, "hidden_size", path, 1, 0);
    c->n_layers = json_int_field(&root, "num_hidden_layers", path, 1, 0);
    c->n_heads = json_int_field(&root, "num_attention_heads", path, 1, 0);
    c->n_kv_heads = json_int_field(&root, "num_key_value_heads", path, 0, c->n_heads);
    c->ffn_dim = json_int_field(&root, "intermediate_size", path, 1, 0);
    c->vocab_size = json_int_field(&root, "vocab_size", path, 1, 0);
    c->max_seq = json_int_field(&root, "max_position_embeddings", path, 0, 2048);
    c->norm_eps = json_float_field(&root, "rms_norm_eps", path, 1e-6f);
    c->rope_theta = json_float_field(&root, "rope_theta", path, 10000.0f);
    int head_dim = json_int_field(&root, "head_dim", path, 0, 0);
    if (head_dim && c->n_heads > 0 && (c->dim % c->n_heads || head_dim != c->dim / c->n_heads))
        fail("%s: head_dim %d is not hidden_size / num_attention_heads (%d / %d): grass.c needs head_dim = hidden_size / heads",
             path, head_dim, c->dim, c->n_heads);
    c->bos_id = json_int_field(&root, "bos_token_id", path, 0, -1);
    const JsonValue *eos = json_get(&root, "eos_token_id");
    if (eos && eos->type == JSON_ARRAY) {
        if (eos->count > LLAMA_MAX_EOS) fail("%s: eos_token_id lists %d ids, at most %d are supported", path, eos->count, LLAMA_MAX_EOS);
        c->eos_list = 1;
        c->n_eos = eos->count;
        for (int i = 0; i < eos->count; i++) c->eos_ids[i] = json_int_value(&eos->items[i], "eos_token_id", path);
    } else if (eos && eos->type != JSON_NULL) {
        c->n_eos = 1;
        c->eos_ids[0] = json_int_value(eos, "eos_token_id", path);
    }
    json_free_value(&root);
    free(text);
    llama_config_validate(c, path);
}

// eos_token_id as JSON: null, one number, or a list (as config.json had it).
static void llama_eos_json(const LlamaConfig *c, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "%s", c->n_eos ? (c->eos_list ? "[" : "") : "null");
    for (int i = 0; i < c->n_eos && len < n; i++) len += (size_t)snprintf(buf + len, n - len, "%s%d", i ? ", " : "", c->eos_ids[i]);
    if (c->n_eos && c->eos_list && len < n) snprintf(buf + len, n - len, "]");
}


// Writes the config as a Hugging Face LlamaConfig, so LlamaForCausalLM.from_pretrained reads it. dtype is the
// torch_dtype of the weights the checkpoint holds ("float32" or "bfloat16").
static void llama_config_write_json(const LlamaConfig *c, const char *path, const char *dtype) {
    FILE *f = xfopen(path, "w");
    char a[40], b[40], d[40];
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
            "  \"rms_norm_eps\": %s,\n"
            "  \"rope_theta\": %s,\n",
            c->dim, c->ffn_dim, c->n_heads, c->n_kv_heads, c->n_layers, c->vocab_size, c->max_seq,
            json_float_text(c->norm_eps, a, sizeof(a)), json_float_text(c->rope_theta, b, sizeof(b)));
    const RopeScaling *r = &c->rope;
    if (r->type == ROPE_DEFAULT) fprintf(f, "  \"rope_scaling\": null,\n");
    else if (r->type == ROPE_LINEAR)
        fprintf(f, "  \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %s},\n", json_float_text(r->factor, a, sizeof(a)));
    else
        fprintf(f,
                "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %s, \"low_freq_factor\": %s, "
                "\"high_freq_factor\": %s, \"original_max_position_embeddings\": %d},\n",
                json_float_text(r->factor, a, sizeof(a)), json_float_text(r->low_freq_factor, b, sizeof(b)),
                json_float_text(r->high_freq_factor, d, sizeof(d)), r->original_max_seq);
    fprintf(f,
            "  \"hidden_act\": \"silu\",\n"
            "  \"tie_word_embeddings\": %s,\n"
            "  \"attention_bias\": false,\n"
            "  \"mlp_bias\": false,\n"
            "  \"initializer_range\": 0.02,\n",
            c->tie_embeddings ? "true" : "false");
    char eos[LLAMA_MAX_EOS * 12 + 8];
    llama_eos_json(c, eos, sizeof(eos));
    if (c->bos_id >= 0) fprintf(f, "  \"bos_token_id\": %d,\n", c->bos_id);
    else fprintf(f, "  \"bos_token_id\": null,\n");
    fprintf(f, "  \"eos_token_id\": %s,\n  \"torch_dtype\": \"%s\"\n}\n", eos, dtype);
    xfclose_synced(f, path);
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

// Whether a kind has tensors of its own: the lm_head of a model with tied embeddings is the embedding.
static int llama_param_present(const LlamaConfig *c, int kind) { return !(kind == PARAM_LM_HEAD && c->tie_embeddings); }

// Elements of a kind over all its layers (0 for the tied lm_head: it has no storage of its own).
static size_t llama_param_kind_numel(const LlamaConfig *c, int kind) {
    if (!llama_param_present(c, kind)) return 0;
    return llama_param_numel(c, kind) * (llama_param_kinds[kind].per_layer ? (size_t)c->n_layers : 1);
}

// Elements of the block projections over all layers: what Grass replaces by compressed gradients.
static size_t llama_projection_numel(const LlamaConfig *c) {
    size_t n = 0;
    for (int k = 0; k < NUM_PARAM_KINDS; k++)
        if (llama_param_kinds[k].is_projection) n += llama_param_kind_numel(c, k);
    return n;
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

// Element offset of (kind, layer) in the flat buffer; layer is ignored for the kinds that do not repeat. The tied
// lm_head is the embedding: its weights, gradient (both uses accumulate into one) and moments are the embedding's.
static size_t llama_param_offset(const LlamaConfig *c, const ParamLayout *lay, int kind, int layer) {
    if (!llama_param_present(c, kind)) kind = PARAM_EMBED;
    return lay->offset[kind] + (llama_param_kinds[kind].per_layer ? (size_t)layer * llama_param_numel(c, kind) : 0);
}

static void llama_param_name(int kind, int layer, char *buf, size_t n) {
    snprintf(buf, n, llama_param_kinds[kind].hf_name, layer);
}

// Number of tensors (kind, layer) the model stores (a tied lm_head is not one), and the i-th of them in checkpoint order.
static int llama_num_tensors(const LlamaConfig *c) {
    int n = 0;
    for (int k = 0; k < NUM_PARAM_KINDS; k++) n += !llama_param_present(c, k) ? 0 : llama_param_kinds[k].per_layer ? c->n_layers : 1;
    return n;
}

static void llama_tensor_at(const LlamaConfig *c, int i, int *kind, int *layer) {
    for (int k = 0; k < NUM_PARAM_KINDS; k++) {
        int reps = !llama_param_present(c, k) ? 0 : llama_param_kinds[k].per_layer ? c->n_layers : 1;
        if (i < reps) { *kind = k; *layer = i; return; }
        i -= reps;
    }
    fail("tensor index out of range");
}

// The initial value of one tensor (docs/design.md §2): N(0, 0.02) for the matrices and the embedding, 1 for the norm
// weights. A matrix is drawn in chunks of LLAMA_INIT_CHUNK values, each from its own stream keyed by (seed,
// kind, layer, chunk), so both trainers start from the same weights and the chunks fill in parallel (OpenMP)
// with the same values for any number of threads: a 13b model is 13e9 draws, minutes on one core. The chunks also let
// a rank that keeps only part of a tensor (--shard-weights) draw only that part: llama_init_tensor_part fills elements
// [lo, hi) of p (and the rest of the chunks they fall in), and leaves the others as they are.
#define LLAMA_INIT_CHUNK 65536
static void llama_init_tensor_part(const LlamaConfig *c, float *p, int kind, int layer, uint64_t seed, size_t lo, size_t hi) {
    size_t n = llama_param_numel(c, kind);
    if (hi > n) hi = n;
    if (lo >= hi) return;
    if (!llama_param_is_matrix(kind)) {
        for (size_t j = lo; j < hi; j++) p[j] = 1.0f;
        return;
    }
    long first = (long)(lo / LLAMA_INIT_CHUNK), last = (long)((hi + LLAMA_INIT_CHUNK - 1) / LLAMA_INIT_CHUNK);
#pragma omp parallel for schedule(static)
    for (long ch = first; ch < last; ch++) {
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

static void llama_init_tensor(const LlamaConfig *c, float *p, int kind, int layer, uint64_t seed) {
    llama_init_tensor_part(c, p, kind, layer, seed, 0, llama_param_numel(c, kind));
}

// A float product or quotient rounded to float before it is used: keeps the compiler from fusing it into an FMA
// with the next operation, so that the sums below round as PyTorch's separate elementwise operations do.
static float f32_rounded(float x) {
    volatile float v = x;
    return v;
}

// The RoPE inverse frequencies [hd/2] as transformers computes them in fp32: theta^(-2i/hd), then the scaling of
// c->rope: linear divides every one by factor; llama3 divides those whose wavelength 2 pi / f exceeds
// original_max_seq / low_freq_factor by factor, keeps those below original_max_seq / high_freq_factor, and blends
// between the two in the band between.
static void llama_rope_inv_freq(const LlamaConfig *c, float *inv_freq) {
    int hd = llama_head_dim(c), half = hd / 2;
    const RopeScaling *r = &c->rope;
    for (int i = 0; i < half; i++) {
        float f = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)hd);
        if (r->type == ROPE_LINEAR) f = f / r->factor;
        if (r->type == ROPE_LLAMA3) {
            float low_wavelen = (float)((double)r->original_max_seq / r->low_freq_factor);
            float high_wavelen = (float)((double)r->original_max_seq / r->high_freq_factor);
            float wavelen = (float)(2.0 * M_PI) / f;
            float scaled = wavelen > low_wavelen ? f / r->factor : f;
            float smooth = ((float)r->original_max_seq / wavelen - r->low_freq_factor) /
                           (float)((double)r->high_freq_factor - r->low_freq_factor);
            float blend = f32_rounded(f32_rounded((1.0f - smooth) * scaled) / r->factor) + f32_rounded(smooth * scaled);
            f = !(wavelen < high_wavelen) && !(wavelen > low_wavelen) ? blend : scaled;
        }
        inv_freq[i] = f;
    }
}

// RoPE tables cos/sin [T, hd/2] as transformers computes them: fp32 angles t * inv_freq (llama_rope_inv_freq's).
// Both trainers take them from here (the GPU trainer uploads them).
static void llama_rope_tables(const LlamaConfig *c, float *cosb, float *sinb, int T) {
    int half = llama_head_dim(c) / 2;
    float *inv_freq = (float *)xmalloc(sizeof(float) * half);
    llama_rope_inv_freq(c, inv_freq);
    for (int i = 0; i < half; i++)
        for (int t = 0; t < T; t++) {
            float angle = (float)t * inv_freq[i];
            cosb[t * half + i] = cosf(angle);
            sinb[t * half + i] = sinf(angle);
        }
    free(inv_freq);
}

#endif
