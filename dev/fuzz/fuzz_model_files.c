/*
 * fuzz_model_files.c: libFuzzer harness of a model directory in Hugging Face's sharded form (checkpoint.h's
 * model_files_open, model_files_find, checkpoint_read_model). The input, cut at FUZZ_SEPARATOR, is
 * model.safetensors.index.json followed by the files s1.safetensors, s2.safetensors, ...; the weights read
 * are those of a tiny fixed model config (every tensor name and shape of a LLaMA checkpoint).
 */
#include "fuzz_common.h"
#include "checkpoint.h"

static void fuzz_take(void *ctx, int kind, int layer, const float *data, size_t n) {
    float *sum = (float *)ctx;
    for (size_t i = 0; i < n; i++) *sum += data[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const LlamaConfig cfg = {8, 1, 2, 1, 8, 16, 32, 1e-6f, 10000.0f};
    fuzz_clear();
    size_t pos = 0, len;
    const uint8_t *part;
    char path[1024], name[32];
    for (int i = 0; i < 5 && fuzz_next_part(data, size, &pos, &part, &len); i++) {
        if (i) snprintf(name, sizeof(name), "s%d.safetensors", i);
        else snprintf(name, sizeof(name), "model.safetensors.index.json");
        fuzz_write(path, sizeof(path), name, part, len);
    }
    FUZZ_TRY({
        ModelFiles mf;
        model_files_open(&mf, fuzz_dir());
        model_files_find(&mf, "model.norm.weight");
        model_files_close(&mf);
    });
    FUZZ_TRY({
        float sum = 0;
        checkpoint_read_model(fuzz_dir(), &cfg, fuzz_take, &sum);
    });
    return 0;
}
