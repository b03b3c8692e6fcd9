/*
 * dev/cuda/swiglu.cu: the SwiGLU activation forward and backward (kernels/swiglu.cuh) against the CPU
 * reference, out of place and in place, on odd sizes, then timed.
 *   make -C dev/cuda && dev/cuda/bin/swiglu [--version 1|2] [--no-bench] [--cpu-selftest]
 */
#include "dev_common.cuh"
#include "../../kernels/swiglu.cuh"

// The CPU reference: swiglu_forward/swiglu_backward of train_llama.c in precision R.
template <typename R> static void swiglu_forward_ref(R *out, const R *gate, const R *up, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1 + exp(-gate[i])) * up[i];
}

template <typename R>
static void swiglu_backward_ref(R *dgate, R *dup, const R *dout, const R *gate, const R *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        R g = gate[i], sig = 1 / (1 + exp(-g));
        dgate[i] = dout[i] * up[i] * sig * (1 + g * (1 - sig));
        dup[i] = dout[i] * g * sig;
    }
}

// The reference backward against finite differences of the forward, for L = sum(out * dout).
static void selftest(void) {
    const size_t n = 40;
    printf("swiglu CPU reference self-test: backward vs finite differences\n");
    std::vector<double> gate = to_double(random_normal(n, 0, 3, 1)), up = to_double(random_normal(n, 0, 1, 2));
    std::vector<double> dout = to_double(random_normal(n, 0, 1, 3)), out(n), dgate(n), dup(n);
    auto loss = [&]() {
        swiglu_forward_ref(out.data(), gate.data(), up.data(), n);
        double s = 0;
        for (size_t i = 0; i < n; i++) s += out[i] * dout[i];
        return s;
    };
    std::vector<double> fd_gate = finite_differences(gate, loss), fd_up = finite_differences(up, loss);
    swiglu_backward_ref(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n);
    check_doubles("dgate", dgate, fd_gate, 1e-6, 1e-8);
    check_doubles("dup", dup, fd_up, 1e-6, 1e-8);
}

static void validate(int N, int F) {
    size_t n = (size_t)N * F;
    printf("  N %d, ffn %d\n", N, F);
    std::vector<float> gate = random_normal(n, 0, 2, 50), up = random_normal(n, 0, 1, 51), dout = random_normal(n, 0, 1, 52);
    std::vector<double> gd = to_double(gate), ud = to_double(up), dd = to_double(dout), out(n), dgate(n), dup(n);
    swiglu_forward_ref(out.data(), gd.data(), ud.data(), n);
    swiglu_backward_ref(dgate.data(), dup.data(), dd.data(), gd.data(), ud.data(), n);

    floatX *d_gate = upload<floatX>(gate), *d_up = upload<floatX>(up), *d_dout = upload<floatX>(dout);
    floatX *d_out = device_alloc<floatX>(n), *d_dgate = device_alloc<floatX>(n), *d_dup = device_alloc<floatX>(n);
    swiglu_forward(d_out, d_gate, d_up, n, 0);
    swiglu_backward(d_dgate, d_dup, d_dout, d_gate, d_up, n, 0);
    // fp32 math per element (the GPU's expf is within 2 ulp), then one rounding to floatX
    check("out", download(d_out, n), out, tolerance(1), tolerance(1) * rms(out));
    check("dgate", download(d_dgate, n), dgate, tolerance(1), tolerance(1) * rms(dgate));
    check("dup", download(d_dup, n), dup, tolerance(1), tolerance(1) * rms(dup));
    swiglu_backward(d_gate, d_up, d_dout, d_gate, d_up, n, 0);  // in place
    check("dgate in place", download(d_gate, n), dgate, tolerance(1), tolerance(1) * rms(dgate));
    check("dup in place", download(d_up, n), dup, tolerance(1), tolerance(1) * rms(dup));
    cudaCheck(cudaFree(d_gate)), cudaCheck(cudaFree(d_up)), cudaCheck(cudaFree(d_dout)), cudaCheck(cudaFree(d_out));
    cudaCheck(cudaFree(d_dgate)), cudaCheck(cudaFree(d_dup));
}

static void bench(int N, int F) {
    size_t n = (size_t)N * F;
    floatX *d_gate = upload<floatX>(random_normal(n, 0, 2, 60)), *d_up = upload<floatX>(random_normal(n, 0, 1, 61));
    floatX *d_out = device_alloc<floatX>(n), *d_dgate = device_alloc<floatX>(n), *d_dup = device_alloc<floatX>(n);
    float ms_f = time_ms(20, [&] { swiglu_forward(d_out, d_gate, d_up, n, 0); });
    float ms_b = time_ms(20, [&] { swiglu_backward(d_dgate, d_dup, d_out, d_gate, d_up, n, 0); });
    printf("  N %d, ffn %d: forward %.3f ms (%.0f GB/s), backward %.3f ms (%.0f GB/s)\n", N, F, ms_f,
           3.0 * sizeof(floatX) * n / ms_f / 1e6, ms_b, 5.0 * sizeof(floatX) * n / ms_b / 1e6);
    cudaCheck(cudaFree(d_gate)), cudaCheck(cudaFree(d_up)), cudaCheck(cudaFree(d_out)), cudaCheck(cudaFree(d_dgate));
    cudaCheck(cudaFree(d_dup));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, VEC_VERSIONS, selftest);
    if (opt.validate) {
        printf("swiglu: validation against the CPU reference\n");
        for_each_vec_version(&opt, [] {
            validate(37, 5461);
            validate(100, 172);
            validate(1024, 1376);
        });
    }
    if (opt.bench) {
        printf("swiglu: timing (1b preset, 16K tokens; ffn stored padded to 5464 as in the trainer)\n");
        for_each_vec_version(&opt, [] { bench(16 * 1024, 5464); });
    }
    return dev_finish();
}
