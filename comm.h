/*
 * comm.h: data-parallel communication on the host (DESIGN §5), shared by both trainers: MPI start-up, rank,
 * world size and node-local rank, sums and means across ranks of host buffers, and making every rank exit
 * when one fails (so a failed rank never leaves the others hanging in a collective). Built without USE_MPI
 * it is a world of one rank and every collective is the identity, so the same code runs everywhere.
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
} Comm;

static const Comm comm_solo = {0, 1, 0};  // a world of one, for code run outside a trainer (tests)

#ifdef USE_MPI
static void comm_abort(int status) { MPI_Abort(MPI_COMM_WORLD, status); }

static void comm_check(int rc, const char *what) {
    if (rc != MPI_SUCCESS) fail("MPI %s failed (error %d)", what, rc);
}
#endif

static void comm_init(Comm *c, int *argc, char ***argv) {
    c->rank = 0;
    c->world = 1;
    c->local_rank = 0;
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
    const size_t chunk = (size_t)1 << 30;  // MPI counts are int
    for (size_t i = 0; i < n; i += chunk) {
        int cnt = (int)(n - i < chunk ? n - i : chunk);
        comm_check(MPI_Allreduce(MPI_IN_PLACE, buf + i, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
    }
    for (size_t i = 0; i < n; i++) buf[i] /= (float)c->world;
#endif
}

// The mean over ranks of a double.
static double comm_mean_f64(const Comm *c, double v) {
#ifdef USE_MPI
    if (c->world > 1) {
        comm_check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "all-reduce");
        v /= c->world;
    }
#endif
    return v;
}

static void comm_barrier(const Comm *c) {
#ifdef USE_MPI
    if (c->world > 1) comm_check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
}

#endif
