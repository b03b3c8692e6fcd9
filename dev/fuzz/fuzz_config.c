/*
 * fuzz_config.c: libFuzzer harness of config.json reading (llama_config.h): the input is a config.json.
 * What llama_config_read_json accepts must survive a round trip: written back with llama_config_write_json
 * (as every checkpoint does) and read again, it must be accepted and give the same config.
 */
#include "fuzz_common.h"
#include "llama_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024], again[1024];
    fuzz_write(path, sizeof(path), "config.json", data, size);
    fuzz_path(again, sizeof(again), "config_written.json");
    LlamaConfig c, d;
    int read = 0;
    FUZZ_TRY({
        llama_config_read_json(&c, path);
        read = 1;
    });
    if (!read) return 0;
    int reread = 0;
    FUZZ_TRY({
        llama_config_write_json(&c, again, "float32");
        llama_config_read_json(&d, again);
        reread = 1;
    });
    if (!reread || !llama_config_equal(&c, &d)) abort();  // a config accepted once must read back the same
    return 0;
}
