/*
 * rng.h: the project's one pseudo-random generator, SplitMix64 seeding xoshiro256**, on the host. Every
 * random choice (weight init, data shuffling, sampling, Grass selection) draws from a stream keyed by a
 * tuple of integers, so CPU, GPU, every MPI rank and the PyTorch reference get the same numbers without
 * sharing state. Plain C that also compiles as C++.
 */
#ifndef GRASS_RNG_H
#define GRASS_RNG_H

#include <math.h>
#include <stdint.h>

// The trainers' streams: the first key word (a of rng_init) says what a stream draws for, the other two where.
// The values are part of every result and of every checkpoint a run resumes from: they never change.
// dev/reference/grass_ref.py reads RNG_STREAM_GRASS from this file.
#define RNG_STREAM_INIT 0x1417      // weight init (llama_config.h): (layer << 8 | kind, chunk)
#define RNG_STREAM_DATA 0xDA7A      // data order (dataloader.h): (epoch, 0) the shards, (epoch, shard + 1) its windows
#define RNG_STREAM_SAMPLE 0x5A3B    // text samples (train_setup.h): (step, 0)
#define RNG_STREAM_ROUNDING 0xADA3  // the GPU optimizer's stochastic rounding (llama_model.cuh): (step, tensor)
#define RNG_STREAM_GRASS 0x67A55    // Grass selection (grass.h): (refresh number, layer * NUM_PARAM_KINDS + kind)

typedef struct {
    uint64_t s[4];
} Rng;

static uint64_t splitmix64_next(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// A stream keyed by (seed, a, b, c): the key words are folded through SplitMix64, whose output then fills
// the xoshiro256** state.
static void rng_init(Rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x = seed;
    uint64_t key[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        x = splitmix64_next(&x) ^ key[i];
    }
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64_next(&x);
}

static uint64_t rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

// Uniform double in [0, 1) with 53 random bits.
static double rng_uniform(Rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

// Uniform integer in [0, n) without modulo bias (rejection).
static uint64_t rng_below(Rng *r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_next(r); while (x >= limit);
    return x % n;
}

// Standard normal by Box-Muller (one value per call; simple beats fast here: test data and sampling).
static double rng_normal(Rng *r) {
    double u1 = 1.0 - rng_uniform(r);  // (0, 1]
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

// Two independent standard normals from one Box-Muller draw (the cosine and the sine of the same angle), for
// weight init, where a 13b model takes 13e9 of them.
static void rng_normal2(Rng *r, double z[2]) {
    double u1 = 1.0 - rng_uniform(r);  // (0, 1]
    double u2 = rng_uniform(r);
    double radius = sqrt(-2.0 * log(u1)), angle = 6.283185307179586 * u2;
    z[0] = radius * cos(angle);
    z[1] = radius * sin(angle);
}

// Fisher-Yates shuffle of perm[0..n) filled with 0..n-1.
static void rng_permutation(Rng *r, int *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

#endif
