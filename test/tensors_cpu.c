/*
 * tensors_cpu.c: the CPU trainer's tensors of one batch, which test/test_tensors.cu compares the GPU model
 * with tensor by tensor (as llm.c's test_gpt2.cu does with PyTorch's). It includes train_llama.c, as
 * test_reference.c does, so the numbers are the CPU trainer's own.
 *
 *   tensors_cpu TRAINER_OPTIONS... --out DIR
 *
 * The model the options give (--model, the size overrides) with its initial weights for --seed, and one batch
 * of --batch x --seq random tokens (N = batch x seq). DIR gets the weights as a checkpoint (model.safetensors,
 * config.json), which the GPU test loads, and tensors.safetensors:
 *   tokens [N + 1] (I32)   inputs tokens[0..N), targets tokens[1..N]
 *   logits [N, V]          lm_head output
 *   loss [1]               the mean of the N token losses
 *   grad.NAME              every parameter's full gradient (as AdamW takes it) of that mean loss
 * and with --optimizer grass (--grass-interval 2 or more), for every projection NAME, the refresh of step 0 and
 * the compressed gradient of step 1 (no refresh; the same weights and batch):
 *   grass.sigma.NAME [r] (I32), grass.rho.NAME [r]   the selection of the refresh
 *   grass.norms.NAME [D]   the squared row (or column) norms of the full gradient it selected from
 *   grass.refresh.NAME [r, E]   g after the refresh: the selected rows of the full gradient, scaled
 *   grass.g.NAME [r, E]    g of step 1: the compressed gradient computed from the selection
 */
#define TESTING
#include "../train_llama.c"

#define MAX_OUT 512

typedef struct {
    int n;
    StTensorOut t[MAX_OUT];
    char names[MAX_OUT][160];
} OutList;

static void out_add(OutList *o, const char *prefix, const char *name, const char *dtype, size_t d0, size_t d1, const void *data) {
    if (o->n == MAX_OUT) fail("internal: more than %d tensors", MAX_OUT);
    snprintf(o->names[o->n], sizeof(o->names[0]), "%s%s", prefix, name);
    o->t[o->n] = (StTensorOut){o->names[o->n], dtype, d1 ? 2 : 1, {d0, d1}, data};
    o->n++;
}

int main(int argc, char **argv) {
    TrainOptions opt;
    train_options_default(&opt);
    train_options_parse(&opt, argc, argv, 0);
    if (!opt.out[0]) fail("usage: %s TRAINER_OPTIONS... --out DIR", argv[0]);
    LlamaConfig cfg;
    int grass_rank = train_options_model(&opt, NULL, &cfg);
    int grass = !strcmp(opt.optimizer, "grass");
    if (grass && opt.grass_interval < 2) fail("--grass-interval must be 2 or more: step 1 must not refresh");
    int B = opt.batch, T = opt.seq, N = B * T, V = cfg.vocab_size;

    // the full gradients: the AdamW model
    TrainOptions adamw = opt;
    snprintf(adamw.optimizer, sizeof(adamw.optimizer), "adamw");
    Llama f;
    llama_alloc(&f, &cfg, B, T, &adamw, 0, 1);
    llama_init_weights(&f, (uint64_t)opt.seed);
    mkdir_p(opt.out);
    SaveGuard guard = {0, "(none)"};
    checkpoint_write_model(opt.out, &cfg, f.params, "F32", NULL, &guard);
    int *tokens = (int *)xmalloc(sizeof(int) * (N + 1));
    Rng r;
    rng_init(&r, (uint64_t)opt.seed, 0x7E57, 0, 0);
    for (int i = 0; i <= N; i++) tokens[i] = (int)rng_below(&r, (uint64_t)V);
    llama_zero_grads(&f, 0);
    float loss = llama_forward(&f, tokens, tokens + 1, B, T);
    float *logits = (float *)xmalloc(sizeof(float) * N * V);  // llama_forward leaves probabilities in a.logits
    matmul_forward(logits, f.a.lnf, llama_param(&f, f.params, PARAM_LM_HEAD, 0), N, cfg.dim, V);
    llama_backward(&f, tokens, tokens + 1, B, T, 1.0f / N);

    static OutList out;
    out_add(&out, "", "tokens", "I32", (size_t)N + 1, 0, tokens);
    out_add(&out, "", "logits", "F32", (size_t)N, (size_t)V, logits);
    out_add(&out, "", "loss", "F32", 1, 0, &loss);
    char name[128];
    for (int i = 0; i < llama_num_tensors(&cfg); i++) {
        int kind, layer;
        size_t rows, cols;
        llama_tensor_at(&cfg, i, &kind, &layer);
        llama_param_name(kind, layer, name, sizeof(name));
        llama_param_shape(&cfg, kind, &rows, &cols);
        out_add(&out, "grad.", name, "F32", rows, cols == 1 ? 0 : cols, llama_grad(&f, kind, layer));
    }

    Llama m;  // Grass on the same weights and batch: a refresh (step 0), then a compressed gradient (step 1)
    float *refresh_g = NULL, *norms = NULL;
    if (grass) {
        llama_alloc(&m, &cfg, B, T, &opt, grass_rank, 1);
        memcpy(m.params, f.params, sizeof(float) * f.lay.count);
        GrassPlan *gp = &m.grass.p;
        for (int step = 0; step < 2; step++) {
            llama_zero_grads(&m, step);
            llama_forward(&m, tokens, tokens + 1, B, T);
            llama_backward(&m, tokens, tokens + 1, B, T, 1.0f / N);
            if (step == 0) {
                refresh_g = (float *)xmalloc(sizeof(float) * gp->nstate);
                memcpy(refresh_g, m.grass.g, sizeof(float) * gp->nstate);
            }
        }
        size_t nnorms = 0;  // [sum of D over the projections]
        for (int i = 0; i < llama_num_tensors(&cfg); i++) {
            int kind, layer;
            llama_tensor_at(&cfg, i, &kind, &layer);
            if (llama_param_kinds[kind].is_projection) nnorms += gp->shape[kind].D;
        }
        norms = (float *)xmalloc(sizeof(float) * nnorms);
        double *dnorms = (double *)xmalloc(sizeof(double) * nnorms);
        size_t at = 0;
        for (int i = 0; i < llama_num_tensors(&cfg); i++) {
            int kind, layer;
            size_t rows, cols;
            llama_tensor_at(&cfg, i, &kind, &layer);
            if (!llama_param_kinds[kind].is_projection) continue;
            GrassShape sh = gp->shape[kind];
            llama_param_shape(&cfg, kind, &rows, &cols);
            llama_param_name(kind, layer, name, sizeof(name));
            grass_norms(llama_grad(&f, kind, layer), (int)rows, (int)cols, sh.rows, dnorms + at);
            for (int j = 0; j < sh.D; j++) norms[at + j] = (float)dnorms[at + j];
            size_t so = grass_sel_offset(gp, kind, layer), go = grass_state_offset(gp, kind, layer);
            out_add(&out, "grass.sigma.", name, "I32", (size_t)sh.r, 0, m.grass.sigma + so);
            out_add(&out, "grass.rho.", name, "F32", (size_t)sh.r, 0, m.grass.rho + so);
            out_add(&out, "grass.norms.", name, "F32", (size_t)sh.D, 0, norms + at);
            out_add(&out, "grass.refresh.", name, "F32", (size_t)sh.r, (size_t)sh.E, refresh_g + go);
            out_add(&out, "grass.g.", name, "F32", (size_t)sh.r, (size_t)sh.E, m.grass.g + go);
            at += sh.D;
        }
        free(dnorms);
    }
    char path[CKPT_PATH_LEN + 32];
    path_format(path, sizeof(path), "%s/tensors.safetensors", opt.out);
    const char *meta[2] = {"format", "pt"};
    safetensors_write(path, out.n, out.t, 1, meta, NULL);
    printf("tensors_cpu: %d tensors of one %d x %d batch in %s (loss %.6f)\n", out.n, B, T, path, loss);
    if (grass) {
        llama_free(&m);
        free(refresh_g);
        free(norms);
    }
    llama_free(&f);
    free(tokens);
    free(logits);
    return 0;
}
