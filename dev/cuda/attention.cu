/*
 * dev/cuda/attention.cu: causal flash attention forward and backward (kernels/attention.cuh) against the CPU
 * reference (the full softmax matrix, as train_llama.c), with GQA, head dims 16 to 128 and T not a multiple
 * of the tiles, then timed.
 *   make -C dev/cuda && dev/cuda/bin/attention [--version N[,N...]] [--no-bench] [--cpu-selftest]
 * versions: 1 scalar (one warp per row, fp32; the fp32 build's path), 2 tensor cores (mma.sync, bf16 builds
 * only) with the B fragments of untransposed tiles from 16-bit shared loads, 3 the same with those fragments
 * from ldmatrix.trans (the trainer's: ATTENTION_VERSION), 4 every fragment from ldmatrix and the streamed tiles
 * double-buffered by cp.async, 5 that with register budgets for more blocks per SM at hd 64, 6 that with a forward
 * of 32 query rows per warp, 7 that with dq from the dS the dk/dv kernel stores (5 products in the backward, not 7).
 * 3 to 7 are checked to give the same bits as 2 (kernels/attention.cuh). `make emu`
 * builds it for the CPU emulator too (dev/emu/bin/attention).
 */
#include "dev_common.cuh"
#include "../../kernels/attention.cuh"
#include "attention_ref.h"

// The forward algorithm of the kernels, in double on the CPU: tiles of 64 keys with the online softmax
// (running max, rescaled sums and outputs).
static void attention_flash_forward_ref(double *out, double *lse, const double *q, const double *k, const double *v, AttnShape s) {
    int T = s.T, hd = s.hd, qd = s.H * hd, kvd = s.KV * hd, group = s.H / s.KV;
    double scale = 1.0 / sqrt((double)hd);
    std::vector<double> o(hd);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int t = 0; t < T; t++) {
                const double *qt = q + ((size_t)b * T + t) * qd + h * hd;
                size_t kvoff = (size_t)b * T * kvd + (h / group) * hd;
                double m = -INFINITY, l = 0.0;
                std::fill(o.begin(), o.end(), 0.0);
                for (int k0 = 0; k0 <= t; k0 += 64) {
                    double sc[64], mx = -INFINITY;
                    for (int j = 0; j < 64; j++) {
                        int t2 = k0 + j;
                        sc[j] = -INFINITY;
                        if (t2 > t || t2 >= T) continue;
                        double dot = 0.0;
                        for (int i = 0; i < hd; i++) dot += qt[i] * k[kvoff + (size_t)t2 * kvd + i];
                        mx = fmax(mx, sc[j] = dot * scale);
                    }
                    double m_new = fmax(m, mx), alpha = exp(m - m_new);
                    l *= alpha;
                    for (int i = 0; i < hd; i++) o[i] *= alpha;
                    for (int j = 0; j < 64; j++) {
                        double p = exp(sc[j] - m_new);  // 0 for the masked keys
                        l += p;
                        for (int i = 0; p > 0.0 && i < hd; i++) o[i] += p * v[kvoff + (size_t)(k0 + j) * kvd + i];
                    }
                    m = m_new;
                }
                double *ot = out + ((size_t)b * T + t) * qd + h * hd;
                for (int i = 0; i < hd; i++) ot[i] = o[i] / l;
                lse[((size_t)b * s.H + h) * T + t] = m + log(l);
            }
}

static void selftest(void) {
    printf("attention CPU reference self-test\n");
    AttnShape s = {1, 5, 4, 2, 4};
    printf("  reference backward vs finite differences (B %d, T %d, H %d, KV %d, hd %d)\n", s.B, s.T, s.H, s.KV, s.hd);
    std::vector<double> q = to_double(random_normal(attn_q_size(s), 0, 1, 1)), k = to_double(random_normal(attn_kv_size(s), 0, 1, 2));
    std::vector<double> v = to_double(random_normal(attn_kv_size(s), 0, 1, 3)), dout = to_double(random_normal(attn_q_size(s), 0, 1, 4));
    std::vector<double> out(q.size()), lse(attn_lse_size(s)), att((size_t)s.B * s.H * s.T * s.T);
    auto loss = [&]() {
        attention_forward_ref(out.data(), lse.data(), att.data(), q.data(), k.data(), v.data(), s);
        double sum = 0.0;
        for (size_t i = 0; i < out.size(); i++) sum += out[i] * dout[i];
        return sum;
    };
    std::vector<double> fd_q = finite_differences(q, loss), fd_k = finite_differences(k, loss), fd_v = finite_differences(v, loss);
    std::vector<double> dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0);
    loss();
    attention_backward_ref(dq.data(), dk.data(), dv.data(), dout.data(), att.data(), q.data(), k.data(), v.data(), s);
    check_doubles("dq", dq, fd_q, 1e-6, 1e-8);
    check_doubles("dk", dk, fd_k, 1e-6, 1e-8);
    check_doubles("dv", dv, fd_v, 1e-6, 1e-8);

    s = {2, 150, 4, 2, 16};
    printf("  the kernels' algorithm (64-key tiles, online softmax, backward from lse and D) vs the reference "
           "(B %d, T %d, H %d, KV %d, hd %d)\n", s.B, s.T, s.H, s.KV, s.hd);
    AttnCase c = attention_case(s, 5);
    std::vector<double> q2 = to_double(c.q), k2 = to_double(c.k), v2 = to_double(c.v), dout2 = to_double(c.dout);
    std::vector<double> fo(c.out.size()), flse(c.lse.size()), fdq(c.dq.size(), 0.0), fdk(c.dk.size(), 0.0), fdv(c.dv.size(), 0.0);
    attention_flash_forward_ref(fo.data(), flse.data(), q2.data(), k2.data(), v2.data(), s);
    attention_backward_lse_ref(fdq.data(), fdk.data(), fdv.data(), NULL, dout2.data(), fo.data(), flse.data(), q2.data(),
                               k2.data(), v2.data(), s);
    check_doubles("out", fo, c.out, 1e-10, 1e-12);
    check_doubles("lse", flse, c.lse, 1e-10, 1e-12);
    check_doubles("dq", fdq, c.dq, 1e-9, 1e-12);
    check_doubles("dk", fdk, c.dk, 1e-9, 1e-12);
    check_doubles("dv", fdv, c.dv, 1e-9, 1e-12);
}

// Runs version 1 (scalar) or 2 to 7 (tensor cores) of the forward or the backward.
static void run_forward(int version, floatX *out, float *lse, const floatX *q, const floatX *k, const floatX *v, AttnShape s) {
#ifndef ENABLE_FP32
    if (version == 2) return attention_forward_mma<2>(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 3) return attention_forward_mma<3>(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 4) return attention_forward_mma<4>(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 5) return attention_forward_mma<5>(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 6) return attention_forward_mma<6>(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 7) return attention_forward_mma<7>(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, 0);
#endif
    (void)version;
    attention_forward_scalar(out, lse, q, k, v, s.B, s.T, s.H, s.KV, s.hd, 0);
}

static void run_backward(int version, floatX *dq, floatX *dk, floatX *dv, float *scratch, const floatX *dout, const floatX *out,
                         const floatX *q, const floatX *k, const floatX *v, const float *lse, AttnShape s) {
#ifndef ENABLE_FP32
    if (version == 2) return attention_backward_mma<2>(dq, dk, dv, scratch, dout, out, q, k, v, lse, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 3) return attention_backward_mma<3>(dq, dk, dv, scratch, dout, out, q, k, v, lse, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 4) return attention_backward_mma<4>(dq, dk, dv, scratch, dout, out, q, k, v, lse, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 5) return attention_backward_mma<5>(dq, dk, dv, scratch, dout, out, q, k, v, lse, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 6) return attention_backward_mma<6>(dq, dk, dv, scratch, dout, out, q, k, v, lse, s.B, s.T, s.H, s.KV, s.hd, 0);
    if (version == 7) return attention_backward_mma<7>(dq, dk, dv, scratch, dout, out, q, k, v, lse, s.B, s.T, s.H, s.KV, s.hd, 0);
#endif
    (void)version;
    attention_backward_scalar(dq, dk, dv, scratch, dout, out, q, k, v, lse, s.B, s.T, s.H, s.KV, s.hd, 0);
}

typedef struct {
    floatX *q, *k, *v, *dout, *out, *dq, *dk, *dv;
    float *lse, *scratch;  // scratch: the version's (D, and version 7's dS tiles)
} AttnBuffers;

static AttnBuffers attn_buffers(int version, AttnShape s, const AttnCase *c) {
    AttnBuffers d;
    size_t nq = attn_q_size(s), nkv = attn_kv_size(s);
    d.q = c ? upload<floatX>(c->q) : device_alloc<floatX>(nq), d.k = c ? upload<floatX>(c->k) : device_alloc<floatX>(nkv);
    d.v = c ? upload<floatX>(c->v) : device_alloc<floatX>(nkv), d.dout = c ? upload<floatX>(c->dout) : device_alloc<floatX>(nq);
    d.out = device_alloc<floatX>(nq), d.dq = device_alloc<floatX>(nq), d.dk = device_alloc<floatX>(nkv);
    d.dv = device_alloc<floatX>(nkv), d.lse = device_alloc<float>(attn_lse_size(s));
    d.scratch = device_alloc<float>(attention_scratch_floats(version, s.B, s.T, s.H));
    return d;
}

static void attn_buffers_free(AttnBuffers *d) {
    floatX *x[] = {d->q, d->k, d->v, d->dout, d->out, d->dq, d->dk, d->dv};
    for (floatX *p : x) cudaCheck(cudaFree(p));
    cudaCheck(cudaFree(d->lse)), cudaCheck(cudaFree(d->scratch));
}

// A version's outputs on one case, as downloaded.
struct AttnResult {
    std::vector<float> out, lse, dq, dk, dv;
    bool operator==(const AttnResult &o) const { return out == o.out && lse == o.lse && dq == o.dq && dk == o.dk && dv == o.dv; }
};
// Runs a version's forward and backward on the inputs in d and downloads the outputs.
static AttnResult attn_run(int version, const AttnBuffers &d, AttnShape s) {
    run_forward(version, d.out, d.lse, d.q, d.k, d.v, s);
    run_backward(version, d.dq, d.dk, d.dv, d.scratch, d.dout, d.out, d.q, d.k, d.v, d.lse, s);
    cudaCheck(cudaDeviceSynchronize());
    size_t nq = attn_q_size(s), nkv = attn_kv_size(s);
    return {download(d.out, nq), download(d.lse, attn_lse_size(s)), download(d.dq, nq), download(d.dk, nkv), download(d.dv, nkv)};
}

// One version on one case: its outputs against the CPU reference, the same dk from a second backward, and for
// versions 3 to 7 the same bits as version 2 (v2: version 2's outputs on this case, run here if still empty, so
// that a run of every version runs version 2 once a case).
static void validate(int version, AttnShape s, const AttnCase &c, AttnResult *v2) {
    printf("  B %d, T %d, H %d, KV %d, hd %d\n", s.B, s.T, s.H, s.KV, s.hd);
    AttnBuffers d = attn_buffers(version, s, &c);
    AttnResult r = attn_run(version, d, s);
    attention_check_case(c, s, r.out, r.lse, r.dq, r.dk, r.dv);
    cudaCheck(cudaMemset(d.dk, 0, sizeof(floatX) * attn_kv_size(s)));
    run_backward(version, d.dq, d.dk, d.dv, d.scratch, d.dout, d.out, d.q, d.k, d.v, d.lse, s);
    int same = download(d.dk, attn_kv_size(s)) == r.dk;
    printf("    %-26s %s\n", "dk: same bits twice", same ? "ok" : "FAIL");
    dev_failures += !same;
    attn_buffers_free(&d);
    if (version == 2 && v2->out.empty()) *v2 = r;
    if (version >= 3) {  // ldmatrix and cp.async move the same values as version 2's loads: the same bits everywhere
        if (v2->out.empty()) {
            AttnBuffers d2 = attn_buffers(2, s, &c);
            *v2 = attn_run(2, d2, s);
            attn_buffers_free(&d2);
        }
        same = r == *v2;
        printf("    %-26s %s\n", "same bits as version 2", same ? "ok" : "FAIL");
        dev_failures += !same;
    }
}

static void bench(int version, AttnShape s) {
    AttnBuffers d = attn_buffers(version, s, NULL);
    size_t nq = attn_q_size(s), nkv = attn_kv_size(s);
    upload_to(d.q, random_normal(nq, 0, 1, 300)), upload_to(d.k, random_normal(nkv, 0, 1, 301));
    upload_to(d.v, random_normal(nkv, 0, 1, 302)), upload_to(d.dout, random_normal(nq, 0, 1, 303));
    float ms_f = time_ms(5, [&] { run_forward(version, d.out, d.lse, d.q, d.k, d.v, s); });
    float ms_b = time_ms(5, [&] { run_backward(version, d.dq, d.dk, d.dv, d.scratch, d.dout, d.out, d.q, d.k, d.v, d.lse, s); });
    // a causal product over T (T + 1) / 2 (query, key) pairs; the forward has 2 products, a backward 5
    double product = 2.0 * s.B * s.H * s.hd * (double)s.T * (s.T + 1) / 2.0;
    printf("  B %d, T %d, H %d, KV %d, hd %d: forward %.3f ms (%.1f TFLOPS), backward %.3f ms (%.1f TFLOPS)\n", s.B, s.T,
           s.H, s.KV, s.hd, ms_f, 2 * product / ms_f / 1e9, ms_b, 5 * product / ms_b / 1e9);
    attn_buffers_free(&d);
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 7, "1 scalar, 2 tensor cores, 3 + ldmatrix.trans, 4 + ldmatrix and cp.async, 5 + register budgets, 6 + 32-row forward warps, 7 + dq from stored dS (2-7: bf16 builds)", selftest);
    const AttnShape shapes[] = {
        {2, 33, 4, 2, 16},    // the test preset's head dim, GQA
        {1, 100, 4, 4, 32},   // the tiny preset
        {2, 257, 8, 2, 64},   // groups of 4, T one past a tile
        {1, 64, 2, 2, 64},    // exactly one tile
        {1, 200, 4, 1, 128},  // one kv head
        {1, 700, 2, 2, 128},
    };
    const int nshapes = sizeof(shapes) / sizeof(shapes[0]);
    std::vector<AttnCase> cases;  // each shape's inputs and CPU reference, for every version
    std::vector<AttnResult> v2(nshapes);
    for (int i = 0; opt.validate && i < nshapes; i++) cases.push_back(attention_case(shapes[i], 200));
    for (int version = 1; version <= 7; version++) {
        if (!dev_version_selected(&opt, version)) continue;
#ifdef CUDA_EMULATION
        // version 5 is version 4 with register budgets (__launch_bounds__), which the emulator ignores: named in
        // --version it runs, in a run of every version it would repeat version 4's computation
        if (version == 5 && opt.versions == 0) {
            printf("attention version 5: the same computation as version 4 under the emulator (only register budgets differ), not repeated\n");
            continue;
        }
#endif
#ifdef ENABLE_FP32
        if (version >= 2) {
            printf("attention version %d (tensor cores) is bf16 only\n", version);
            continue;
        }
#endif
        const char *names[] = {"", "scalar", "tensor cores", "tensor cores + ldmatrix.trans", "tensor cores + ldmatrix + cp.async",
                               "tensor cores + ldmatrix + cp.async + register budgets", "version 5 + 32-row forward warps",
                               "version 6 + dq from stored dS"};
        const char *name = names[version];
        if (opt.validate) {
            printf("attention version %d (%s): validation against the CPU reference\n", version, name);
            for (int i = 0; i < nshapes; i++) validate(version, shapes[i], cases[i], &v2[i]);
        }
        if (opt.bench) {
            printf("attention version %d (%s): timing\n", version, name);
            bench(version, {16, 1024, 32, 32, 64});   // 1b preset
            bench(version, {4, 4096, 32, 32, 128});   // 7b preset, long sequences
        }
    }
    return dev_finish();
}
