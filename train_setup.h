/*
 * train_setup.h: the set-up both trainers share before their loops: MPI and the options, where the weights
 * come from (a checkpoint to resume, --init, or a fresh init) and the model config that goes with them, the
 * tokenizer for samples, the validation data, and the sampling of text. Plain C that also compiles as C++.
 */
#ifndef GRASS_TRAIN_SETUP_H
#define GRASS_TRAIN_SETUP_H

#include "checkpoint.h"
#include "comm.h"
#include "dataloader.h"
#include "logger.h"
#include "llama_config.h"
#include "tokenizer/tokenizer.h"
#include "train_config.h"
#include "train_guard.h"

// The ranks of the run, kept by train_setup_start for the later steps of the set-up, which compare what each
// rank resolved (the model, the data) with rank 0's.
static const Comm *train_setup_comm = &comm_solo;

// One option's value as text, exact (floats to 9 digits), for comparing the ranks' options.
static void train_option_value_exact(const OptionSpec *s, const TrainOptions *o, char *buf, size_t n) {
    const char *p = (const char *)o + s->offset;
    if (s->type == OPT_FLOAT) snprintf(buf, n, "%.9g", (double)*(const float *)p);
    else if (s->type == OPT_FLAG) snprintf(buf, n, "%s", *(const int *)p ? "given" : "not given");
    else train_option_value_str(s, o, buf, n);
}

// Refuses a run whose ranks were started with different options (or trainers), naming the first differing
// option with rank 0's value and the other rank's. No option may differ between the ranks: each one sizes
// the collectives (the model, batch, steps, schedule, evaluation, checkpoints), seeds what must match (the
// init, the data order), or names files that every rank reads (the data, --init, --resume and --out, where
// --resume auto looks); a rank on other values would hang in an all-reduce or crash.
static void train_options_agree(const Comm *c, const TrainOptions *o, int is_gpu) {
    if (c->world == 1) return;
    const char *names[NUM_TRAIN_OPTIONS + 1], *values[NUM_TRAIN_OPTIONS + 1];
    char *text = (char *)xmalloc((size_t)NUM_TRAIN_OPTIONS * (OPT_STR_LEN + 16));
    names[0] = "the trainer";
    values[0] = is_gpu ? "train_llama" : "train_llama_cpu";
    for (int i = 0; i < NUM_TRAIN_OPTIONS; i++) {
        char *v = text + (size_t)i * (OPT_STR_LEN + 16);
        train_option_value_exact(&train_option_specs[i], o, v, OPT_STR_LEN + 16);
        names[i + 1] = train_option_specs[i].name;
        values[i + 1] = v;
    }
    comm_agree(c, "the options", NUM_TRAIN_OPTIONS + 1, names, values, " (every rank must be given the same options)");
    free(text);
}

// The start of both trainers: MPI (only rank 0 prints), the options (the same on every rank), --help.
// Returns 0 when the run is over (--help printed), 1 to go on.
static int train_setup_start(Comm *comm, TrainOptions *opt, int *argc, char ***argv, int is_gpu) {
    comm_init(comm, argc, argv);
    if (comm->rank != 0 && !freopen("/dev/null", "w", stdout)) fail("cannot silence rank %d's output", comm->rank);
    train_options_default(opt);
    train_options_parse(opt, *argc, *argv, is_gpu);
    comm->timeout = opt->comm_timeout;
    train_setup_comm = comm;
    train_options_agree(comm, opt, is_gpu);
    if (opt->help) {
        train_options_help((*argv)[0], is_gpu);
        comm_finalize(comm);
        return 0;
    }
    train_options_check(opt);
    return 1;
}

typedef struct {
    char resume_dir[CKPT_PATH_LEN];  // the checkpoint to continue, or ""
    const char *weights_dir;         // where the weights come from: resume_dir, --init, or NULL (fresh init)
    LlamaConfig cfg;
    int grass_rank;
    Tokenizer tok;                   // --tokenizer's, loaded once (not for --dry-run): samples, a new model's BOS/EOS
    int have_tok;
} TrainSetup;

// Refuses a run whose ranks resolved the options to different weights or model configs (a config.json or
// --out that differs between the nodes), naming the first differing field with rank 0's value and the other's.
static void train_setup_agree(const Comm *c, const TrainSetup *s) {
    enum { N = LLAMA_CONFIG_FIELDS + 2 };
    const char *names[N], *values[N];
    char v[N][32], weights[CKPT_PATH_LEN + 32];
    llama_config_fields(&s->cfg, names, v);
    snprintf(weights, sizeof(weights), "%s", s->weights_dir ? s->weights_dir : "(a fresh init)");
    snprintf(v[LLAMA_CONFIG_FIELDS], sizeof(v[0]), "%d", s->grass_rank);
    names[LLAMA_CONFIG_FIELDS] = "the Grass rank";
    names[LLAMA_CONFIG_FIELDS + 1] = "the weights";
    for (int i = 0; i <= LLAMA_CONFIG_FIELDS; i++) values[i] = v[i];
    values[LLAMA_CONFIG_FIELDS + 1] = weights;
    comm_agree(c, "the models", N, names, values, "");
}

// Before a training run looks at --out: the stop signals (train_guard.h), and rank 0's lock on --out, taken before
// --resume auto picks a checkpoint there, so that a second run into the same --out is refused at once.
static void train_setup_guard(const Comm *comm, const TrainOptions *opt) {
    if (opt->dry_run || opt->eval_only) return;
    guard_install();
    if (opt->out[0] && comm->rank == 0) out_dir_lock(opt->out);
}

// Resolves --resume (auto: the newest checkpoint in --out, if any) and --init, the model config (the same on
// every rank), and checks that a model named with --model is the checkpoint's.
static void train_setup_model(TrainSetup *s, const TrainOptions *opt) {
    s->resume_dir[0] = '\0';
    if (!strcmp(opt->resume, "auto")) {
        if (checkpoint_find_latest(opt->out, s->resume_dir, sizeof(s->resume_dir)) < 0)
            printf("resume: no checkpoint in %s yet, starting from scratch\n", opt->out);
    } else if (opt->resume[0]) {
        path_format(s->resume_dir, sizeof(s->resume_dir), "%s", opt->resume);
    }
    s->weights_dir = s->resume_dir[0] ? s->resume_dir : opt->init[0] ? opt->init : NULL;
    s->grass_rank = train_options_model(opt, s->weights_dir, &s->cfg);
    s->have_tok = opt->tokenizer[0] && !opt->dry_run;
    if (s->have_tok) {
        tokenizer_load(&s->tok, opt->tokenizer);
        if (s->tok.vocab_size > s->cfg.vocab_size)
            fail("--tokenizer %s has %d pieces, more than the model's vocabulary of %d", opt->tokenizer, s->tok.vocab_size,
                 s->cfg.vocab_size);
    }
    if (s->have_tok && !s->weights_dir) {  // a new model's special tokens are its tokenizer's
        s->cfg.bos_id = s->tok.bos_id;
        s->cfg.n_eos = s->tok.eos_id >= 0;
        s->cfg.eos_list = 0;
        s->cfg.eos_ids[0] = s->tok.eos_id;
    }
    train_setup_agree(train_setup_comm, s);
    if (!s->weights_dir || !opt->model[0]) return;
    char path[CKPT_PATH_LEN + 32], diff[1024];
    path_format(path, sizeof(path), "%s/config.json", s->weights_dir);
    if (!path_exists(path)) return;
    LlamaConfig ck;
    llama_config_read_json(&ck, path);
    if (!llama_config_diff(&ck, &s->cfg, diff, sizeof(diff)))
        fail("%s is not the model --model %s%s gives: %s (checkpoint vs options); leave out --model to take the checkpoint's "
             "config", path, opt->model, opt->dim || opt->layers || opt->heads || opt->kv_heads || opt->ffn || opt->vocab ||
             opt->max_seq ? " with the size flags" : "", diff);
}

static void train_setup_close(TrainSetup *s) {
    if (s->have_tok) tokenizer_free(&s->tok);
}

// The data of a run: the validation shards (with --val-data, in file order, --eval-batches capped at what they hold)
// and, unless --eval-only, the training shards (shuffled by --seed).
typedef struct {
    int have_val, have_train;
    DataLoader train, val;
} TrainData;

// Refuses a run whose ranks found different shards for the glob `pattern` of `flag` (other files, or files of
// other sizes: each rank reads its part of every window of the same shards), naming the first difference.
static void train_data_agree(const Comm *c, const DataLoader *dl, const char *flag, const char *pattern) {
    if (c->world == 1) return;
    int n = dl->nshards + 1;
    const char **names = (const char **)xmalloc(sizeof(char *) * n), **values = (const char **)xmalloc(sizeof(char *) * n);
    char *text = (char *)xmalloc((size_t)n * 2 * (OPT_STR_LEN + 128));
    for (int i = 0; i < n; i++) {
        char *name = text + (size_t)i * 2 * (OPT_STR_LEN + 128), *value = name + OPT_STR_LEN + 128;
        if (i == 0) {
            snprintf(name, OPT_STR_LEN + 128, "%s %s, the number of files", flag, pattern);
            snprintf(value, OPT_STR_LEN + 128, "%d", dl->nshards);
        } else {
            const Shard *s = &dl->shards[i - 1];
            snprintf(name, OPT_STR_LEN + 128, "%s %s, file %d", flag, pattern, i);
            snprintf(value, OPT_STR_LEN + 128, "%s (%zu tokens of %d bytes, %zu bytes)", s->path, s->ntok, s->tok_bytes,
                     SHARD_HEADER_INTS * 4 + s->ntok * (size_t)s->tok_bytes);
        }
        names[i] = name;
        values[i] = value;
    }
    comm_agree(c, "the data", n, names, values, "");
    free(text);
    free(names);
    free(values);
}

static void train_data_open(TrainData *d, TrainOptions *opt, const LlamaConfig *c, int rank, int world) {
    memset(d, 0, sizeof(*d));
    if (opt->val_data[0]) {
        dataloader_init(&d->val, opt->val_data, "--val-data", opt->batch, opt->seq, rank, world,
                        train_options_grad_accum(opt, world), c->vocab_size, 0, 0);
        d->have_val = 1;
        size_t avail = dataloader_num_batches(&d->val);
        if ((size_t)opt->eval_batches > avail) {
            printf("val: --eval-batches %d but the validation shards hold %zu batches; using %zu\n", opt->eval_batches, avail, avail);
            opt->eval_batches = (int)avail;
        }
    }
    if (!opt->eval_only) {
        dataloader_init(&d->train, opt->train_data, "--train-data", opt->batch, opt->seq, rank, world,
                        train_options_grad_accum(opt, world), c->vocab_size, 1, (uint64_t)opt->seed);
        d->have_train = 1;
    }
    if (d->have_val) train_data_agree(train_setup_comm, &d->val, "--val-data", opt->val_data);
    if (d->have_train) train_data_agree(train_setup_comm, &d->train, "--train-data", opt->train_data);
}

static void train_data_close(TrainData *d) {
    if (d->have_train) dataloader_free(&d->train);
    if (d->have_val) dataloader_free(&d->val);
}

// After the trainer state is restored (start: its step, 0 for a fresh run): reports a resume, refuses one
// with nothing left to do, and opens --out and its log.jsonl (rank 0; appending when resuming).
static void train_log_open(Logger *log, const TrainOptions *opt, const TrainSetup *s, int rank, int start) {
    if (s->resume_dir[0]) {
        printf("resume: %s at step %d\n", s->resume_dir, start);
        if (start >= opt->steps) fail("%s is at step %d; --steps %d leaves nothing to do", s->resume_dir, start, opt->steps);
    }
    if (opt->out[0]) mkdir_p(opt->out);
    if (opt->out[0] && rank == 0) checkpoint_check_branch(opt->out, start, opt->discard_newer);
    logger_init(log, rank == 0 ? opt->out : NULL, start > 0);
}

// The next token of a sample: drawn from softmax(logits [V] / temperature), or with temperature 0 the most probable
// (the lowest id among equals, as torch.argmax and transformers' greedy generate take it).
static int sample_next(const float *logits, int V, float temperature, Rng *r) {
    int best = 0;
    for (int v = 1; v < V; v++) best = logits[v] > logits[best] ? v : best;
    if (temperature == 0.0f) return best;
    double mx = logits[best], sum = 0.0, cdf = 0.0;
    for (int v = 0; v < V; v++) sum += exp(((double)logits[v] - mx) / temperature);
    double u = rng_uniform(r) * sum;
    for (int v = 0; v < V; v++) {
        cdf += exp(((double)logits[v] - mx) / temperature);
        if (u < cdf) return v;
    }
    return V - 1;
}

// The stream a sample at `step` draws from, and its first token: the tokenizer's BOS, else config.json's, else 0.
static int sample_start(Rng *r, const Tokenizer *tok, const LlamaConfig *c, uint64_t seed, int step) {
    rng_init(r, seed, RNG_STREAM_SAMPLE, (uint64_t)step, 0);
    return tok && tok->bos_id >= 0 ? tok->bos_id : c->bos_id >= 0 ? c->bos_id : 0;
}

// Prints a sample: its ids, then the text with a tokenizer.
static void sample_report(const Tokenizer *tok, const int *ids, int n, int step) {
    printf("sample (step %d):", step);
    for (int i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
    if (tok) {
        char *text = tokenizer_decode(tok, ids, n, NULL);
        printf("%s\n", text);
        free(text);
    }
    fflush(stdout);
}

#endif
