/*
 * train_guard.h: what keeps a long run's work safe, shared by both trainers so that every trainer and every MPI rank
 * takes the same decisions (docs/faults.md):
 *   - stop signals: SIGTERM, SIGINT and SIGUSR1 (what Slurm sends ahead of a time limit with --signal) let the
 *     current step finish; then the run saves a checkpoint (with --out) and exits with EXIT_INTERRUPTED, so that
 *     rerunning the same command with --resume auto continues it. A second signal exits at once. Ranks agree
 *     through a collective after every step, since a signal may reach one rank only;
 *   - a step whose loss or global gradient norm is not finite: its update is skipped (up to --skip-nonfinite such
 *     steps), else the run stops with EXIT_DIVERGED naming the step and the last good checkpoint. Both numbers
 *     are the same on every rank (means over the ranks), so every rank decides alike;
 *   - SIGXFSZ is ignored, so that a file-size limit makes a write fail with a message (EFBIG) instead of killing
 *     the run without a word.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_TRAIN_GUARD_H
#define GRASS_TRAIN_GUARD_H

#include <math.h>
#include <signal.h>
#include <unistd.h>
#include "checkpoint.h"
#include "comm.h"
#include "logger.h"
#include "train_config.h"

static volatile sig_atomic_t guard_signal = 0;  // the first stop signal received, 0 for none

static void guard_on_signal(int sig) {
    if (guard_signal) _exit(128 + sig);
    guard_signal = sig;
    static const char msg[] = "signal received: stopping after this step (with a checkpoint when --out is set); "
                              "a second signal stops at once\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)ignored;
}

static void guard_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = guard_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN);
}

// After every step, on every rank: whether any rank received a stop signal.
static int guard_stop_requested(const Comm *c) { return comm_min_int(c, guard_signal ? 0 : 1, "the stop-signal check") == 0; }

// Whether a run stopped by a signal after step `done` saves a checkpoint of it: with --out, unless --ckpt-every -1.
static int guard_saves(const TrainOptions *opt) { return opt->out[0] && opt->ckpt_every >= 0; }

// Ends a run stopped by a signal after step `done`, once the trainer has saved the checkpoint of `done` (when
// guard_saves; the schedule may have written it already).
static void guard_exit_interrupted(Comm *c, const TrainOptions *opt, int done) {
    if (guard_saves(opt)) printf("stopped by a signal after step %d: checkpoint %s/ckpt_%08d; rerun the same command with --resume auto to continue\n",
                      done, opt->out, done);
    else printf("stopped by a signal after step %d: nothing saved (%s)\n", done,
                opt->out[0] ? "--ckpt-every -1" : "no --out");
    fflush(stdout);
    comm_finalize(c);
    exit(EXIT_INTERRUPTED);
}

// The step `done` (1-based) had this loss and gradient norm: returns 1 when its update may be applied, 0 when it is
// skipped (--skip-nonfinite: counted in *skipped and logged); stops the run when it cannot go on.
static int guard_step_finite(const TrainOptions *opt, Logger *log, int *skipped, int done, double loss, float norm) {
    if (isfinite(loss) && isfinite(norm)) return 1;
    const char *what = !isfinite(loss) ? "the loss" : "the gradient norm";
    double value = !isfinite(loss) ? loss : norm;
    if (isnan(value)) value = NAN;  // printed as nan, whatever the sign bit
    if (*skipped < opt->skip_nonfinite) {
        logger_skip(log, done, opt->steps, what, value, ++*skipped, opt->skip_nonfinite);
        return 0;
    }
    char last[CKPT_PATH_LEN];
    checkpoint_last_good(opt->out, last, sizeof(last));
    fail_status(EXIT_DIVERGED, "step %d: %s is %g: training diverged%s; the last good checkpoint is %s (resume from it with a lower --lr, "
                "a --grad-clip, or --skip-nonfinite N)", done, what, value, *skipped ? " (after the skips --skip-nonfinite allows)" : "", last);
}

#endif
