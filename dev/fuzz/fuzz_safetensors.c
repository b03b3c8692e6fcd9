/*
 * fuzz_safetensors.c: libFuzzer harness of the safetensors reader (safetensors.h): the input is one
 * .safetensors file; safetensors_open parses and checks its header, then every tensor is checked against its
 * own shape and read (as fp32, or as int32 for I32), and the metadata is looked up.
 */
#include "fuzz_common.h"
#include "safetensors.h"

// Reads every tensor of an open file the way the trainers do.
static void fuzz_read_all(const SafeTensors *st) {
    safetensors_meta(st, "format");
    for (int i = 0; i < st->n; i++) {
        const StEntry *e = &st->entries[i];
        size_t numel = st_numel(e->ndim, e->shape);
        if (numel > (1u << 24)) continue;  // the file's size bounds real tensors; skip what only claims more
        if (e->ndim == 2) safetensors_check_shape(st, e->name, e->shape[0], e->shape[1]);
        else if (e->ndim == 1) safetensors_check_shape(st, e->name, e->shape[0], 1);
        if (!strcmp(e->dtype, "I32")) {
            int32_t *dst = (int32_t *)xmalloc(numel * sizeof(int32_t));
            safetensors_read_i32(st, e->name, dst, numel);
            free(dst);
        } else {
            float *dst = (float *)xmalloc(numel * sizeof(float));
            safetensors_read_f32(st, e->name, dst, numel);
            free(dst);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024];
    fuzz_write(path, sizeof(path), "model.safetensors", data, size);
    FUZZ_TRY({
        SafeTensors st;
        safetensors_open(&st, path);
        fuzz_read_all(&st);
        safetensors_close(&st);
    });
    return 0;
}
