#!/usr/bin/env bash
# t_tokenizer_build.sh: tokenizer/tokenizer.h compiles without warnings as C (gnu11) and as C++ (and as CUDA
# where nvcc exists, since the GPU trainer includes it), and one loaded Tokenizer used by 4 threads at once
# gives the same encodings and decodings as one thread.
source test/lib.sh
dir=$TMP
cat > "$dir/threads.c" <<'C'
// Encodes and decodes every line of a text with one thread, then again with 4 threads at once (each thread
// taking every line in a different order), and compares.
#include "tokenizer/tokenizer.h"
#include <omp.h>
int main(int argc, char **argv) {
    if (argc != 3) fail("usage: threads FILE.model TEXT");
    Tokenizer tok;
    tokenizer_load(&tok, argv[1]);
    size_t len;
    char *text = file_read_all(argv[2], &len);
    enum { MAX_LINES = 50000 };
    static const char *line[MAX_LINES];
    static size_t line_len[MAX_LINES], n_ids[MAX_LINES];
    static int *ids[MAX_LINES];
    size_t n = 0;
    for (char *p = text; p < text + len && n < MAX_LINES; n++) {
        char *nl = (char *)memchr(p, '\n', (size_t)(text + len - p));
        line[n] = p;
        line_len[n] = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        p += line_len[n] + 1;
    }
    for (size_t i = 0; i < n; i++) ids[i] = tokenizer_encode(&tok, line[i], line_len[i], 1, 1, &n_ids[i]);
    int bad = 0;
    #pragma omp parallel num_threads(4) reduction(+ : bad)
    {
        size_t step = 2 * (size_t)omp_get_thread_num() + 1;   // each thread its own order through the lines
        for (size_t k = 0; k < n; k++) {
            size_t i = (k * step) % n, m, dlen;
            int *got = tokenizer_encode(&tok, line[i], line_len[i], 1, 1, &m);
            bad += m != n_ids[i] || memcmp(got, ids[i], m * sizeof(int)) != 0;
            char *back = tokenizer_decode(&tok, got, m, &dlen);
            bad += dlen != line_len[i] || memcmp(back, line[i], dlen) != 0;
            free(got);
            free(back);
        }
    }
    printf("%zu lines, 4 threads: %d differences\n", n, bad);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(text);
    tokenizer_free(&tok);
    return bad != 0;
}
C
warn="-Wall -Wextra -Werror -Wno-unused-function"
gcc -std=gnu11 $warn -O2 -fopenmp -I. -o "$dir/threads_c" "$dir/threads.c"
echo "compiles as C: ok"
cp "$dir/threads.c" "$dir/threads.cpp"
g++ -std=c++14 $warn -O2 -fopenmp -I. -o "$dir/threads_cpp" "$dir/threads.cpp"
echo "compiles as C++: ok"
if command -v nvcc > /dev/null; then
  printf '#include "tokenizer/tokenizer.h"\n__global__ void k(int *x) { x[0] = 1; }\nint main() { Tokenizer t; tokenizer_free(&t); return 0; }\n' > "$dir/cuda.cu"
  nvcc -I. -Xcompiler "$warn" -c -o "$dir/cuda.o" "$dir/cuda.cu"
  echo "compiles as CUDA: ok"
fi
[ -f "$DATA/llama2_tokenizer.model" ] && [ -f "$DATA/tinyshakespeare.txt" ] || {
  echo "SKIPPED: the thread-safety run needs $DATA/llama2_tokenizer.model and tinyshakespeare.txt (set GRASS_DATA)"; exit 77; }
"$dir/threads_c" "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt"
"$dir/threads_cpp" "$DATA/llama2_tokenizer.model" "$DATA/tinyshakespeare.txt"
