/*
 * train_config.h: the training options of docs/design.md §10, shared by both trainers: defaults, the option table
 * that drives parsing and --help, checks of contradictory values, the model config they select, and the
 * learning-rate schedule and the schedule of validation, samples and checkpoints. One table, so the CPU and GPU
 * binaries accept exactly the same flags.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_TRAIN_CONFIG_H
#define GRASS_TRAIN_CONFIG_H

#include <math.h>
#include <stddef.h>
#include "common.h"
#include "llama_config.h"

#define OPT_STR_LEN 1024

typedef struct {
    // model
    char model[OPT_STR_LEN];
    int dim, layers, heads, kv_heads, ffn, vocab, max_seq;  // 0: from the preset or config.json
    // data
    char train_data[OPT_STR_LEN], val_data[OPT_STR_LEN], tokenizer[OPT_STR_LEN];
    int batch, seq;
    long long total_batch;  // tokens per optimizer step; 0: one micro-batch on every rank
    // optimization
    int steps, warmup;
    float lr, min_lr_ratio, weight_decay, grad_clip, beta1, beta2, eps;
    char optimizer[16];
    int grass_rank, grass_interval;  // grass_rank 0: the preset's rank
    float grass_alpha;
    char grass_select[16], grass_side[8];
    long long seed;
    // evaluation, sampling, checkpoints
    int eval_every, eval_batches, sample_every, sample_tokens;
    float sample_temperature;
    char out[OPT_STR_LEN], resume[OPT_STR_LEN], init[OPT_STR_LEN];
    int ckpt_every, keep_last, discard_newer;
    int eval_only, dry_run, help;
    int ranks;  // --dry-run's number of ranks to plan for (0: the processes started)
    // faults
    int skip_nonfinite;
    float comm_timeout;
    // data parallelism
    int shard_optimizer;
    float bucket_mb;
    // GPU only
    int recompute, master_weights, shard_weights;
    char state_dtype[16], comm[16], reduce_dtype[16];
    float gpu_mem_limit;
    int profile;
} TrainOptions;

enum { OPT_INT, OPT_LONG, OPT_FLOAT, OPT_STRING, OPT_FLAG };

typedef struct {
    const char *name;
    int type;
    size_t offset, size;  // of the field in TrainOptions
    int gpu_only;
    const char *choices;  // "a|b|c" for strings limited to a set, else NULL
    const char *help;
} OptionSpec;

#define OPTION(name, field, type, gpu, choices, help) \
    {name, type, offsetof(TrainOptions, field), sizeof(((TrainOptions *)0)->field), gpu, choices, help}
static const OptionSpec train_option_specs[] = {
    OPTION("--model", model, OPT_STRING, 0, NULL, "a preset (listed below) or a HF config.json; none: the config.json of --resume/--init, else 60m"),
    OPTION("--dim", dim, OPT_INT, 0, NULL, "override the model width (0: from --model)"),
    OPTION("--layers", layers, OPT_INT, 0, NULL, "override the number of layers"),
    OPTION("--heads", heads, OPT_INT, 0, NULL, "override the number of query heads"),
    OPTION("--kv-heads", kv_heads, OPT_INT, 0, NULL, "override the number of key/value heads"),
    OPTION("--ffn", ffn, OPT_INT, 0, NULL, "override the SwiGLU hidden width"),
    OPTION("--vocab", vocab, OPT_INT, 0, NULL, "override the vocabulary size"),
    OPTION("--max-seq", max_seq, OPT_INT, 0, NULL, "override the longest sequence"),
    OPTION("--train-data", train_data, OPT_STRING, 0, NULL, "glob of training token shards"),
    OPTION("--val-data", val_data, OPT_STRING, 0, NULL, "glob of validation token shards (none: no evaluation)"),
    OPTION("--tokenizer", tokenizer, OPT_STRING, 0, NULL, "SentencePiece .model or Hugging Face tokenizer.json: decodes samples, is copied into checkpoints (none: samples as ids)"),
    OPTION("--batch", batch, OPT_INT, 0, NULL, "micro-batch sequences per rank"),
    OPTION("--seq", seq, OPT_INT, 0, NULL, "sequence length"),
    OPTION("--total-batch", total_batch, OPT_LONG, 0, NULL, "tokens per optimizer step (0: batch x seq x ranks); gradient accumulation makes up the rest"),
    OPTION("--steps", steps, OPT_INT, 0, NULL, "optimizer steps"),
    OPTION("--lr", lr, OPT_FLOAT, 0, NULL, "peak learning rate"),
    OPTION("--warmup", warmup, OPT_INT, 0, NULL, "linear warmup steps"),
    OPTION("--min-lr-ratio", min_lr_ratio, OPT_FLOAT, 0, NULL, "cosine decay ends at lr x this"),
    OPTION("--weight-decay", weight_decay, OPT_FLOAT, 0, NULL, "decoupled weight decay of the matrices (not the norms)"),
    OPTION("--grad-clip", grad_clip, OPT_FLOAT, 0, NULL, "clip the global gradient norm to this (0: off)"),
    OPTION("--beta1", beta1, OPT_FLOAT, 0, NULL, "Adam beta1"),
    OPTION("--beta2", beta2, OPT_FLOAT, 0, NULL, "Adam beta2"),
    OPTION("--eps", eps, OPT_FLOAT, 0, NULL, "Adam epsilon"),
    OPTION("--optimizer", optimizer, OPT_STRING, 0, "adamw|grass", "optimizer: full-rank AdamW, or Grass on the block projections (AdamW on the rest)"),
    OPTION("--grass-rank", grass_rank, OPT_INT, 0, NULL, "rows (or columns) selected per projection matrix (0: the preset's rank, dim/4 for other models)"),
    OPTION("--grass-interval", grass_interval, OPT_INT, 0, NULL, "steps between selection refreshes (K)"),
    OPTION("--grass-select", grass_select, OPT_STRING, 0, "topr|multinorm|multinorm-nr|uniform|uniform-nr", "row selector"),
    OPTION("--grass-alpha", grass_alpha, OPT_FLOAT, 0, NULL, "scale of the Grass update"),
    OPTION("--grass-side", grass_side, OPT_STRING, 0, "auto|rows|cols", "select rows or columns (auto: the larger dimension)"),
    OPTION("--seed", seed, OPT_LONG, 0, NULL, "seed of the weight init, data order and sampling"),
    OPTION("--eval-every", eval_every, OPT_INT, 0, NULL, "validate every N steps and at the end (0: only at the end)"),
    OPTION("--eval-batches", eval_batches, OPT_INT, 0, NULL, "validation batches per evaluation, each of a step's tokens"),
    OPTION("--sample-every", sample_every, OPT_INT, 0, NULL, "print a generated sample every N steps (0: never)"),
    OPTION("--sample-tokens", sample_tokens, OPT_INT, 0, NULL, "tokens per sample"),
    OPTION("--sample-temperature", sample_temperature, OPT_FLOAT, 0, NULL, "sampling temperature (0: greedy, the most probable token)"),
    OPTION("--out", out, OPT_STRING, 0, NULL, "output directory for log.jsonl and checkpoints (none: no files)"),
    OPTION("--ckpt-every", ckpt_every, OPT_INT, 0, NULL, "checkpoint every N steps and at the end (0: only at the end, -1: never); needs --out"),
    OPTION("--resume", resume, OPT_STRING, 0, NULL, "auto (newest checkpoint in --out, if any) or a checkpoint directory"),
    OPTION("--keep-last", keep_last, OPT_INT, 0, NULL, "keep only the newest N complete checkpoints in --out (0: keep all)"),
    OPTION("--discard-newer", discard_newer, OPT_FLAG, 0, NULL, "start or resume at a step older than checkpoints in --out: delete those newer checkpoints (else refused)"),
    OPTION("--init", init, OPT_STRING, 0, NULL, "checkpoint or HF model directory to take the weights from (not the optimizer state)"),
    OPTION("--eval-only", eval_only, OPT_FLAG, 0, NULL, "load (--init or --resume), print the validation loss, exit"),
    OPTION("--dry-run", dry_run, OPT_FLAG, 0, NULL, "print the memory plan and exit"),
    OPTION("--ranks", ranks, OPT_INT, 0, NULL, "with --dry-run: plan each rank of a run on N ranks, without starting them (0: the ranks started)"),
    OPTION("--skip-nonfinite", skip_nonfinite, OPT_INT, 0, NULL, "skip up to N steps whose loss or gradient norm is not finite (no update) before stopping"),
    OPTION("--comm-timeout", comm_timeout, OPT_FLOAT, 0, NULL, "seconds a rank waits in a collective before it ends the whole job"),
    OPTION("--shard-optimizer", shard_optimizer, OPT_FLAG, 0, NULL, "ZeRO stage 1: each rank keeps and updates 1/ranks of the optimizer state (moments, master weights); gradients are reduce-scattered, updated weights all-gathered"),
    OPTION("--bucket-mb", bucket_mb, OPT_FLOAT, 0, NULL, "MiB of gradients (or weights) per collective: tensors are packed into buckets of this size"),
    OPTION("--help", help, OPT_FLAG, 0, NULL, "print this help"),
    OPTION("--recompute", recompute, OPT_INT, 1, NULL, "activation recomputation level 0|1|2"),
    OPTION("--master-weights", master_weights, OPT_INT, 1, NULL, "1: fp32 master weights; 0: bf16 weights with stochastic rounding"),
    OPTION("--state-dtype", state_dtype, OPT_STRING, 1, "fp32|bf16", "optimizer moment dtype"),
    OPTION("--gpu-mem-limit", gpu_mem_limit, OPT_FLOAT, 1, NULL, "GiB the run may use (0: the whole GPU)"),
    OPTION("--comm", comm, OPT_STRING, 1, "nccl|mpi", "transport of the data-parallel all-reduces"),
    OPTION("--shard-weights", shard_weights, OPT_FLAG, 1, NULL, "ZeRO stage 3: each rank stores 1/ranks of every weight and gradient; a layer's weights are all-gathered before its forward and its backward, its gradients reduce-scattered after its backward (implies --shard-optimizer)"),
    OPTION("--reduce-dtype", reduce_dtype, OPT_STRING, 1, "fp32|bf16", "precision in which the ranks' gradients are summed"),
    OPTION("--profile", profile, OPT_FLAG, 1, NULL, "time each kind of GPU work (CUDA events) and print where a step's time goes at the end"),
};
#undef OPTION
#define NUM_TRAIN_OPTIONS ((int)(sizeof(train_option_specs) / sizeof(train_option_specs[0])))

static void train_options_default(TrainOptions *o) {
    memset(o, 0, sizeof(*o));
    o->batch = 4;
    o->seq = 256;
    o->steps = 1000;
    o->lr = 1e-3f;
    o->warmup = 100;
    o->min_lr_ratio = 0.1f;
    o->weight_decay = 0.0f;
    o->grad_clip = 1.0f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    snprintf(o->optimizer, sizeof(o->optimizer), "adamw");
    o->grass_interval = 200;
    o->grass_alpha = 0.25f;
    snprintf(o->grass_select, sizeof(o->grass_select), "topr");  // the winner of dev/bench/grass_ablation.sh (docs/grass.md)
    snprintf(o->grass_side, sizeof(o->grass_side), "auto");
    o->seed = 1337;
    o->eval_every = 100;
    o->eval_batches = 20;
    o->sample_every = 0;
    o->sample_tokens = 64;
    o->sample_temperature = 1.0f;
    o->comm_timeout = 1800.0f;
    o->bucket_mb = 32.0f;
    o->recompute = 1;
    o->master_weights = 1;
    snprintf(o->state_dtype, sizeof(o->state_dtype), "fp32");
    snprintf(o->comm, sizeof(o->comm), "nccl");
    snprintf(o->reduce_dtype, sizeof(o->reduce_dtype), "fp32");
}

static void train_option_value_str(const OptionSpec *s, const TrainOptions *o, char *buf, size_t n) {
    const char *p = (const char *)o + s->offset;
    switch (s->type) {
        case OPT_INT: snprintf(buf, n, "%d", *(const int *)p); break;
        case OPT_LONG: snprintf(buf, n, "%lld", *(const long long *)p); break;
        case OPT_FLOAT: snprintf(buf, n, "%g", (double)*(const float *)p); break;
        case OPT_STRING: snprintf(buf, n, "%s", *p ? p : "(none)"); break;
        default: snprintf(buf, n, "off"); break;
    }
}

static void train_options_help(const char *prog, int is_gpu) {
    TrainOptions d;
    train_options_default(&d);
    printf("usage: %s [options]\n\n%s LLaMA pretraining with the Grass or AdamW optimizer. Every option is --name VALUE\n"
           "(or --name=VALUE); defaults in brackets.\n\n",
           prog, is_gpu ? "GPU (CUDA)" : "CPU reference (fp32, OpenMP)");
    for (int i = 0; i < NUM_TRAIN_OPTIONS; i++) {
        const OptionSpec *s = &train_option_specs[i];
        if (s->gpu_only && !is_gpu) continue;
        char val[64], left[96];
        train_option_value_str(s, &d, val, sizeof(val));
        snprintf(left, sizeof(left), "%s%s%s", s->name, s->type == OPT_FLAG ? "" : " ", s->type == OPT_FLAG ? "" : (s->choices ? s->choices : s->type == OPT_STRING ? "S" : "N"));
        if (s->type == OPT_FLAG) printf("  %-26s %s\n", left, s->help);
        else printf("  %-26s %s [%s]\n", left, s->help, val);
    }
    printf("\nModel presets (--model): %s.\n", llama_preset_names());
    if (!is_gpu) printf("\nGPU-only options (--recompute, --master-weights, --state-dtype, --gpu-mem-limit, --comm, --reduce-dtype, --profile) belong to train_llama.\n");
}

static void train_option_set(const OptionSpec *s, TrainOptions *o, const char *value) {
    char *p = (char *)o + s->offset;
    char *end = NULL;
    errno = 0;
    switch (s->type) {
        case OPT_INT: case OPT_LONG: {
            long long v = strtoll(value, &end, 10);
            if (!*value || *end || errno || (s->type == OPT_INT && (v < -2147483647LL || v > 2147483647LL)))
                fail("%s expects an integer, got '%s'", s->name, value);
            int never = s->offset == offsetof(TrainOptions, ckpt_every) && v == -1;  // the one negative value taken
            if (v < 0 && !never)
                fail(s->offset == offsetof(TrainOptions, ckpt_every) ? "%s must be -1 (never), 0 (only at the end) or a number of steps, got %s"
                                                                     : "%s must not be negative, got %s", s->name, value);
            if (s->type == OPT_INT) *(int *)p = (int)v; else *(long long *)p = v;
            break;
        }
        case OPT_FLOAT: {
            float v = strtof(value, &end);
            if (!*value || *end || errno || !isfinite(v)) fail("%s expects a number, got '%s'", s->name, value);
            if (v < 0) fail("%s must not be negative, got %s", s->name, value);
            *(float *)p = v;
            break;
        }
        case OPT_STRING: {
            size_t cap = s->size;
            if (strlen(value) >= cap) fail("%s value is too long (at most %zu characters)", s->name, cap - 1);
            if (s->choices) {
                int ok = 0;
                const char *c = s->choices;
                size_t len = strlen(value);
                while (*c) {
                    const char *bar = strchr(c, '|');
                    size_t clen = bar ? (size_t)(bar - c) : strlen(c);
                    if (clen == len && !strncmp(c, value, len)) ok = 1;
                    c += clen + (bar ? 1 : 0);
                }
                if (!ok) fail("%s must be one of %s, got '%s'", s->name, s->choices, value);
            }
            snprintf(p, cap, "%s", value);
            break;
        }
        default: break;
    }
}

// Parses argv into o (which holds the defaults). Unknown, malformed, valueless or wrong-binary options fail.
static void train_options_parse(TrainOptions *o, int argc, char **argv, int is_gpu) {
    const char *names[NUM_TRAIN_OPTIONS];  // for the suggestion after a mistyped option
    for (int k = 0; k < NUM_TRAIN_OPTIONS; k++) names[k] = train_option_specs[k].name;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strncmp(arg, "--", 2)) {
            const char *near = arg[0] == '-' ? option_nearest(arg, nlen, names, NUM_TRAIN_OPTIONS) : NULL;
            if (near) fail("unexpected argument '%s' (did you mean %s? options are --name VALUE)", arg, near);
            fail("unexpected argument '%s' (options are --name VALUE; see --help)", arg);
        }
        const OptionSpec *s = NULL;
        for (int k = 0; k < NUM_TRAIN_OPTIONS; k++)
            if (strlen(train_option_specs[k].name) == nlen && !strncmp(train_option_specs[k].name, arg, nlen)) s = &train_option_specs[k];
        if (!s) {
            const char *near = option_nearest(arg, nlen, names, NUM_TRAIN_OPTIONS);
            if (near) fail("unknown option %.*s (did you mean %s? see --help)", (int)nlen, arg, near);
            fail("unknown option %.*s (see --help)", (int)nlen, arg);
        }
        if (s->gpu_only && !is_gpu) fail("%s is an option of the GPU trainer train_llama, not of %s", s->name, argv[0]);
        if (s->type == OPT_FLAG) {
            if (eq) fail("%s takes no value", s->name);
            *(int *)((char *)o + s->offset) = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) fail("%s needs a value", s->name);
        train_option_set(s, o, value);
    }
}

// Checks the option combinations that cannot work together (sizes that depend on the model are checked by
// train_options_check_model).
static void train_options_check(const TrainOptions *o) {
    if (o->batch < 1) fail("--batch must be at least 1");
    if (o->seq < 1) fail("--seq must be at least 1");
    if ((long long)o->batch * o->seq > INT_MAX)
        fail("--batch %d x --seq %d = %lld tokens is more than a micro-batch may hold (%d)", o->batch, o->seq,
             (long long)o->batch * o->seq, INT_MAX);
    if (o->steps < 1 && !o->eval_only && !o->dry_run) fail("--steps must be at least 1");
    if (!(o->lr > 0)) fail("--lr must be positive");
    if (o->min_lr_ratio > 1) fail("--min-lr-ratio must be between 0 and 1, got %g", (double)o->min_lr_ratio);
    if (o->beta1 >= 1 || o->beta2 >= 1) fail("--beta1 and --beta2 must be below 1");
    if (!(o->eps > 0)) fail("--eps must be positive");
    if (o->eval_batches < 1) fail("--eval-batches must be at least 1");
    if (o->sample_every && o->sample_tokens < 1) fail("--sample-tokens must be at least 1 when --sample-every is set");
    if (!(o->sample_temperature >= 0.0f)) fail("--sample-temperature must be 0 (greedy) or positive");
    if (o->sample_tokens > LLAMA_MAX_SIZE) fail("--sample-tokens %d is above the largest supported, %d", o->sample_tokens, LLAMA_MAX_SIZE);
    if (o->init[0] && o->resume[0]) fail("--init and --resume exclude each other: --init loads weights only, --resume continues a run");
    if (o->eval_only && o->dry_run) fail("--eval-only and --dry-run exclude each other");
    if (o->ranks && !o->dry_run) fail("--ranks goes with --dry-run only: a run's ranks are the processes mpirun starts");
    if (o->ranks < 0 || o->ranks > LLAMA_MAX_COUNT) fail("--ranks %d: expected 1 to %d (0: the ranks started)", o->ranks, LLAMA_MAX_COUNT);
    if (o->eval_only && !o->init[0] && !o->resume[0]) fail("--eval-only needs the weights to evaluate: give --init DIR or --resume DIR");
    if (o->eval_only && !o->val_data[0]) fail("--eval-only needs --val-data");
    if (!o->eval_only && !o->dry_run && !o->train_data[0])
        fail("--train-data is required (a glob of token shards; README shows how to make them)");
    if (o->ckpt_every > 0 && !o->out[0]) fail("--ckpt-every needs --out DIR to write checkpoints into");
    if (!strcmp(o->resume, "auto") && !o->out[0]) fail("--resume auto looks for checkpoints in --out, which is not set");
    if (o->resume[0] && strcmp(o->resume, "auto") && !path_is_dir(o->resume))
        fail("--resume %s: no such checkpoint directory (give a directory or 'auto')", o->resume);
    if (o->init[0] && !path_is_dir(o->init)) fail("--init %s: no such directory", o->init);
    if (o->tokenizer[0] && !o->dry_run) option_file_check("--tokenizer", o->tokenizer);
    if (o->grass_interval < 1) fail("--grass-interval must be at least 1");
    if (!(o->grass_alpha > 0)) fail("--grass-alpha must be positive");
    if (strcmp(o->optimizer, "grass") && (o->grass_rank || o->grass_interval != 200 || o->grass_alpha != 0.25f ||
                                          strcmp(o->grass_select, "topr") || strcmp(o->grass_side, "auto")))
        fail("--grass-* options need --optimizer grass");
    if (o->recompute > 2) fail("--recompute must be 0, 1 or 2");
    if (o->master_weights > 1) fail("--master-weights must be 0 or 1");
    if (!(o->comm_timeout >= 1)) fail("--comm-timeout must be at least 1 second, got %g", (double)o->comm_timeout);
    if (!(o->bucket_mb >= 0.001f && o->bucket_mb <= 65536.0f)) fail("--bucket-mb must be between 0.001 and 65536 (MiB), got %g", (double)o->bucket_mb);
    if (o->keep_last && !o->out[0]) fail("--keep-last needs --out DIR, where the checkpoints are");
}

// The schedule of both training loops: what follows optimizer step `done` (1-based), in this order: the validation
// loss, a sample, a checkpoint. One definition, so that the CPU and GPU trainers log, print and save at the same steps.

// Whether the validation loss (with --val-data) is logged once `done` steps are taken, in a run that began at step
// `start` (0, or the step of the checkpoint it resumed): before the first step of a fresh run (done == start == 0),
// every --eval-every steps and after the last step. A resumed run does not validate before its first step: the run
// that saved its checkpoint validated the steps up to it on this schedule.
static int schedule_eval_due(const TrainOptions *o, int done, int start) {
    if (done == start) return start == 0;
    return (o->eval_every > 0 && done % o->eval_every == 0) || done == o->steps;
}

// Whether rank 0 prints a sample after step `done`: every --sample-every steps and after the last step.
static int schedule_sample_due(const TrainOptions *o, int done) {
    return o->sample_every > 0 && (done % o->sample_every == 0 || done == o->steps);
}

// Whether a checkpoint is written after step `done`: every --ckpt-every steps and after the last step, into --out.
static int schedule_ckpt_due(const TrainOptions *o, int done) {
    if (!o->out[0] || o->ckpt_every < 0) return 0;
    return (o->ckpt_every > 0 && done % o->ckpt_every == 0) || done == o->steps;
}

// The model config the options select: --model (a preset or a config.json); without --model the
// config.json of `ckpt_dir` (the --resume/--init directory, or NULL), else the 60m preset; then the size
// overrides. Returns the Grass rank: --grass-rank, else the preset's, else dim/4.
static int train_options_model(const TrainOptions *o, const char *ckpt_dir, LlamaConfig *c) {
    char path[4096];
    const char *name = o->model[0] ? o->model : "60m";
    const LlamaPreset *preset = NULL;
    if (!o->model[0] && ckpt_dir) {
        path_format(path, sizeof(path), "%s/config.json", ckpt_dir);
        if (!path_exists(path)) fail("%s has no config.json; name the model with --model", ckpt_dir);
        llama_config_read_json(c, path);
    } else if ((preset = llama_preset_find(name))) {
        *c = preset->cfg;
    } else {
        size_t n = strlen(name);
        if (n < 5 || strcmp(name + n - 5, ".json"))
            fail("--model %s is neither a preset (%s) nor a config.json file", name, llama_preset_names());
        llama_config_read_json(c, name);
    }
    if (o->dim) c->dim = o->dim;
    if (o->layers) c->n_layers = o->layers;
    if (o->heads) { c->n_heads = o->heads; if (!o->kv_heads) c->n_kv_heads = o->heads; }
    if (o->kv_heads) c->n_kv_heads = o->kv_heads;
    if (o->ffn) c->ffn_dim = o->ffn;
    if (o->vocab) c->vocab_size = o->vocab;
    if (o->max_seq) c->max_seq = o->max_seq;
    llama_config_validate(c, "the model sizes (--model and overrides)");
    if (o->seq > c->max_seq) fail("--seq %d is longer than the model's max-seq %d (raise --max-seq)", o->seq, c->max_seq);
    if (o->grass_rank) return o->grass_rank;
    return preset ? preset->grass_rank : (c->dim / 4 > 0 ? c->dim / 4 : 1);
}

// Micro-batches per optimizer step so that B*T*world*accum == total_batch.
// The count must be at least 1 and fit an int; batch x seq x ranks fits a long long (batch x seq fits an int,
// train_options_check).
static int train_options_grad_accum(const TrainOptions *o, int world) {
    long long per_micro = (long long)o->batch * o->seq * world;
    if (!o->total_batch) return 1;
    if (o->total_batch < per_micro)
        fail("--total-batch %lld is less than one micro-batch: batch %d x seq %d x ranks %d = %lld", o->total_batch,
             o->batch, o->seq, world, per_micro);
    if (o->total_batch % per_micro)
        fail("--total-batch %lld is not a multiple of batch %d x seq %d x ranks %d = %lld", o->total_batch, o->batch,
             o->seq, world, per_micro);
    if (o->total_batch / per_micro > INT_MAX)
        fail("--total-batch %lld needs %lld micro-batches of batch %d x seq %d x ranks %d; at most %d are supported",
             o->total_batch, o->total_batch / per_micro, o->batch, o->seq, world, INT_MAX);
    return (int)(o->total_batch / per_micro);
}

// Learning rate at step s (0-based): linear warmup to lr over `warmup` steps, then cosine decay to
// lr * min_lr_ratio at the last step.
static float lr_at_step(const TrainOptions *o, int s) {
    if (s < o->warmup) return o->lr * (float)(s + 1) / (float)o->warmup;
    double progress = (double)(s - o->warmup) / (double)(o->steps - o->warmup > 1 ? o->steps - o->warmup : 1);
    double lr_min = (double)o->lr * o->min_lr_ratio;
    return (float)(lr_min + 0.5 * ((double)o->lr - lr_min) * (1.0 + cos(M_PI * progress)));
}

#endif
