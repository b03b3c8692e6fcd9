/*
 * dev/cuda/dev_common.cuh: what the kernel development files in dev/cuda/ share: the command line
 * (--version, --no-bench, --no-validate, --cpu-selftest), the two versions of the memory-bound kernels,
 * random test data from the project's rng.h, host <-> device copies through floatX, the error check that
 * decides pass or fail, and a timing loop.
 *
 * Every file compares the kernels of kernels/ against a CPU reference written with the formulas of
 * train_llama.c, instantiated in double: the inputs are first rounded to floatX, so the GPU and the
 * reference see the same numbers and the measured error is the GPU's own rounding. Bounds are mostly
 * |gpu - ref| <= atol + rtol |ref| per element, with atol a multiple of the reference's RMS (an element's
 * error comes from rounding terms of the tensor's typical size, even where the element itself is small);
 * attention bounds each element by the sum of the magnitudes of its terms instead.
 */
#pragma once

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
#include "../../kernels/common.cuh"
#include "../../rng.h"

// Unit roundoff of floatX: bf16 keeps 8 significant bits (the implicit one and 7 stored), so rounding to
// nearest is off by at most 2^-8 relative; fp32 keeps 24 (2^-24).
#ifdef ENABLE_FP32
#define ROUNDING 5.96e-8
#else
#define ROUNDING 3.91e-3
#endif
// Relative error of fp32 arithmetic with sums of up to ~10^5 terms: a sequential fp32 sum of K terms is off
// by about 2^-24 sqrt(K / 2) of its scale (7.6e-6 for the lm_head's K = 32000), and the worst of ~10^5
// elements by ~4.5 times that; 1e-4 leaves a margin. It dominates in the fp32 build.
#define FP32_SUM 1e-4

// The bound for a result that went through `roundings` floatX roundings of its own size.
static double tolerance(double roundings) { return roundings * ROUNDING + FP32_SUM; }

typedef struct {
    unsigned versions;  // the versions asked for, bit N for version N (0: every version)
    int validate;  // run the checks against the CPU reference
    int bench;     // time the kernels
} DevOptions;

static int dev_failures = 0;

// Exit status: 0 when every check passed.
static int dev_finish(void) {
    if (dev_failures) printf("FAILED: %d check%s\n", dev_failures, dev_failures > 1 ? "s" : "");
    else printf("all checks passed\n");
    return dev_failures ? 1 : 0;
}

static void print_device(void) {
    int dev = 0;
    cudaDeviceProp prop;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaGetDeviceProperties(&prop, dev));
    printf("device: %s (sm_%d%d, %d SMs); precision %s\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
           PRECISION_NAME);
}

// The command line every kernel file takes. --cpu-selftest runs selftest (the CPU reference checked on its own)
// and exits with dev_finish's status, touching no GPU; otherwise the device is printed and the options returned.
static DevOptions dev_options(int argc, char **argv, int num_versions, const char *versions_help, void (*selftest)(void)) {
    DevOptions o = {0, 1, 1};
    int cpu_selftest = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);  // line by line into a pipe too: a run cut off by a timeout keeps what it printed
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--version") && i + 1 < argc) {  // N or a list N,M,...
            for (char *v = argv[++i], *end;; v = end + 1) {
                long n = strtol(v, &end, 10);
                if (end == v || n < 1 || n > num_versions || (*end && *end != ',')) {
                    fprintf(stderr, "error: --version must be a version 1..%d or a list of them (2,3), got %s\n", num_versions, argv[i]);
                    exit(1);
                }
                o.versions |= 1u << n;
                if (!*end) break;
            }
        } else if (!strcmp(argv[i], "--no-bench")) {
            o.bench = 0;
        } else if (!strcmp(argv[i], "--no-validate")) {
            o.validate = 0;
        } else if (!strcmp(argv[i], "--cpu-selftest")) {
            cpu_selftest = 1;
        } else {
            printf("usage: %s [--version N[,N...]] [--no-bench] [--no-validate] [--cpu-selftest]\n"
                   "  versions: %s\n"
                   "  --cpu-selftest checks the CPU reference against an independent formula; needs no GPU\n",
                   argv[0], versions_help);
            exit(strcmp(argv[i], "--help") ? 1 : 0);
        }
    }
    if (cpu_selftest) {
        selftest();
        exit(dev_finish());
    }
    print_device();
    return o;
}

static int dev_version_selected(const DevOptions *o, int v) { return o->versions == 0 || (o->versions >> v & 1); }

// The two versions of the memory-bound kernel files: the same kernels/ code with K = 1 everywhere
// (kernels_scalar) and as the trainer runs it (K = VEC where the sizes and pointers allow). Runs f() under
// each selected one.
#define VEC_VERSION_1 "one element per thread and access"
#define VEC_VERSION_2 "16-byte accesses where sizes allow"
#define VEC_VERSIONS "1 " VEC_VERSION_1 ", 2 the trainer's: " VEC_VERSION_2
template <typename F> static void for_each_vec_version(const DevOptions *o, F f) {
    for (int v = 1; v <= 2; v++) {
        if (!dev_version_selected(o, v)) continue;
        kernels_scalar = v == 1;
        printf("version %d: %s\n", v, v == 1 ? VEC_VERSION_1 : VEC_VERSION_2);
        f();
    }
    kernels_scalar = 0;
}

// ----------------------------------------------------------------------------------------------------
// Data

static float round_floatX(float x) { return to_float(from_float<floatX>(x)); }

// n values N(mean, std), rounded to floatX so that the device holds exactly these numbers.
static std::vector<float> random_normal(size_t n, double mean, double std, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, 0xDE7, 0, 0);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; i++) x[i] = round_floatX((float)(mean + std * rng_normal(&r)));
    return x;
}

// The bf16 neighbours below and above x (equal when x is a bf16 value).
static void bf16_neighbours(float x, float *lo, float *hi) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    uint32_t down = bits & 0xFFFF0000u, up = down + 0x10000u;
    float a, b;
    memcpy(&a, &down, 4);
    memcpy(&b, &up, 4);
    if (down == bits) b = a;
    *lo = fminf(a, b), *hi = fmaxf(a, b);  // negative numbers: truncation moves towards zero
}

static std::vector<int> random_ints(size_t n, int below, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, 0x1D5, 0, 0);
    std::vector<int> x(n);
    for (size_t i = 0; i < n; i++) x[i] = (int)rng_below(&r, (uint64_t)below);
    return x;
}

static std::vector<double> to_double(const std::vector<float> &x) { return std::vector<double>(x.begin(), x.end()); }

template <typename T> static T *device_alloc(size_t n) {
    T *d = NULL;
    cudaCheck(cudaMalloc(&d, sizeof(T) * (n ? n : 1)));
    return d;
}

// Copies h into the device buffer d (h.size() elements), converted to T.
template <typename T> static void upload_to(T *d, const std::vector<float> &h) {
    std::vector<T> tmp(h.size());
    for (size_t i = 0; i < h.size(); i++) tmp[i] = from_float<T>(h[i]);
    cudaCheck(cudaMemcpy(d, tmp.data(), sizeof(T) * h.size(), cudaMemcpyHostToDevice));
}

template <typename T> static T *upload(const std::vector<float> &h) {
    T *d = device_alloc<T>(h.size());
    upload_to(d, h);
    return d;
}

static int *upload_ints(const std::vector<int> &h) {
    int *d = device_alloc<int>(h.size());
    cudaCheck(cudaMemcpy(d, h.data(), sizeof(int) * h.size(), cudaMemcpyHostToDevice));
    return d;
}

template <typename T> static std::vector<float> download(const T *d, size_t n) {
    std::vector<T> tmp(n);
    cudaCheck(cudaMemcpy(tmp.data(), d, sizeof(T) * n, cudaMemcpyDeviceToHost));
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++) h[i] = to_float(tmp[i]);
    return h;
}

static double rms(const std::vector<double> &x) {
    double s = 0.0;
    for (double v : x) s += v * v;
    return x.empty() ? 0.0 : sqrt(s / x.size());
}

// ----------------------------------------------------------------------------------------------------
// Checks

// Passes when every |got[i] - want[i]| <= bound[i] (and nothing is NaN); prints the worst element.
static int check_bounds(const char *what, const std::vector<double> &got, const std::vector<double> &want,
                        const std::vector<double> &bound) {
    size_t worst = 0, bad = 0;
    double worst_ratio = -1.0, max_abs = 0.0;
    for (size_t i = 0; i < want.size(); i++) {
        double err = fabs(got[i] - want[i]), ratio = isnan(err) ? INFINITY : err / bound[i];
        if (!(err <= bound[i])) bad++;
        if (!(err <= max_abs)) max_abs = err;
        if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = i;
    }
    printf("    %-26s max |err| %.2e; worst [%zu] got % .6e want % .6e: %.2f of its bound %.1e  %s\n", what, max_abs,
           worst, want.empty() ? 0.0 : got[worst], want.empty() ? 0.0 : want[worst], worst_ratio,
           want.empty() ? 0.0 : bound[worst], bad ? "FAIL" : "ok");
    if (bad) {
        printf("    %zu of %zu elements out of bounds\n", bad, want.size());
        dev_failures++;
    }
    return bad == 0;
}

// The bound atol + rtol |want| for every element.
static int check_doubles(const char *what, const std::vector<double> &got, const std::vector<double> &want, double rtol,
                         double atol) {
    std::vector<double> bound(want.size());
    for (size_t i = 0; i < want.size(); i++) bound[i] = atol + rtol * fabs(want[i]);
    return check_bounds(what, got, want, bound);
}

static int check(const char *what, const std::vector<float> &got, const std::vector<double> &want, double rtol, double atol) {
    return check_doubles(what, to_double(got), want, rtol, atol);
}

// Central differences of f() with respect to every x[i] (double precision; small tensors only): the
// truncation error is O(h^2) and the cancellation error O(1e-16 |f| / h), both far below the self-tests' bounds.
template <typename F> static std::vector<double> finite_differences(std::vector<double> &x, F f) {
    const double h = 1e-5;
    std::vector<double> grad(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double fp = f();
        x[i] = x0 - h;
        double fm = f();
        x[i] = x0;
        grad[i] = (fp - fm) / (2.0 * h);
    }
    return grad;
}

// ----------------------------------------------------------------------------------------------------
// Timing: the average of `repeats` runs of f() after one warm-up, by CUDA events on the default stream.

template <typename F> static float time_ms(int repeats, F f) {
    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    f();
    cudaCheck(cudaEventRecord(start));
    for (int i = 0; i < repeats; i++) f();
    cudaCheck(cudaEventRecord(stop));
    cudaCheck(cudaEventSynchronize(stop));
    float ms = 0.0f;
    cudaCheck(cudaEventElapsedTime(&ms, start, stop));
    cudaCheck(cudaEventDestroy(start));
    cudaCheck(cudaEventDestroy(stop));
    return ms / repeats;
}
