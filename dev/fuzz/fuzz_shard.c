/*
 * fuzz_shard.c: libFuzzer harness of the token-shard reader (dataloader.h). The input's first 4 bytes pick the
 * batch shape (batch, seq, ranks, rank, vocabulary, shuffling); the rest, cut at FUZZ_SEPARATOR, is one to
 * three shard files, which shard_read_header checks one by one and dataloader_init opens as a glob; then a
 * few batches are read, past the end of the data so that the loader wraps into the next epoch.
 */
#include "fuzz_common.h"
#include "dataloader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    int B = 1 + data[0] % 4, T = 1 + data[1] % 16, world = 1 + data[2] % 3, rank = (data[3] & 0x7F) % world;
    int vocab = data[3] & 0x80 ? 70000 : 512, shuffle = data[2] >= 128;
    fuzz_clear();
    size_t pos = 4, len;
    const uint8_t *part;
    char path[1024], name[32];
    int nfiles = 0;
    while (nfiles < 3 && fuzz_next_part(data, size, &pos, &part, &len)) {
        snprintf(name, sizeof(name), "shard_%d.bin", nfiles++);
        fuzz_write(path, sizeof(path), name, part, len);
        int tok_bytes;
        FUZZ_TRY(shard_read_header(path, &tok_bytes));
    }
    char pattern[1024];
    fuzz_path(pattern, sizeof(pattern), "shard_*.bin");
    FUZZ_TRY({
        DataLoader dl;
        dataloader_init(&dl, pattern, "--train-data", B, T, rank, world, 1, vocab, shuffle, 1234);
        size_t batches = dataloader_num_batches(&dl);
        for (size_t i = 0; i < batches + 2 && i < 16; i++) dataloader_next_batch(&dl);
        dataloader_free(&dl);
    });
    return 0;
}
