/*
 * dev/cuda/attention_ref.h: the CPU reference of attention for dev/cuda/attention.cu: train_llama.c's attention_forward and
 * attention_backward (the full [T, T] softmax) in double, plus the logsumexp rows the kernels store; the
 * backward in the kernels' formulation (from lse and D); and the checks of a kernel's results with their
 * error bounds. Include after dev_common.cuh.
 */
#pragma once

#include <math.h>
#include <vector>

typedef struct {
    int B, T, H, KV, hd;
} AttnShape;

static size_t attn_q_size(AttnShape s) { return (size_t)s.B * s.T * s.H * s.hd; }
static size_t attn_kv_size(AttnShape s) { return (size_t)s.B * s.T * s.KV * s.hd; }
static size_t attn_lse_size(AttnShape s) { return (size_t)s.B * s.H * s.T; }

// out [B, T, H, hd], lse [B, H, T], att [B, H, T, T]; q [B, T, H, hd]; k, v [B, T, KV, hd]
static void attention_forward_ref(double *out, double *lse, double *att, const double *q, const double *k, const double *v,
                                  AttnShape s) {
    int T = s.T, hd = s.hd, qd = s.H * hd, kvd = s.KV * hd, group = s.H / s.KV;
    double scale = 1.0 / sqrt((double)hd);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int t = 0; t < T; t++) {
                const double *qt = q + ((size_t)b * T + t) * qd + h * hd;
                const double *kb = k + (size_t)b * T * kvd + (h / group) * hd, *vb = v + (size_t)b * T * kvd + (h / group) * hd;
                double *row = att + (((size_t)b * s.H + h) * T + t) * T, mx = -INFINITY, sum = 0.0;
                for (int t2 = 0; t2 <= t; t2++) {
                    double dot = 0.0;
                    for (int i = 0; i < hd; i++) dot += qt[i] * kb[(size_t)t2 * kvd + i];
                    row[t2] = dot * scale;
                    mx = fmax(mx, row[t2]);
                }
                for (int t2 = 0; t2 <= t; t2++) sum += (row[t2] = exp(row[t2] - mx));
                for (int t2 = 0; t2 <= t; t2++) row[t2] /= sum;
                for (int t2 = t + 1; t2 < T; t2++) row[t2] = 0.0;
                lse[((size_t)b * s.H + h) * T + t] = mx + log(sum);
                double *ot = out + ((size_t)b * T + t) * qd + h * hd;
                for (int i = 0; i < hd; i++) ot[i] = 0.0;
                for (int t2 = 0; t2 <= t; t2++)
                    for (int i = 0; i < hd; i++) ot[i] += row[t2] * vb[(size_t)t2 * kvd + i];
            }
}

// dq [B, T, H, hd], dk, dv [B, T, KV, hd] += the gradients of sum(out * dout)
static void attention_backward_ref(double *dq, double *dk, double *dv, const double *dout, const double *att,
                                   const double *q, const double *k, const double *v, AttnShape s) {
    int T = s.T, hd = s.hd, qd = s.H * hd, kvd = s.KV * hd, group = s.H / s.KV;
    double scale = 1.0 / sqrt((double)hd);
    std::vector<double> datt(T);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int t = 0; t < T; t++) {
                const double *row = att + (((size_t)b * s.H + h) * T + t) * T;
                const double *dot = dout + ((size_t)b * T + t) * qd + h * hd, *qt = q + ((size_t)b * T + t) * qd + h * hd;
                double *dqt = dq + ((size_t)b * T + t) * qd + h * hd, sum = 0.0;
                size_t kvoff = (size_t)b * T * kvd + (h / group) * hd;
                for (int t2 = 0; t2 <= t; t2++) {
                    datt[t2] = 0.0;
                    for (int i = 0; i < hd; i++) datt[t2] += dot[i] * v[kvoff + (size_t)t2 * kvd + i];
                    sum += row[t2] * datt[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    double dpre = row[t2] * (datt[t2] - sum) * scale;
                    for (int i = 0; i < hd; i++) {
                        dqt[i] += dpre * k[kvoff + (size_t)t2 * kvd + i];
                        dk[kvoff + (size_t)t2 * kvd + i] += dpre * qt[i];
                        dv[kvoff + (size_t)t2 * kvd + i] += row[t2] * dot[i];
                    }
                }
            }
}

// The backward as the kernels compute it, in double: P = exp(q.k scale - lse) from the stored lse, and
// D = rowsum(dout * out) from the given out (the forward's output as the kernels see it, rounded to floatX).
// dq [B, T, H, hd], dk, dv [B, T, KV, hd] +=. mag: NULL, or [3] arrays shaped like dq, dk, dv that get
// += the sums of the magnitudes of the terms of each element, for its error bound; dS = P (dP - D) counts
// as P (|dP| + |D|), its size before the cancellation, which bounds both its bf16 rounding and the fp32
// error of the difference.
static void attention_backward_lse_ref(double *dq, double *dk, double *dv, double *const *mag, const double *dout,
                                       const double *out, const double *lse, const double *q, const double *k,
                                       const double *v, AttnShape s) {
    int T = s.T, hd = s.hd, qd = s.H * hd, kvd = s.KV * hd, group = s.H / s.KV;
    double scale = 1.0 / sqrt((double)hd);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int t = 0; t < T; t++) {
                size_t at = ((size_t)b * T + t) * qd + h * hd, kvoff = (size_t)b * T * kvd + (h / group) * hd;
                double L = lse[((size_t)b * s.H + h) * T + t], D = 0.0;
                for (int i = 0; i < hd; i++) D += dout[at + i] * out[at + i];
                for (int t2 = 0; t2 <= t; t2++) {
                    const double *kt = k + kvoff + (size_t)t2 * kvd, *vt = v + kvoff + (size_t)t2 * kvd;
                    double sdot = 0.0, dp = 0.0;
                    for (int i = 0; i < hd; i++) sdot += q[at + i] * kt[i], dp += dout[at + i] * vt[i];
                    double p = exp(sdot * scale - L), ds = p * (dp - D) * scale, ds_mag = p * (fabs(dp) + fabs(D)) * scale;
                    for (int i = 0; i < hd; i++) {
                        size_t kv_at = kvoff + (size_t)t2 * kvd + i;
                        dq[at + i] += ds * kt[i];
                        dk[kv_at] += ds * q[at + i];
                        dv[kv_at] += p * dout[at + i];
                        if (!mag) continue;
                        mag[0][at + i] += ds_mag * fabs(kt[i]);
                        mag[1][kv_at] += ds_mag * fabs(q[at + i]);
                        mag[2][kv_at] += fabs(p * dout[at + i]);
                    }
                }
            }
}

// Random inputs of a shape (rounded to floatX) and every reference output.
typedef struct {
    std::vector<float> q, k, v, dout;
    std::vector<double> out, lse, dq, dk, dv;
    std::vector<double> out_mag;  // sum over the keys of |p v|, per element of out
} AttnCase;

static AttnCase attention_case(AttnShape s, uint64_t seed) {
    AttnCase c;
    // q scaled up so that some rows attend sharply, as trained models do
    c.q = random_normal(attn_q_size(s), 0, 2, seed), c.k = random_normal(attn_kv_size(s), 0, 1, seed + 1);
    c.v = random_normal(attn_kv_size(s), 0, 1, seed + 2), c.dout = random_normal(attn_q_size(s), 0, 1, seed + 3);
    std::vector<double> q = to_double(c.q), k = to_double(c.k), v = to_double(c.v), dout = to_double(c.dout);
    std::vector<double> att((size_t)s.B * s.H * s.T * s.T);
    c.out.assign(q.size(), 0.0), c.lse.assign(attn_lse_size(s), 0.0);
    c.dq.assign(q.size(), 0.0), c.dk.assign(k.size(), 0.0), c.dv.assign(v.size(), 0.0);
    attention_forward_ref(c.out.data(), c.lse.data(), att.data(), q.data(), k.data(), v.data(), s);
    c.out_mag.assign(q.size(), 0.0);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++)
            for (int t = 0; t < s.T; t++)
                for (int t2 = 0; t2 <= t; t2++)
                    for (int i = 0; i < s.hd; i++)
                        c.out_mag[(((size_t)b * s.T + t) * s.H + h) * s.hd + i] +=
                            att[(((size_t)b * s.H + h) * s.T + t) * s.T + t2] *
                            fabs(v[(((size_t)b * s.T + t2) * s.KV + h / (s.H / s.KV)) * s.hd + i]);
    attention_backward_ref(c.dq.data(), c.dk.data(), c.dv.data(), dout.data(), att.data(), q.data(), k.data(), v.data(), s);
    return c;
}

// Where every term of a sum may carry one rounding (the tensor-core path rounds P and dS to bf16 before
// their products) and the result one more, the error is at most u (sum of |terms| + |result|), u the unit
// roundoff. The bound is twice that, with the fp32 arithmetic's share: any indexing mistake makes errors of
// the order of the terms themselves, hundreds of times more.
static std::vector<double> attention_bound(const std::vector<double> &ref, const std::vector<double> &mag) {
    std::vector<double> bound(ref.size());
    for (size_t i = 0; i < ref.size(); i++) bound[i] = 2.0 * (ROUNDING + FP32_SUM) * (fabs(ref[i]) + mag[i]) + 1e-30;
    return bound;
}

// The kernels' results against the reference: the forward against the exact one (lse: fp32 statistics of
// exact inputs); the backward against attention_backward_lse_ref given the kernel's own out, so that the
// bound measures the backward alone (from the exact out, D = rowsum(dout * out) would carry out's rounding,
// an error of every bf16 flash attention, into dS).
static void attention_check_case(const AttnCase &c, AttnShape s, const std::vector<float> &out, const std::vector<float> &lse,
                                 const std::vector<float> &dq, const std::vector<float> &dk, const std::vector<float> &dv) {
    check_bounds("out", to_double(out), c.out, attention_bound(c.out, c.out_mag));
    check("lse", lse, c.lse, FP32_SUM, FP32_SUM);
    std::vector<double> rq(c.dq.size(), 0.0), rk(c.dk.size(), 0.0), rv(c.dv.size(), 0.0);
    std::vector<double> mq(rq), mk(rk), mv(rv);
    double *mag[3] = {mq.data(), mk.data(), mv.data()};
    attention_backward_lse_ref(rq.data(), rk.data(), rv.data(), mag, to_double(c.dout).data(), to_double(out).data(),
                               c.lse.data(), to_double(c.q).data(), to_double(c.k).data(), to_double(c.v).data(), s);
    check_bounds("dq", to_double(dq), rq, attention_bound(rq, mq));
    check_bounds("dk", to_double(dk), rk, attention_bound(rk, mk));
    check_bounds("dv", to_double(dv), rv, attention_bound(rv, mv));
}
