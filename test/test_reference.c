/*
 * test_reference.c: checks train_llama_cpu's model and optimizer against outside references, by including
 * train_llama.c (like llm.c's test_gpt2.c). Two commands:
 *
 *   test_reference compare DIR
 *       DIR holds what dev/reference/llama_ref.py wrote: config.json, model.safetensors (initial weights) and
 *       debug_state.safetensors (tokens, logits, loss, every gradient, and the losses and gradient norms of
 *       several AdamW steps on that batch). Runs the same computation and fails on any mismatch beyond the
 *       fp32 bounds below.
 *
 *   test_reference dump CKPT_DIR OUT.safetensors BATCH SEQ SEED
 *       loads a checkpoint, runs the forward pass on random tokens and writes tokens, logits and loss in the
 *       debug-state layout, for test/hf_compare.py to check against Hugging Face transformers.
 *
 *   test_reference section A/state.bin B/state.bin NAME
 *       fails unless section NAME of two trainer states holds the same bytes (e.g. the Grass indices).
 *
 *   test_reference diff A.safetensors B.safetensors BOUND
 *       the difference between two checkpoints' weights: per tensor ||A - B|| / ||A|| (Frobenius), the
 *       largest over the tensors; fails when it exceeds BOUND.
 *
 *   test_reference init
 *       the initial weights (llama_init_tensor, shared by both trainers): the same bits with 1 and 3 OpenMP
 *       threads, every value written, N(0, 0.02) within statistical bounds, distinct streams per chunk and
 *       per layer, norm weights 1.
 */
#define TESTING
#include "../train_llama.c"

static double max_abs(const float *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static float meta_float(const SafeTensors *st, const char *key) {
    const char *v = safetensors_meta(st, key);
    if (!v) fail("%s: metadata %s is missing", st->path, key);
    return strtof(v, NULL);
}

static void model_load_dir(Llama *m, const char *dir, int B, int T, const TrainOptions *opt) {
    char path[CKPT_PATH_LEN];
    LlamaConfig cfg;
    path_format(path, sizeof(path), "%s/config.json", dir);
    llama_config_read_json(&cfg, path);
    llama_alloc(m, &cfg, B, T, opt, opt->grass_rank, 1);
    checkpoint_read_model(dir, &cfg, llama_take_tensor, m);
}

// The training options the reference used, from the debug state's metadata.
static void options_from_meta(const SafeTensors *ds, TrainOptions *opt) {
    train_options_default(opt);
    opt->steps = (int)meta_float(ds, "steps");
    opt->lr = meta_float(ds, "lr");
    opt->warmup = (int)meta_float(ds, "warmup");
    opt->min_lr_ratio = meta_float(ds, "min_lr_ratio");
    opt->weight_decay = meta_float(ds, "weight_decay");
    opt->grad_clip = meta_float(ds, "grad_clip");
    opt->beta1 = meta_float(ds, "beta1");
    opt->beta2 = meta_float(ds, "beta2");
    opt->eps = meta_float(ds, "eps");
    opt->seed = (long long)meta_float(ds, "seed");
    const char *o = safetensors_meta(ds, "optimizer");
    if (o && !strcmp(o, "grass")) {
        snprintf(opt->optimizer, sizeof(opt->optimizer), "grass");
        opt->grass_rank = (int)meta_float(ds, "grass_rank");
        opt->grass_interval = (int)meta_float(ds, "grass_interval");
        opt->grass_alpha = meta_float(ds, "grass_alpha");
        snprintf(opt->grass_select, sizeof(opt->grass_select), "%s", safetensors_meta(ds, "grass_select"));
        snprintf(opt->grass_side, sizeof(opt->grass_side), "%s", safetensors_meta(ds, "grass_side"));
    }
}

static int check(const char *what, double err, double bound) {
    int ok = err <= bound;
    printf("%-4s %-52s error %.3e  bound %.3e\n", ok ? "ok" : "FAIL", what, err, bound);
    return ok;
}

static int compare(const char *dir) {
    char path[CKPT_PATH_LEN];
    path_format(path, sizeof(path), "%s/debug_state.safetensors", dir);
    SafeTensors ds;
    safetensors_open(&ds, path);
    int B = (int)meta_float(&ds, "batch"), T = (int)meta_float(&ds, "seq");
    TrainOptions opt;
    options_from_meta(&ds, &opt);
    int steps = opt.steps, grass = !strcmp(opt.optimizer, "grass");
    Llama m;
    model_load_dir(&m, dir, B, T, &opt);
    const LlamaConfig *c = &m.cfg;
    int N = B * T, V = c->vocab_size;
    int *tokens = (int *)xmalloc(sizeof(int) * (N + 1));
    safetensors_read_i32(&ds, "tokens", tokens, N + 1);
    float *ref = (float *)xmalloc(sizeof(float) * (m.lay.count > (size_t)N * V ? m.lay.count : (size_t)N * V));
    float ref_loss, *ref_losses = (float *)xmalloc(sizeof(float) * steps), *ref_norms = (float *)xmalloc(sizeof(float) * steps);
    int ok = 1;

    // forward. Bounds: fp32 with another summation order gives relative errors of a few 1e-7 per operation;
    // through a few layers the logits (scale ~1) agree to ~1e-6, so 1e-5 of their scale leaves a 10x margin
    // while any real error (a wrong RoPE pair, a missing norm weight) shows up at 1e-2 or more.
    float loss = llama_forward(&m, tokens, tokens + 1, B, T);
    safetensors_read_f32(&ds, "logits", ref, (size_t)N * V);
    // llama_forward leaves probabilities in a.logits; recompute the logits for the comparison
    float *logits = (float *)xmalloc(sizeof(float) * N * V);
    matmul_forward(logits, m.a.lnf, llama_param(&m, m.params, PARAM_LM_HEAD, 0), N, c->dim, V);
    double scale = fmax(1.0, max_abs(ref, (size_t)N * V));
    ok &= check("logits (max abs error / max(1, max |logit|))", max_abs_diff(logits, ref, (size_t)N * V) / scale, 1e-5);
    safetensors_read_f32(&ds, "loss", &ref_loss, 1);
    ok &= check("loss (relative)", fabs(loss - ref_loss) / ref_loss, 1e-6);

    // backward. Bound per tensor: max abs error over max |reference gradient|. The gradients pass through the
    // same operations backwards, so the same ~1e-6 relative error applies; 1e-4 leaves room for tensors whose
    // largest entries are small compared with the errors accumulated from larger upstream gradients.
    llama_zero_grads(&m, 0);
    llama_backward(&m, tokens, tokens + 1, B, T, 1.0f / N);
    for (int i = 0; i < llama_num_tensors(c); i++) {
        int kind, layer;
        char name[128], gname[160];
        llama_tensor_at(c, i, &kind, &layer);
        if (grass && llama_param_kinds[kind].is_projection) continue;  // Grass keeps no full gradient for these
        llama_param_name(kind, layer, name, sizeof(name));
        snprintf(gname, sizeof(gname), "grad.%s", name);
        size_t n = llama_param_numel(c, kind);
        safetensors_read_f32(&ds, gname, ref, n);
        const float *g = llama_grad(&m, kind, layer);
        ok &= check(gname, max_abs_diff(g, ref, n) / fmax(max_abs(ref, n), 1e-30), 1e-4);
    }

    // optimizer steps on the same batch. Bounds: the loss after k steps differs by the accumulated weight
    // differences. Adam's normalised update turns gradient differences of relative size 1e-6 into update
    // differences of the same relative size, except for entries whose gradient is near zero (rounding noise
    // against eps), which can move by up to lr a step; the losses average over all weights and agree to
    // ~1e-6 relative (measured <= 4e-7): bound 2e-5. The gradient norm is more sensitive to those few weights
    // (measured up to 2.2e-5 after 8 Grass steps with duplicate rows): bound 1e-4.
    safetensors_read_f32(&ds, "losses", ref_losses, steps);
    safetensors_read_f32(&ds, "norms", ref_norms, steps);
    double loss_err = 0.0, norm_err = 0.0;
    long full_before = m.grass.full_grads;  // the gradient check above refreshed once too
    for (int s = 0; s < steps; s++) {
        llama_zero_grads(&m, s);
        float l = llama_forward(&m, tokens, tokens + 1, B, T);
        llama_backward(&m, tokens, tokens + 1, B, T, 1.0f / N);
        float norm = llama_grad_norm(&m);
        llama_optimizer_step(&m, &opt, s, lr_at_step(&opt, s), norm);
        printf("     step %2d: loss %.7f (reference %.7f), norm %.6f (reference %.6f)\n", s, l, ref_losses[s], norm, ref_norms[s]);
        loss_err = fmax(loss_err, fabs(l - ref_losses[s]) / ref_losses[s]);
        norm_err = fmax(norm_err, fabs(norm - ref_norms[s]) / ref_norms[s]);
    }
    char what[96];
    snprintf(what, sizeof(what), "%s losses over %d steps (relative)", grass ? "Grass" : "AdamW", steps);
    ok &= check(what, loss_err, 2e-5);
    snprintf(what, sizeof(what), "gradient norms over %d steps (relative)", steps);
    ok &= check(what, norm_err, 1e-4);
    if (grass) {
        // the selection in force at the end must be the reference's: indices exactly, scales to fp32 rounding
        // (they come from the gradient norms, which agree to ~1e-6 relative)
        long mismatched = 0;
        double rho_err = 0.0;
        for (int i = 0; i < llama_num_tensors(c); i++) {
            int kind, layer;
            char name[128], key[192];
            llama_tensor_at(c, i, &kind, &layer);
            if (!llama_param_kinds[kind].is_projection) continue;
            llama_param_name(kind, layer, name, sizeof(name));
            int r = m.grass.p.shape[kind].r;
            int32_t *sig = (int32_t *)xmalloc(sizeof(int32_t) * r);
            float *rh = (float *)xmalloc(sizeof(float) * r);
            snprintf(key, sizeof(key), "grass.sigma.%s", name);
            safetensors_read_i32(&ds, key, sig, r);
            snprintf(key, sizeof(key), "grass.rho.%s", name);
            safetensors_read_f32(&ds, key, rh, r);
            for (int j = 0; j < r; j++) {
                mismatched += sig[j] != grass_sigma(&m.grass, kind, layer)[j];
                rho_err = fmax(rho_err, fabs(rh[j] - grass_rho(&m.grass, kind, layer)[j]) / rh[j]);
            }
            free(sig);
            free(rh);
        }
        ok &= check("grass: selected indices differing from the reference", (double)mismatched, 0.0);
        // rho = 1/sqrt(r q_i) (multinorm) follows q_i = s_i / sum(s); a row whose norm is far below the largest
        // carries the absolute fp32 error of the gradient (~1e-6 of its largest entries), so its q_i is off by up
        // to ~1e-4 relative: that is the bound
        ok &= check("grass: selection scales (relative)", rho_err, 1e-4);

        // no full gradient of a projection outside refreshes: only the refreshes (steps 0, K, 2K, ...) computed
        // one, matrix by matrix, and the gradient buffer holds only the tensors outside the projections
        long refreshes = (steps + opt.grass_interval - 1) / opt.grass_interval;
        ok &= check("grass: full projection gradients beyond the refreshes",
                    fabs((double)(m.grass.full_grads - full_before) - (double)refreshes * 7 * c->n_layers), 0.0);
        ParamLayout dense;
        llama_param_layout_of(c, &dense, 0);
        ok &= check("grass: gradient buffer floats beyond the non-projection tensors", fabs((double)m.glay.count - (double)dense.count), 0.0);

        // the compressed gradient of a step without refresh equals diag(rho) B G of a full gradient computed
        // separately (by the AdamW path on the same weights); fp32 with another summation order: 1e-5 relative
        TrainOptions full_opt = opt;
        snprintf(full_opt.optimizer, sizeof(full_opt.optimizer), "adamw");
        Llama f;
        llama_alloc(&f, c, B, T, &full_opt, 0, 1);
        memcpy(f.params, m.params, sizeof(float) * m.lay.count);
        llama_zero_grads(&f, 0);
        llama_forward(&f, tokens, tokens + 1, B, T);
        llama_backward(&f, tokens, tokens + 1, B, T, 1.0f / N);
        llama_zero_grads(&m, 1);
        llama_forward(&m, tokens, tokens + 1, B, T);
        llama_backward(&m, tokens, tokens + 1, B, T, 1.0f / N);
        double gerr = 0.0;
        for (int i = 0; i < llama_num_tensors(c); i++) {
            int kind, layer;
            llama_tensor_at(c, i, &kind, &layer);
            if (!llama_param_kinds[kind].is_projection) continue;
            GrassShape sh = m.grass.p.shape[kind];
            size_t mrows, ncols;
            llama_param_shape(c, kind, &mrows, &ncols);
            const float *G = llama_grad(&f, kind, layer), *g = m.grass.g + grass_state_offset(&m.grass.p, kind, layer);
            const int *sig = grass_sigma(&m.grass, kind, layer);
            const float *rh = grass_rho(&m.grass, kind, layer);
            double scale = 0.0, err = 0.0;
            for (int j = 0; j < sh.r; j++)
                for (int e = 0; e < sh.E; e++) {
                    double want = rh[j] * (sh.rows ? G[(size_t)sig[j] * ncols + e] : G[(size_t)e * ncols + sig[j]]);
                    scale = fmax(scale, fabs(want));
                    err = fmax(err, fabs(want - g[(size_t)j * sh.E + e]));
                }
            gerr = fmax(gerr, err / scale);
        }
        ok &= check("grass: compressed gradient vs rows of the full one", gerr, 1e-5);
        llama_free(&f);
    }
    safetensors_close(&ds);
    llama_free(&m);
    printf("%s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}

static int dump(const char *ckpt, const char *out, int B, int T, uint64_t seed) {
    Llama m;
    TrainOptions opt;
    train_options_default(&opt);
    model_load_dir(&m, ckpt, B, T, &opt);
    int N = B * T, V = m.cfg.vocab_size;
    int *tokens = (int *)xmalloc(sizeof(int) * (N + 1));
    Rng r;
    rng_init(&r, seed, 0xD0, 0, 0);
    for (int i = 0; i <= N; i++) tokens[i] = (int)rng_below(&r, (uint64_t)V);
    llama_forward(&m, tokens, NULL, B, T);
    float *logits = (float *)xmalloc(sizeof(float) * N * V);
    memcpy(logits, m.a.logits, sizeof(float) * N * V);
    float loss = llama_forward(&m, tokens, tokens + 1, B, T);
    StTensorOut t[3] = {
        {"tokens", "I32", 1, {(size_t)N + 1}, tokens},
        {"logits", "F32", 3, {(size_t)B, (size_t)T, (size_t)V}, logits},
        {"loss", "F32", 1, {1}, &loss},
    };
    safetensors_write(out, 3, t, 0, NULL, NULL);
    printf("dump: %s (batch %d, seq %d, loss %.6f)\n", out, B, T, loss);
    return 0;
}

static int diff(const char *pa, const char *pb, double bound) {
    SafeTensors a, b;
    safetensors_open(&a, pa);
    safetensors_open(&b, pb);
    double worst = 0.0;
    const char *worst_name = "";
    for (int i = 0; i < a.n; i++) {
        const StEntry *e = &a.entries[i];
        size_t n = st_numel(e->ndim, e->shape);
        float *x = (float *)xmalloc(sizeof(float) * n), *y = (float *)xmalloc(sizeof(float) * n);
        safetensors_read_f32(&a, e->name, x, n);
        safetensors_read_f32(&b, e->name, y, n);
        double dd = 0.0, xx = 0.0;
        for (size_t k = 0; k < n; k++) { dd += ((double)x[k] - y[k]) * ((double)x[k] - y[k]); xx += (double)x[k] * x[k]; }
        double rel = sqrt(dd / fmax(xx, 1e-300));
        if (rel >= worst) { worst = rel; worst_name = e->name; }
        free(x);
        free(y);
    }
    if (a.n != b.n) fail("%s and %s hold different tensors", pa, pb);
    int ok = worst <= bound;
    printf("%s weights differ by at most %.3e relative (Frobenius, worst tensor %s); bound %.1e\n", ok ? "ok  " : "FAIL", worst, worst_name, bound);
    return ok ? 0 : 1;
}

static int section(const char *pa, const char *pb, const char *name) {
    TrainerState a, b;
    state_open(&a, pa);
    state_open(&b, pb);
    int ia = -1, ib = -1;
    for (int i = 0; i < a.n; i++) if (!strcmp(a.names[i], name)) ia = i;
    for (int i = 0; i < b.n; i++) if (!strcmp(b.names[i], name)) ib = i;
    if (ia < 0 || ib < 0) fail("section %s is missing from %s", name, ia >= 0 ? pb : pa);
    size_t nx = a.sizes[ia], ny = b.sizes[ib];
    void *x = xmalloc(nx + 1), *y = xmalloc(ny + 1);
    state_read_section(&a, ia, x);
    state_read_section(&b, ib, y);
    int same = nx == ny && !memcmp(x, y, nx);
    printf("%s section %s: %zu bytes %s\n", same ? "ok  " : "FAIL", name, nx, same ? "identical" : "differ");
    free(x), free(y);
    state_close(&a), state_close(&b);
    return same ? 0 : 1;
}

static int init_ok = 1;
static void init_require(int cond, const char *what) {
    printf("%s %s\n", cond ? "ok  " : "FAIL", what);
    init_ok &= cond;
}

static int init_check(void) {
    LlamaConfig c = llama_preset_find("1b")->cfg;
    c.dim = 65;  // gate_proj 5461 x 65: 354965 values, 5 whole chunks and an odd tail
    size_t n = llama_param_numel(&c, PARAM_WGATE), chunk = LLAMA_INIT_CHUNK;
    float *a = (float *)xmalloc(sizeof(float) * n), *b = (float *)xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) a[i] = b[i] = NAN;
    omp_set_num_threads(1);
    llama_init_tensor(&c, a, PARAM_WGATE, 3, 42);
    omp_set_num_threads(3);
    llama_init_tensor(&c, b, PARAM_WGATE, 3, 42);
    init_require(!memcmp(a, b, sizeof(float) * n), "1 and 3 threads draw the same bits");
    double sum = 0.0, sq = 0.0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        finite &= isfinite(a[i]);
        sum += a[i];
        sq += (double)a[i] * a[i];
    }
    init_require(finite, "every value written (the odd tail too)");
    // bounds of 5 standard errors: the mean's is 0.02 / sqrt(n), the standard deviation's 0.02 / sqrt(2 n)
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    printf("     %zu values: mean %.3e, standard deviation %.6f\n", n, mean, sd);
    init_require(fabs(mean) <= 5 * 0.02 / sqrt((double)n), "mean 0 within 5 standard errors");
    init_require(fabs(sd - 0.02) <= 5 * 0.02 / sqrt(2.0 * n), "standard deviation 0.02 within 5 standard errors");
    double corr = 0.0;  // chunks 0 and 1 from independent streams: correlation within 5 / sqrt(chunk)
    for (size_t i = 0; i < chunk; i++) corr += (double)a[i] * a[chunk + i];
    corr /= chunk * sd * sd;
    printf("     correlation of chunks 0 and 1: %.4f\n", corr);
    init_require(fabs(corr) <= 5.0 / sqrt((double)chunk), "chunks 0 and 1 uncorrelated");
    // a part [lo, hi) (--shard-weights: a rank draws its own): the whole tensor's values there, in the chunks around
    // them, and nothing written beyond those chunks
    size_t parts[3][2] = {{100000, 100001}, {chunk - 7, 3 * chunk + 5}, {n - 3, n}};
    for (int k = 0; k < 3; k++) {
        size_t lo = parts[k][0], hi = parts[k][1], c0 = lo / chunk * chunk, c1 = (hi + chunk - 1) / chunk * chunk;
        for (size_t i = 0; i < n; i++) b[i] = NAN;
        llama_init_tensor_part(&c, b, PARAM_WGATE, 3, 42, lo, hi);
        int same = 1, untouched = 1;
        for (size_t i = 0; i < n; i++) {
            if (i >= c0 && i < c1) same &= a[i] == b[i];
            else untouched &= isnan(b[i]);
        }
        printf("     part [%zu, %zu): chunks [%zu, %zu) drawn\n", lo, hi, c0, c1 < n ? c1 : n);
        init_require(same && untouched, "a part draws the whole tensor's values in its chunks, and nothing else");
    }
    llama_init_tensor(&c, b, PARAM_WGATE, 4, 42);
    init_require(memcmp(a, b, sizeof(float) * chunk) != 0, "another layer draws other values");
    llama_init_tensor(&c, b, PARAM_ATTN_NORM, 3, 42);
    int ones = 1;
    for (size_t i = 0; i < llama_param_numel(&c, PARAM_ATTN_NORM); i++) ones &= b[i] == 1.0f;
    init_require(ones, "norm weights 1");
    free(a);
    free(b);
    return init_ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "compare")) return compare(argv[2]);
    if (argc == 7 && !strcmp(argv[1], "dump")) return dump(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), strtoull(argv[6], NULL, 10));
    if (argc == 5 && !strcmp(argv[1], "diff")) return diff(argv[2], argv[3], atof(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "section")) return section(argv[2], argv[3], argv[4]);
    if (argc == 2 && !strcmp(argv[1], "init")) return init_check();
    fprintf(stderr, "usage: %s compare DIR | dump CKPT_DIR OUT.safetensors BATCH SEQ SEED | diff A B BOUND | section A B NAME | init\n",
            argv[0]);
    return 2;
}
