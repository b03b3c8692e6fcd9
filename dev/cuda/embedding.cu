/*
 * dev/cuda/embedding.cu: the embedding lookup and its deterministic backward (kernels/embedding.cuh)
 * against the CPU reference, with heavily repeated tokens (small vocabulary) and sparse ones, then timed.
 *   make -C dev/cuda && dev/cuda/bin/embedding [--version 1|2] [--no-bench] [--cpu-selftest]
 */
#include "dev_common.cuh"
#include "../../kernels/embedding.cuh"
#include "../../common.h"

// The CPU reference: embedding_backward of train_llama.c in precision R (demb [V, C] += rows of dout).
template <typename R> static void embedding_backward_ref(R *demb, const R *dout, const int *tokens, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) demb[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

// The buckets' structure, and the gradient summed through them on the CPU, against the reference.
static void selftest(void) {
    const int N = 300, C = 5, V = 17;
    printf("embedding CPU reference self-test: embedding_buckets\n");
    std::vector<int> tokens = random_ints(N, V, 1);
    std::vector<int> buckets(3 * N + 1);
    int U = embedding_buckets(buckets.data(), tokens.data(), N);
    const int *order = buckets.data(), *start = order + N, *id = start + U + 1;
    int ok = start[0] == 0 && start[U] == N;
    std::vector<int> seen(N, 0);
    for (int u = 0; u < U; u++) {
        ok &= start[u] < start[u + 1] && (u == 0 || id[u - 1] < id[u]);
        for (int i = start[u]; i < start[u + 1]; i++) {
            ok &= tokens[order[i]] == id[u] && (i == start[u] || order[i - 1] < order[i]);
            seen[order[i]]++;
        }
    }
    for (int n = 0; n < N; n++) ok &= seen[n] == 1;
    printf("    %-26s %d distinct tokens, every position once, sorted by (token, position)  %s\n", "buckets", U, ok ? "ok" : "FAIL");
    dev_failures += !ok;
    std::vector<double> dout = to_double(random_normal((size_t)N * C, 0, 1, 2)), want((size_t)V * C, 0.0), got(want);
    embedding_backward_ref(want.data(), dout.data(), tokens.data(), N, C);
    for (int u = 0; u < U; u++)
        for (int c = 0; c < C; c++)
            for (int i = start[u]; i < start[u + 1]; i++) got[(size_t)id[u] * C + c] += dout[(size_t)order[i] * C + c];
    check_doubles("gradient through buckets", got, want, 1e-12, 1e-12);
}

static void validate(int N, int C, int V) {
    printf("  N %d, C %d, V %d\n", N, C, V);
    std::vector<int> tokens = random_ints(N, V, 70);
    std::vector<float> emb = random_normal((size_t)V * C, 0, 1, 71), dout = random_normal((size_t)N * C, 0, 1, 72);
    std::vector<float> demb0 = random_normal((size_t)V * C, 0, 1, 73);  // += target
    std::vector<double> out((size_t)N * C), demb = to_double(demb0), doutd = to_double(dout);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = emb[(size_t)tokens[n] * C + c];
    embedding_backward_ref(demb.data(), doutd.data(), tokens.data(), N, C);

    std::vector<int> buckets(3 * N + 1);
    int U = embedding_buckets(buckets.data(), tokens.data(), N);
    int *d_tokens = upload_ints(tokens), *d_buckets = upload_ints(buckets);
    floatX *d_emb = upload<floatX>(emb), *d_dout = upload<floatX>(dout), *d_demb = upload<floatX>(demb0);
    floatX *d_out = device_alloc<floatX>((size_t)N * C);
    embedding_forward(d_out, d_tokens, d_emb, N, C, 0);
    embedding_backward(d_demb, d_dout, d_buckets, U, N, C, 0);
    check("forward (exact copy)", download(d_out, out.size()), out, 0.0, 0.0);
    // fp32 sums of the repeats of each token, then one rounding of the updated row
    check("backward (+=)", download(d_demb, demb.size()), demb, tolerance(1), tolerance(1) * rms(demb));
    cudaCheck(cudaFree(d_tokens)), cudaCheck(cudaFree(d_buckets)), cudaCheck(cudaFree(d_emb));
    cudaCheck(cudaFree(d_dout)), cudaCheck(cudaFree(d_demb)), cudaCheck(cudaFree(d_out));
}

static void bench(int N, int C, int V) {
    std::vector<int> tokens = random_ints(N, V, 80);
    std::vector<int> buckets(3 * N + 1);
    double t0 = wall_time();
    int U = embedding_buckets(buckets.data(), tokens.data(), N);
    double host_ms = 1000.0 * (wall_time() - t0);
    int *d_tokens = upload_ints(tokens), *d_buckets = upload_ints(buckets);
    floatX *d_emb = upload<floatX>(random_normal((size_t)V * C, 0, 1, 81)), *d_out = device_alloc<floatX>((size_t)N * C);
    floatX *d_demb = device_alloc<floatX>((size_t)V * C);
    cudaCheck(cudaMemset(d_demb, 0, sizeof(floatX) * V * C));
    float ms_f = time_ms(20, [&] { embedding_forward(d_out, d_tokens, d_emb, N, C, 0); });
    float ms_b = time_ms(20, [&] { embedding_backward(d_demb, d_out, d_buckets, U, N, C, 0); });
    double bytes_f = 2.0 * sizeof(floatX) * N * C, bytes_b = sizeof(floatX) * ((double)N * C + 2.0 * U * C);
    printf("  N %d, C %d, V %d: forward %.3f ms (%.0f GB/s); backward %.3f ms (%.0f GB/s) + %.2f ms on the host for "
           "the buckets\n", N, C, V, ms_f, bytes_f / ms_f / 1e6, ms_b, bytes_b / ms_b / 1e6, host_ms);
    cudaCheck(cudaFree(d_tokens)), cudaCheck(cudaFree(d_buckets)), cudaCheck(cudaFree(d_emb)), cudaCheck(cudaFree(d_out));
    cudaCheck(cudaFree(d_demb));
}

int main(int argc, char **argv) {
    DevOptions opt = dev_options(argc, argv, 2, VEC_VERSIONS, selftest);
    if (opt.validate) {
        printf("embedding: validation against the CPU reference\n");
        for_each_vec_version(&opt, [] {
            validate(1000, 171, 13);     // every token repeated ~77 times
            validate(4096, 512, 32000);  // mostly distinct
            validate(37, 2048, 5);
        });
    }
    if (opt.bench) {
        printf("embedding: timing\n");
        for_each_vec_version(&opt, [] { bench(16 * 1024, 2048, 32000); });
    }
    return dev_finish();
}
