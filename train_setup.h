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

// The start of both trainers: MPI (only rank 0 prints), the options, --help. Returns 0 when the run is over
// (--help printed), 1 to go on.
static int train_setup_start(Comm *comm, TrainOptions *opt, int *argc, char ***argv, int is_gpu) {
    comm_init(comm, argc, argv);
    if (comm->rank != 0 && !freopen("/dev/null", "w", stdout)) fail("cannot silence rank %d's output", comm->rank);
    train_options_default(opt);
    train_options_parse(opt, *argc, *argv, is_gpu);
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
} TrainSetup;

// Resolves --resume (auto: the newest checkpoint in --out, if any) and --init, the model config, and checks
// that a model named with --model is the checkpoint's.
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
    if (!s->weights_dir || !opt->model[0]) return;
    char path[CKPT_PATH_LEN + 32], a[256], b[256];
    path_format(path, sizeof(path), "%s/config.json", s->weights_dir);
    if (!path_exists(path)) return;
    LlamaConfig ck;
    llama_config_read_json(&ck, path);
    if (!llama_config_equal(&ck, &s->cfg)) {
        llama_config_describe(&ck, a, sizeof(a));
        llama_config_describe(&s->cfg, b, sizeof(b));
        fail("%s holds a model with %s, but the options give %s", path, a, b);
    }
}

// The data of a run: the tokenizer for samples (with --tokenizer), the validation shards (with --val-data,
// in file order, --eval-batches capped at what they hold) and, unless --eval-only, the training shards
// (shuffled by --seed).
typedef struct {
    Tokenizer tok;
    int have_tok, have_val, have_train;
    DataLoader train, val;
} TrainData;

static void train_data_open(TrainData *d, TrainOptions *opt, const LlamaConfig *c, int rank, int world) {
    memset(d, 0, sizeof(*d));
    if (opt->tokenizer[0]) {
        tokenizer_load(&d->tok, opt->tokenizer);
        d->have_tok = 1;
        if (d->tok.vocab_size > c->vocab_size)
            fail("--tokenizer %s has %d pieces, more than the model's vocabulary of %d", opt->tokenizer, d->tok.vocab_size,
                 c->vocab_size);
    }
    if (opt->val_data[0]) {
        dataloader_init(&d->val, opt->val_data, "--val-data", opt->batch, opt->seq, rank, world, c->vocab_size, 0, 0);
        d->have_val = 1;
        size_t avail = dataloader_num_batches(&d->val);
        if ((size_t)opt->eval_batches > avail) {
            printf("val: --eval-batches %d but the validation shards hold %zu batches; using %zu\n", opt->eval_batches, avail, avail);
            opt->eval_batches = (int)avail;
        }
    }
    if (!opt->eval_only) {
        dataloader_init(&d->train, opt->train_data, "--train-data", opt->batch, opt->seq, rank, world, c->vocab_size, 1,
                        (uint64_t)opt->seed);
        d->have_train = 1;
    }
}

static void train_data_close(TrainData *d) {
    if (d->have_tok) tokenizer_free(&d->tok);
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
    logger_init(log, rank == 0 ? opt->out : NULL, start > 0);
}

// Sampling (temperature 1): the next token drawn from softmax(logits [V]).
static int sample_next(const float *logits, int V, Rng *r) {
    float mx = -INFINITY;
    double sum = 0.0, cdf = 0.0;
    for (int v = 0; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < V; v++) sum += exp((double)logits[v] - mx);
    double u = rng_uniform(r) * sum;
    for (int v = 0; v < V; v++) {
        cdf += exp((double)logits[v] - mx);
        if (u < cdf) return v;
    }
    return V - 1;
}

// The stream a sample at `step` draws from, and its first token (BOS).
static int sample_start(Rng *r, const Tokenizer *tok, uint64_t seed, int step) {
    rng_init(r, seed, 0x5A3B, (uint64_t)step, 0);
    return tok && tok->bos_id >= 0 ? tok->bos_id : 1;
}

// Prints a sample: decoded with a tokenizer, else as ids.
static void sample_report(const Tokenizer *tok, const int *ids, int n, int step) {
    printf("sample (step %d):", step);
    if (tok) {
        char *text = tokenizer_decode(tok, ids, n, NULL);
        printf("\n%s\n", text);
        free(text);
    } else {
        for (int i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
    }
    fflush(stdout);
}

#endif
