/*
 * fuzz_state.c: libFuzzer harness of the trainer state reader (checkpoint.h): the input is a state.bin, loaded as
 * a resume does (checkpoint_load_state: the header's counters, enums and settings, every section's size and every
 * value: indices inside their matrices, moments finite, second moments >= 0, scales > 0) for a tiny fixed model, once
 * as an AdamW state and once as a Grass one. The seeds (dev/fuzz/corpus/state/adamw.bin, grass.bin) are the states
 * of that model after 2 steps of train_llama_cpu, with --model a config.json of the sizes below, a shard of vocabulary
 * 32, --batch 2 --seq 8 --steps 2 --warmup 1 and --optimizer adamw, or grass --grass-rank 2.
 */
#include "fuzz_common.h"
#include "checkpoint.h"

// The model and run of the seeds: dim 8, 1 layer, 2 heads, 1 kv head, ffn 16, vocab 32; --batch 2 --seq 8, defaults else.
static void fuzz_state_load(const char *dir, int grass) {
    LlamaConfig cfg = {8, 1, 2, 1, 16, 32, 16, 1e-6f, 10000.0f};
    TrainOptions opt;
    train_options_default(&opt);
    opt.batch = 2;
    opt.seq = 8;
    GrassPlan gp;
    grass_plan(&gp, &cfg, grass, "topr", "auto", 2, opt.grass_interval, opt.grass_alpha, (uint64_t)opt.seed);
    ParamLayout glay;
    llama_param_layout_of(&cfg, &glay, !grass);
    DataLoader position;
    memset(&position, 0, sizeof(position));
    StateHeader h = state_header_make(&opt, &cfg, &gp, 0, &position, 1, 1);
    void *none[STATE_TENSORS] = {NULL};
    StateSection sec[STATE_MAX_SECTIONS];
    int n = state_sections(&h, sec, glay.count, &gp, 0, 0, none);
    for (int i = STATE_HEADER_SECTIONS; i < n; i++) sec[i].data = calloc(sec[i].nbytes + 4, 1);  // sized by state_sections
    checkpoint_load_state(dir, &h, n, sec, NULL, &gp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024];
    fuzz_write(path, sizeof(path), "state.bin", data, size);
    FUZZ_TRY(fuzz_state_load(fuzz_dir(), 0));
    FUZZ_TRY(fuzz_state_load(fuzz_dir(), 1));
    return 0;
}
