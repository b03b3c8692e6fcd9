/*
 * comm.h: data-parallel communication on the host (docs/design.md §7), shared by both trainers: MPI start-up, rank,
 * world size and node-local rank, sums and means across ranks of host buffers, the check that every rank
 * holds the same values (options, model, data) before they train together, and making every rank exit when
 * one fails (so a failed rank never leaves the others hanging in a collective). Every collective is
 * non-blocking underneath and watched: a rank that waits longer than --comm-timeout (a peer stopped, hung or
 * lost) ends the whole job with one line naming the collective and the step. Built without USE_MPI it is a
 * world of one rank and every collective is the identity, so the same code runs everywhere.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_COMM_H
#define GRASS_COMM_H

#include "common.h"
#ifdef USE_MPI
#include <mpi.h>
#endif

typedef struct {
    int rank, world;  // this process and the number of processes
    int local_rank;   // rank among the processes of this node (picks the GPU)
    double timeout;   // seconds a rank waits in a collective before it ends the job (--comm-timeout; 0: no limit)
    int step;         // the optimizer step under way (1-based; 0 before the first), named when a collective times out
} Comm;

static const Comm comm_solo = {0, 1, 0, 0.0, 0};  // a world of one, for code run outside a trainer (tests)

// What a step's collectives move, by category (the log's comm_*_mib): the gradients (all-reduced, or reduce-scattered
// with --shard-optimizer), the updated weights and Grass's updates U (all-gathered with --shard-optimizer), and at a
// Grass refresh the projections' full gradients (all-reduced one matrix at a time).
enum { COMM_GRADS, COMM_WEIGHTS, COMM_UPDATES, COMM_REFRESH, COMM_CATEGORIES };
static const char *const comm_category_names[COMM_CATEGORIES] = {"grads", "weights", "updates", "refresh"};

// Prints a trainer's bytes of one step's collectives by category (bytes[COMM_CATEGORIES]) for `ranks` ranks, what is
// sharded (`sharded`: "" for nothing) and the gradients summed in `dtype`.
static void comm_bytes_print(const char *who, int ranks, const char *sharded, const char *dtype, const double *bytes) {
    printf("collectives per step and rank (%s, %d ranks%s%s, gradients in %s):", who, ranks, *sharded ? ", " : "", sharded, dtype);
    for (int i = 0; i < COMM_CATEGORIES; i++)
        printf(" %s %.0f bytes%s", comm_category_names[i], bytes[i], i == COMM_REFRESH ? " (refresh steps)" : i + 1 < COMM_CATEGORIES ? "," : "");
    printf("\n");
}

// Called when a collective timed out, before the job is ended: comm_gpu.cuh sets it to abort the NCCL
// communicator, whose kernels would otherwise wait on the device for the missing rank.
static void (*comm_timeout_hook)(void) = NULL;

// Ends the job (every rank, through fail_hook) because `what`, a collective, has waited past --comm-timeout.
static void comm_timed_out(const Comm *c, const char *what) __attribute__((noreturn));
static void comm_timed_out(const Comm *c, const char *what) {
    if (comm_timeout_hook) comm_timeout_hook();
    char when[48];
    if (c->step > 0) snprintf(when, sizeof(when), "in step %d", c->step);
    else snprintf(when, sizeof(when), "before the first step");
    fail_status(EXIT_COMM_TIMEOUT, "rank %d waited %g s (--comm-timeout) in %s %s: another rank is stopped, hung or gone; ending the job",
                c->rank, c->timeout, what, when);
}

// One pause between two polls of a collective that began at `start` (wall_time): past --comm-timeout it ends
// the job; otherwise it spins for the first 10 ms, as a blocking collective would (a collective about to
// complete pays no sleep), then sleeps 100 us a poll, so that a rank waiting on a slow peer leaves its core.
static void comm_pause(const Comm *c, double start, const char *what) {
    double waited = wall_time() - start;
    if (c->timeout > 0 && waited > c->timeout) comm_timed_out(c, what);
    if (waited > 0.01) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

#ifdef USE_MPI
static void comm_abort(int status) { MPI_Abort(MPI_COMM_WORLD, status); }

static void comm_check(int rc, const char *what) {
    if (rc != MPI_SUCCESS) fail("MPI %s failed (error %d)", what, rc);
}

// Completes the non-blocking collective *req, `what` in errors, polling it under the watchdog.
static void comm_wait(const Comm *c, MPI_Request *req, const char *what) {
    double start = wall_time();
    for (;;) {
        int done = 0;
        comm_check(MPI_Test(req, &done, MPI_STATUS_IGNORE), what);
        if (done) return;
        comm_pause(c, start, what);
    }
}
#endif

static void comm_init(Comm *c, int *argc, char ***argv) {
    *c = comm_solo;
#ifdef USE_MPI
    comm_check(MPI_Init(argc, argv), "init");
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->world);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_free(&local);
    if (c->world > 1) fail_hook = comm_abort;  // from now on an error on any rank ends every rank
#endif
}

static void comm_finalize(Comm *c) {
#ifdef USE_MPI
    fail_hook = NULL;
    MPI_Finalize();
#endif
}

// buf[0..n) = the mean over ranks of buf (in place). Every rank gets the same bits.
static void comm_mean_f32(const Comm *c, float *buf, size_t n) {
#ifdef USE_MPI
    if (c->world == 1) return;
    char what[64];
    snprintf(what, sizeof(what), "an all-reduce of %zu floats", n);
    const size_t chunk = (size_t)1 << 30;  // MPI counts are int
    for (size_t i = 0; i < n; i += chunk) {
        int cnt = (int)(n - i < chunk ? n - i : chunk);
        MPI_Request req;
        comm_check(MPI_Iallreduce(MPI_IN_PLACE, buf + i, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req), what);
        comm_wait(c, &req, what);
    }
    for (size_t i = 0; i < n; i++) buf[i] /= (float)c->world;
#endif
}

// recv[0..slot) = the mean over ranks of elements [rank slot, (rank + 1) slot) of every rank's send [world x slot]:
// a reduce-scatter, with comm_mean_f32's sum-then-divide (docs/design.md §7, --shard-optimizer).
static void comm_reduce_scatter_mean_f32(const Comm *c, const float *send, float *recv, size_t slot) {
    if (c->world == 1) {
        if (recv != send) memmove(recv, send, sizeof(float) * slot);
        return;
    }
#ifdef USE_MPI
    if (slot > (size_t)INT32_MAX) fail("a reduce-scatter of %zu floats a rank: more than MPI's int count allows; lower --bucket-mb", slot);
    char what[64];
    snprintf(what, sizeof(what), "a reduce-scatter of %zu floats", slot * c->world);
    MPI_Request req;
    comm_check(MPI_Ireduce_scatter_block(send, recv, (int)slot, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req), what);
    comm_wait(c, &req, what);
    for (size_t i = 0; i < slot; i++) recv[i] /= (float)c->world;
#endif
}

// buf [world x slot] = every rank's slot [rank slot, (rank + 1) slot) of its buf, in place: an all-gather of bytes.
static void comm_allgather(const Comm *c, void *buf, size_t slot_bytes) {
#ifdef USE_MPI
    if (c->world == 1) return;
    if (slot_bytes > (size_t)INT32_MAX) fail("an all-gather of %zu bytes a rank: more than MPI's int count allows; lower --bucket-mb", slot_bytes);
    char what[64];
    snprintf(what, sizeof(what), "an all-gather of %zu bytes", slot_bytes * c->world);
    MPI_Request req;
    comm_check(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, (int)slot_bytes, MPI_BYTE, MPI_COMM_WORLD, &req), what);
    comm_wait(c, &req, what);
#endif
}

// full [sum of counts] on rank 0 = every rank's part [counts[rank] bytes] in rank order (full is unused elsewhere):
// a gather, for a checkpoint of state the ranks hold in parts.
static void comm_gather(const Comm *c, const void *part, void *full, const size_t *counts) {
    if (c->world == 1) {
        if (counts[0]) memmove(full, part, counts[0]);
        return;
    }
#ifdef USE_MPI
    int *cnt = (int *)xmalloc(sizeof(int) * c->world), *at = (int *)xmalloc(sizeof(int) * c->world);
    size_t total = 0;
    for (int r = 0; r < c->world; r++) {
        if (counts[r] > (size_t)INT32_MAX || total > (size_t)INT32_MAX) fail("a gather of %zu bytes: more than MPI's int counts allow", total + counts[r]);
        cnt[r] = (int)counts[r];
        at[r] = (int)total;
        total += counts[r];
    }
    MPI_Request req;
    comm_check(MPI_Igatherv(part, cnt[c->rank], MPI_BYTE, full, cnt, at, MPI_BYTE, 0, MPI_COMM_WORLD, &req), "a gather of state");
    comm_wait(c, &req, "a gather of state");
    free(cnt);
    free(at);
#endif
}

// The sum over ranks of a double (`what` in errors): a sum of squares that each rank took over its own part, a loss.
static double comm_sum_f64(const Comm *c, double v, const char *what) {
#ifdef USE_MPI
    if (c->world > 1) {
        MPI_Request req;
        comm_check(MPI_Iallreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &req), what);
        comm_wait(c, &req, what);
    }
#endif
    return v;
}

// The mean over ranks of a double (the trainers': a loss).
static double comm_mean_f64(const Comm *c, double v) { return comm_sum_f64(c, v, "an all-reduce of the loss") / c->world; }

// The smallest of every rank's v.
static int comm_min_int(const Comm *c, int v, const char *what) {
#ifdef USE_MPI
    if (c->world > 1) {
        MPI_Request req;
        comm_check(MPI_Iallreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD, &req), what);
        comm_wait(c, &req, what);
    }
#endif
    return v;
}

// buf[0..bytes) = rank 0's bytes on every rank.
static void comm_bcast(const Comm *c, void *buf, size_t bytes, const char *what) {
#ifdef USE_MPI
    if (c->world == 1) return;
    const size_t chunk = (size_t)1 << 30;  // MPI counts are int
    for (size_t i = 0; i < bytes; i += chunk) {
        MPI_Request req;
        int cnt = (int)(bytes - i < chunk ? bytes - i : chunk);
        comm_check(MPI_Ibcast((char *)buf + i, cnt, MPI_BYTE, 0, MPI_COMM_WORLD, &req), what);
        comm_wait(c, &req, what);
    }
#endif
}

static void comm_barrier(const Comm *c) {
#ifdef USE_MPI
    if (c->world == 1) return;
    MPI_Request req;
    comm_check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "a barrier");
    comm_wait(c, &req, "a barrier");
#endif
}

// Checks that every rank holds rank 0's values[0..n) (text, each named by names[i]), which the ranks must
// share to train together. The lowest rank holding a different value ends the job with one line: `what`
// differ between the ranks, the first differing item's name, rank 0's value and its own, then `hint`; the
// others wait in a barrier for the end. A world of one has nothing to compare.
static void comm_agree(const Comm *c, const char *what, int n, const char *const *names, const char *const *values,
                       const char *hint) {
    if (c->world == 1) return;
    uint64_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(values[i]) + 1;
    comm_bcast(c, &len, sizeof(len), "a broadcast of rank 0's values to compare");
    char *ref = (char *)xmalloc(len + 1);
    if (c->rank == 0) {
        char *p = ref;
        for (int i = 0; i < n; i++) p += sprintf(p, "%s", values[i]) + 1;
    }
    comm_bcast(c, ref, len, "a broadcast of rank 0's values to compare");
    ref[len] = '\0';  // rank 0 may hold fewer items: past its last, its value is read as ""
    int differs = -1;
    const char *p = ref;
    for (int i = 0; i < n && differs < 0; i++) {
        if (strcmp(p, values[i])) differs = i;
        else if (p < ref + len) p += strlen(p) + 1;
    }
    int first = comm_min_int(c, differs >= 0 ? c->rank : c->world, "an all-reduce of which ranks differ");
    if (first == c->rank)
        fail("%s differ between the ranks: %s: rank 0 has %s, rank %d has %s%s", what, names[differs], *p ? p : "nothing",
             c->rank, values[differs], hint);
    if (first < c->world) comm_barrier(c);  // never completes: rank `first` ends the job
    free(ref);
}

#endif
