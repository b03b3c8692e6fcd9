/*
 * test_tensors.cu: the GPU model of llama_model.cuh against the CPU trainer on one batch, tensor by tensor (as
 * llm.c's test_gpt2.cu does against PyTorch): the logits, the loss, every parameter's gradient, and under Grass
 * the selection of a refresh (indices and scales), the compressed gradients the refresh takes and those of the
 * next step. test/tensors_cpu.c writes the CPU trainer's weights and tensors into DIR; this program loads those
 * weights into the GPU model (as --init would), runs the trainer's own forward and backward and compares.
 *
 *   test_tensors TRAINER_OPTIONS... --out DIR
 *
 * with the options tensors_cpu was given (and GPU ones such as --recompute). One line per tensor: ok or FAIL,
 * name, max abs diff, max rel diff (the max abs diff over the reference's largest magnitude: elementwise relative
 * differences mean nothing for entries near zero), and the bound on the latter. Exit 1 on any FAIL.
 *
 * TEST_TENSORS_PERTURB=NAME adds 1 to the first element of weight NAME as loaded (how test/gpu_tensors.sh
 * shows that a wrong weight is reported). TEST_TENSORS_MICRO=K runs each step as K micro-batches of the same batch,
 * each with 1 / K of the loss: the gradients a step accumulates over its micro-batches must equal those of one.
 */
#include <math.h>
#include "../common.h"
#include "../checkpoint.h"
#include "../llama_model.cuh"
#include "../train_config.h"

// Bounds on the max rel diff, by build. fp32: the GPU's summation orders (cuBLAS's blocking, the kernels'
// reductions) against the CPU's give ~1e-7 relative per operation, ~1e-6 after a few layers: the CPU trainer's
// bounds against PyTorch (test/test_reference.c), 1e-5 for forward values and 1e-4 for gradients, whose small
// tensors carry errors from larger upstream ones. bf16: every weight and activation is rounded to 8 bits of
// mantissa (relative error up to 2^-9 = 2e-3 per rounding, accumulating in fp32), and each value passes through
// some 10 roundings in 2 layers (norms, projections, RoPE, attention, SwiGLU, residual adds) with errors that
// add up as a random walk: a few 1e-3 in the logits and loss (bound 2e-2, 5x), more in the gradients, which are
// products of two rounded chains and sums over N tokens of rounded terms (bound 5e-2; measured below 1.5e-2).
#ifdef ENABLE_FP32
static const double BOUND_FWD = 1e-5, BOUND_LOSS = 1e-6, BOUND_GRAD = 1e-4, BOUND_RHO = 1e-4;
#else
static const double BOUND_FWD = 2e-2, BOUND_LOSS = 2e-2, BOUND_GRAD = 5e-2, BOUND_RHO = 2e-2;
#endif

static int failures = 0;

static void report(const char *name, double abs_diff, double rel_diff, double bound) {
    int ok = rel_diff <= bound;  // false for NaN
    failures += !ok;
    printf("%-4s %-48s max abs diff %.3e  max rel diff %.3e  bound %.1e\n", ok ? "ok" : "FAIL", name, abs_diff, rel_diff, bound);
}

// Compares n values; a non-finite value (the emulator's allocations start as NaN) is an infinite difference.
static void compare(const char *name, const float *got, const float *ref, size_t n, double bound) {
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        diff = fmax(diff, isfinite(d) ? d : INFINITY);
        scale = fmax(scale, fabs((double)ref[i]));
    }
    report(name, diff, diff / fmax(scale, 1e-30), bound);
}

// A device floatX tensor, n values, as floats.
static void fetch_floatx(float *dst, const floatX *src, size_t n) {
    floatX *tmp = (floatX *)xmalloc(sizeof(floatX) * n);
    cudaCheck(cudaMemcpy(tmp, src, sizeof(floatX) * n, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) dst[i] = to_float(tmp[i]);
    free(tmp);
}

typedef struct {
    GpuLlama *m;
    const char *perturb;  // TEST_TENSORS_PERTURB or NULL
} Loader;

static void take_tensor(void *ctx, int kind, int layer, const float *data, size_t n) {
    Loader *ld = (Loader *)ctx;
    char name[128];
    llama_param_name(kind, layer, name, sizeof(name));
    if (!ld->perturb || strcmp(ld->perturb, name)) {
        gpu_take_tensor(ld->m, kind, layer, data, n);
        return;
    }
    float *w = (float *)xmalloc(sizeof(float) * n);
    memcpy(w, data, sizeof(float) * n);
    w[0] += 1.0f;
    printf("perturbed: %s[0] += 1\n", name);
    gpu_take_tensor(ld->m, kind, layer, w, n);
    free(w);
}

// Forward and backward of the batch as the trainer runs a step (loss averaged over N tokens) of `micro` micro-batches,
// each the same batch weighted 1 / (micro N): the gradients, Grass's refresh (on the first) and compressed ones must
// accumulate over them into the gradients of one. Returns the mean loss.
static float step_grads(GpuLlama *m, const int *tokens, int step, int micro) {
    int N = m->B * m->T;
    gpu_zero_grads(m, step);
    double loss = 0.0;
    for (int i = 0; i < micro; i++) {
        gpu_set_batch(m, tokens, tokens + 1, 1);
        loss += gpu_forward(m, 1.0f / ((float)N * micro));
        gpu_backward(m);
    }
    cudaCheck(cudaStreamSynchronize(m->stream));
    return (float)(loss / micro);
}

// The gradient of every tensor that has a full one (all under AdamW, those outside the projections under Grass),
// in the model's shape, against the CPU's; under AdamW also the padding of the stored ffn: exactly zero.
static void compare_grads(GpuLlama *m, const SafeTensors *ref) {
    const LlamaConfig *c = &m->model_cfg;
    char name[128], key[160];
    for (int i = 0; i < llama_num_tensors(c); i++) {
        int kind, layer;
        llama_tensor_at(c, i, &kind, &layer);
        if (m->grass.p.enabled && llama_param_kinds[kind].is_projection) continue;
        llama_param_name(kind, layer, name, sizeof(name));
        snprintf(key, sizeof(key), "grad.%s", name);
        size_t n = llama_param_numel(c, kind), sn = llama_param_numel(&m->stored_cfg, kind);
        floatX *gx = (floatX *)xmalloc(sizeof(floatX) * n);
        float *g = (float *)xmalloc(sizeof(float) * sn), *want = (float *)xmalloc(sizeof(float) * n);
        gpu_tensor_copy(m, kind, layer, gx, m->grads, &m->glay, sizeof(floatX), 0);
        for (size_t j = 0; j < n; j++) g[j] = to_float(gx[j]);
        safetensors_read_f32(ref, key, want, n);
        compare(key, g, want, n, BOUND_GRAD);
        if (sn != n) {  // the stored tensor, padding included: its padded rows or columns hold exactly 0
            size_t rows, cols, srows, scols;
            llama_param_shape(c, kind, &rows, &cols);
            llama_param_shape(&m->stored_cfg, kind, &srows, &scols);
            fetch_floatx(g, gpu_grad(m, kind, layer), sn);
            double pad = 0.0;
            for (size_t r = 0; r < srows; r++)
                for (size_t col = 0; col < scols; col++)
                    if (r >= rows || col >= cols) pad = fmax(pad, fabs((double)g[r * scols + col]));
            snprintf(key, sizeof(key), "padding of grad.%s", name);
            report(key, pad, pad, 0.0);
        }
        free(gx);
        free(g);
        free(want);
    }
}

// Grass after the refresh of step 0: the selection and g against the CPU's, then step 1's compressed gradients
// from the CPU's selection (the same one in fp32; uploaded so that bf16's is compared apart from its selection).
static void compare_grass(GpuLlama *m, const SafeTensors *ref, const int *tokens, int micro) {
    const LlamaConfig *c = &m->model_cfg;
    GpuGrass *gs = &m->grass;
    const GrassPlan *p = &gs->p;
    int *sigma = (int *)xmalloc(sizeof(int) * p->nsel), *want_sigma = (int *)xmalloc(sizeof(int) * p->nsel);
    float *rho = (float *)xmalloc(sizeof(float) * p->nsel), *want_rho = (float *)xmalloc(sizeof(float) * p->nsel);
    float *g = (float *)xmalloc(sizeof(float) * p->nstate), *want = (float *)xmalloc(sizeof(float) * p->nstate);
    float *norms = (float *)xmalloc(sizeof(float) * p->dmax);
    cudaCheck(cudaMemcpy(sigma, gs->sigma, sizeof(int) * p->nsel, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(rho, gs->rho, sizeof(float) * p->nsel, cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(g, gs->g, sizeof(float) * p->nstate, cudaMemcpyDeviceToHost));
    char name[128], key[192];
    for (int i = 0; i < llama_num_tensors(c); i++) {
        int kind, layer;
        llama_tensor_at(c, i, &kind, &layer);
        if (!llama_param_kinds[kind].is_projection) continue;
        llama_param_name(kind, layer, name, sizeof(name));
        GrassShape sh = p->shape[kind];
        size_t so = grass_sel_offset(p, kind, layer), go = grass_state_offset(p, kind, layer);
        snprintf(key, sizeof(key), "grass.sigma.%s", name);
        safetensors_read_i32(ref, key, want_sigma + so, sh.r);
        snprintf(key, sizeof(key), "grass.rho.%s", name);
        safetensors_read_f32(ref, key, want_rho + so, sh.r);
        snprintf(key, sizeof(key), "grass.norms.%s", name);
        safetensors_read_f32(ref, key, norms, sh.D);
        // indices: the same in fp32. In bf16 the norms carry bf16's error (about 1e-2 relative after the
        // gradient's roundings), so topr may swap rows whose CPU norms are that close: a row the GPU took instead
        // must have a CPU norm within BOUND_RHO of the smallest the CPU took; the sampling selectors are run in
        // fp32 only, where every draw must agree.
        double least = INFINITY, worst = 0.0;
        for (int j = 0; j < sh.r; j++) least = fmin(least, (double)norms[want_sigma[so + j]]);
        int differ = 0, exact = sizeof(floatX) == 4 || p->selector != GRASS_TOPR;
        for (int j = 0; j < sh.r; j++) {
            if (sigma[so + j] == want_sigma[so + j]) continue;
            differ++;
            if (sigma[so + j] < 0 || sigma[so + j] >= sh.D) worst = INFINITY;
            else worst = fmax(worst, exact ? INFINITY : 1.0 - norms[sigma[so + j]] / least);
        }
        snprintf(key, sizeof(key), "grass.sigma.%s (%d of %d differ)", name, differ, sh.r);
        report(key, differ, worst, exact ? 0.0 : BOUND_RHO);
        snprintf(key, sizeof(key), "grass.rho.%s", name);
        compare(key, rho + so, want_rho + so, sh.r, BOUND_RHO);
        // g of the refresh, the rows whose index agrees (all of them in fp32)
        snprintf(key, sizeof(key), "grass.refresh.%s", name);
        safetensors_read_f32(ref, key, want + go, (size_t)sh.r * sh.E);
        for (int j = 0; j < sh.r; j++)
            if (sigma[so + j] != want_sigma[so + j])
                memcpy(g + go + (size_t)j * sh.E, want + go + (size_t)j * sh.E, sizeof(float) * sh.E);
        compare(key, g + go, want + go, (size_t)sh.r * sh.E, BOUND_GRAD);
    }
    cudaCheck(cudaMemcpy(gs->sigma, want_sigma, sizeof(int) * p->nsel, cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(gs->rho, want_rho, sizeof(float) * p->nsel, cudaMemcpyHostToDevice));
    step_grads(m, tokens, 1, micro);
    cudaCheck(cudaMemcpy(g, gs->g, sizeof(float) * p->nstate, cudaMemcpyDeviceToHost));
    for (int i = 0; i < llama_num_tensors(c); i++) {
        int kind, layer;
        llama_tensor_at(c, i, &kind, &layer);
        if (!llama_param_kinds[kind].is_projection) continue;
        llama_param_name(kind, layer, name, sizeof(name));
        GrassShape sh = p->shape[kind];
        size_t go = grass_state_offset(p, kind, layer);
        snprintf(key, sizeof(key), "grass.g.%s", name);
        safetensors_read_f32(ref, key, want + go, (size_t)sh.r * sh.E);
        compare(key, g + go, want + go, (size_t)sh.r * sh.E, BOUND_GRAD);
    }
    free(sigma);
    free(want_sigma);
    free(rho);
    free(want_rho);
    free(g);
    free(want);
    free(norms);
}

int main(int argc, char **argv) {
    TrainOptions opt;
    train_options_default(&opt);
    train_options_parse(&opt, argc, argv, 1);
    if (!opt.out[0]) fail("usage: %s TRAINER_OPTIONS... --out DIR (the options test/bin/tensors_cpu was given)", argv[0]);
    LlamaConfig cfg;
    int grass_rank = train_options_model(&opt, NULL, &cfg);
    int B = opt.batch, T = opt.seq, N = B * T, V = cfg.vocab_size, d = cfg.dim;
    char path[CKPT_PATH_LEN + 32];
    path_format(path, sizeof(path), "%s/tensors.safetensors", opt.out);
    SafeTensors ref;
    safetensors_open(&ref, path);

    GpuLlama m;
    gpu_plan(&m, &cfg, B, T, 1, &opt, grass_rank);
    if (m.chunk_rows < N) fail("the batch's logits must fit one chunk of the lm_head (%d rows, not %d)", m.chunk_rows, N);
    gpu_alloc(&m);
    Loader ld = {&m, getenv("TEST_TENSORS_PERTURB")};
    checkpoint_read_model(opt.out, &cfg, take_tensor, &ld);
    const char *micro_env = getenv("TEST_TENSORS_MICRO");
    int micro = micro_env ? atoi(micro_env) : 1;
    if (micro < 1) fail("TEST_TENSORS_MICRO=%s: the micro-batches per step must be a positive number", micro_env);
    printf("test_tensors (%s): %s, batch %d x %d, recompute %d, %d micro-batch%s\n", PRECISION_NAME,
           m.grass.p.enabled ? "Grass" : "AdamW", B, T, m.recompute, micro, micro > 1 ? "es" : "");
    int *tokens = (int *)xmalloc(sizeof(int) * (N + 1));
    safetensors_read_i32(&ref, "tokens", tokens, N + 1);

    // logits: the lm_head's product over the batch, into the logits buffer (which the loss then reuses)
    float *logits = (float *)xmalloc(sizeof(float) * N * V), *want = (float *)xmalloc(sizeof(float) * N * V);
    gpu_set_batch(&m, tokens, tokens + 1, 0);
    gpu_forward_blocks(&m);
    matmul_forward(&m.mm, m.a.logits, m.a.lnf, gpu_weight(&m, PARAM_LM_HEAD, 0), N, d, V, m.stream);
    cudaCheck(cudaStreamSynchronize(m.stream));
    fetch_floatx(logits, m.a.logits, (size_t)N * V);
    safetensors_read_f32(&ref, "logits", want, (size_t)N * V);
    compare("logits", logits, want, (size_t)N * V, BOUND_FWD);

    float loss = step_grads(&m, tokens, 0, micro), want_loss;
    safetensors_read_f32(&ref, "loss", &want_loss, 1);
    compare("loss", &loss, &want_loss, 1, BOUND_LOSS);
    compare_grads(&m, &ref);
    if (m.grass.p.enabled) compare_grass(&m, &ref, tokens, micro);

    printf("%s\n", failures ? "FAIL" : "PASS");
    free(tokens);
    free(logits);
    free(want);
    safetensors_close(&ref);
    gpu_free(&m);
    return failures ? 1 : 0;
}
