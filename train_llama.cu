/*
 * train_llama.cu: the GPU trainer (binary train_llama): command line, set-up, training loop, evaluation,
 * sampling and checkpoints around the model of llama_model.cuh. It shares every host-side fact with the CPU
 * trainer train_llama.c (options, presets, shards, checkpoints, logging, the initial weights), so both accept
 * the same flags and read and write the same files: a checkpoint of one resumes in the other.
 *
 * Data parallelism: one process per GPU under mpirun (the GPU chosen by node-local rank), gradients averaged
 * with NCCL or, with --comm mpi, through host memory; rank 0 writes the checkpoints.
 */
#include <math.h>
#include "common.h"
#include "comm.h"
#include "checkpoint.h"
#include "dataloader.h"
#include "comm_gpu.cuh"
#include "llama_model.cuh"
#include "logger.h"
#include "train_config.h"
#include "train_setup.h"

// The mean loss of `batches` validation batches, each of a step's tokens (val->accum micro-batches on every rank).
static float gpu_evaluate(GpuLlama *m, const Comm *comm, DataLoader *val, int batches) {
    dataloader_reset(val);
    double sum = 0.0;
    batches *= val->accum;
    for (int i = 0; i < batches; i++) {
        dataloader_next_batch(val);
        gpu_set_batch(m, val->inputs, val->targets, 0);
        sum += gpu_forward(m, 0.0f);
    }
    return (float)comm_mean_f64(comm, sum / batches);
}

// Generates `ntok` tokens after BOS and prints them (when print is set: with --shard-weights every rank generates,
// since every forward gathers the weights from all of them). Each token runs the blocks over row 0 of a full
// micro-batch (the context, zero-padded: causal attention ignores what follows) and the lm_head on one row.
static void gpu_sample_print(GpuLlama *m, const Tokenizer *tok, int ntok, float temperature, uint64_t seed, int step, int print) {
    int T = m->T, V = m->stored_cfg.vocab_size, d = m->stored_cfg.dim, N = m->B * m->T;
    int *seq = (int *)xmalloc(sizeof(int) * (ntok + 1)), *batch = (int *)xcalloc(N, sizeof(int));
    floatX *row = (floatX *)xmalloc(sizeof(floatX) * V);
    float *logits = (float *)xmalloc(sizeof(float) * V);
    Rng r;
    seq[0] = sample_start(&r, tok, &m->model_cfg, seed, step);
    for (int i = 1; i <= ntok; i++) {
        int ctx = i < T ? i : T;
        memcpy(batch, seq + i - ctx, sizeof(int) * ctx);
        gpu_set_batch(m, batch, batch, 0);
        gpu_forward_blocks(m);
        matmul_forward(&m->mm, m->a.logits, m->a.lnf + (size_t)(ctx - 1) * d, gpu_weight(m, PARAM_LM_HEAD, 0), 1,
                       d, V, m->stream);
        gpu_comm_sync(m->gcomm, m->stream);  // watched: with --shard-weights the forward waits for NCCL's gathers
        cudaCheck(cudaMemcpyAsync(row, m->a.logits, sizeof(floatX) * V, cudaMemcpyDeviceToHost, m->stream));
        cudaCheck(cudaStreamSynchronize(m->stream));
        for (int v = 0; v < V; v++) logits[v] = to_float(row[v]);
        seq[i] = sample_next(logits, V, temperature, &r);
    }
    if (print) sample_report(tok, seq + 1, ntok, step);
    free(seq);
    free(batch);
    free(row);
    free(logits);
}

// The trainer state (checkpoint.h's sections), under the CPU trainer's names (fp32 moments) and in the model's
// layout, so checkpoints move between the trainers; bf16 moments have names of their own. The fp32 master weights, when
// kept, are a section of their own (model.safetensors holds the floatX weights the model computes with). The device-held
// sections have no data: checkpoints move them in parts (StateIO): the AdamW moments and the master weights a tensor at a
// time (stored padded), Grass's sections GPU_STATE_CHUNK bytes at a time.
#ifndef GPU_STATE_CHUNK  // the emulated builds (dev/emu/emu.mk) take 4 KiB, so that their resume tests use many parts
#define GPU_STATE_CHUNK ((size_t)64 << 20)
#endif
static int gpu_state_sections(GpuLlama *m, StateHeader *h, StateSection *sec) {
    ParamLayout model_lay, model_glay;
    llama_param_layout(&m->model_cfg, &model_lay);
    llama_param_layout_of(&m->model_cfg, &model_glay, !m->grass.p.enabled);
    void *none[STATE_TENSORS] = {NULL};
    return state_sections(h, sec, model_glay.count, &m->grass.p, m->state_bf16, m->master ? model_lay.count : 0, none);
}

// The checkpoint's weights come from the device one tensor at a time, as the writer reaches them (Fetcher), and
// the state sections move in parts (StateIO): host memory for the largest tensor only, not for the model and its
// moments: 13b Grass at rank 1024, 0.66 GB (its embedding in fp32), where a Grass moment section is 5.9 GB; 7b AdamW,
// 0.52 GB, where a moment section is 27 GB.
typedef struct {
    GpuLlama *m;
    void *dev;  // the weights' device copy
    size_t esize;
    const StateSection *sec;  // gpu_state_sections'
} GpuCheckpointIO;

// Tensor i of the checkpoint into dst: with --shard-weights gathered from the ranks' parts (every rank calls it, in
// the writer's order; dst is NULL on the ranks other than 0).
static void gpu_fetch_weight(void *ctx, int i, void *dst) {
    GpuCheckpointIO *f = (GpuCheckpointIO *)ctx;
    GpuLlama *m = f->m;
    int kind, layer;
    llama_tensor_at(&m->model_cfg, i, &kind, &layer);
    if (m->shard_weights)
        gpu_shard_tensor_copy(m, kind, layer, 0, (char *)f->dev + shard_offset(&m->mlay, kind, layer) * f->esize, f->esize, dst, 0);
    else
        gpu_tensor_copy(m, kind, layer, dst, f->dev, &m->lay, f->esize, 0);
}

static int gpu_state_is_grass(int t) { return t == STATE_GRASS_M || t == STATE_GRASS_V; }

// The tensors of state tensor t (STATE_ADAMW_M ...) that move one at a time, in checkpoint order (shard_state_tensors):
// the master weights' all, the AdamW moments' all or, under Grass, those outside the projections, Grass's moments the
// projections'. Returns how many there are, and with part >= 0 puts that one's (kind, layer) in *kind, *layer.
static int gpu_state_tensors(const GpuLlama *m, int t, int part, int *kind, int *layer) {
    int which = gpu_state_is_grass(t) ? SHARD_STATE_GRASS
                : t != STATE_MASTER && m->grass.p.enabled ? SHARD_STATE_DENSE : SHARD_STATE_ALL;
    return shard_state_tensors(&m->stored_cfg, which, part, kind, layer);
}

// Whether state tensor t moves a tensor at a time: the AdamW moments and the master weights (stored padded:
// gpu_tensor_copy), and with the state sharded Grass's moments too (each tensor gathered from the ranks' parts). Its
// elements' size is esize.
static int gpu_state_by_tensor(const GpuLlama *m, int t, size_t *esize) {
    *esize = t == STATE_MASTER ? 4 : m->state_bf16 ? 2 : 4;
    return t == STATE_ADAMW_M || t == STATE_ADAMW_V || t == STATE_MASTER || (m->owners > 1 && gpu_state_is_grass(t));
}

static int gpu_state_parts(void *ctx, int i) {  // i: the section index, after the header's
    GpuCheckpointIO *io = (GpuCheckpointIO *)ctx;
    size_t esize;
    int t = io->sec[i].tensor;
    if (gpu_state_by_tensor(io->m, t, &esize)) return gpu_state_tensors(io->m, t, -1, NULL, NULL);
    return (int)ceil_div(io->sec[i].nbytes, GPU_STATE_CHUNK);
}

static size_t gpu_state_part_bytes(void *ctx, int i, int part) {
    GpuCheckpointIO *io = (GpuCheckpointIO *)ctx;
    size_t esize;
    int t = io->sec[i].tensor;
    if (!gpu_state_by_tensor(io->m, t, &esize)) {
        size_t rest = io->sec[i].nbytes - part * GPU_STATE_CHUNK;
        return rest < GPU_STATE_CHUNK ? rest : GPU_STATE_CHUNK;
    }
    int kind, layer;
    gpu_state_tensors(io->m, t, part, &kind, &layer);
    GrassShape sh = io->m->grass.p.shape[kind];
    return (gpu_state_is_grass(t) ? (size_t)sh.r * sh.E : llama_param_numel(&io->m->model_cfg, kind)) * esize;
}

// Part `part` of a sharded section (state tensor s of the device buffer dev) between the host, in the model's shape,
// and this rank's owned part on the device: saving, the ranks' parts are gathered on rank 0 (host is NULL on the
// others); resuming, every rank takes its part of the tensor.
static void gpu_state_shard_copy(GpuLlama *m, int s, int part, void *dev, size_t esize, void *host, int to_device) {
    int kind, layer;
    gpu_state_tensors(m, s, part, &kind, &layer);
    const ShardLayout *lay = gpu_state_is_grass(s) ? &m->grass.slay : s == STATE_MASTER ? &m->mlay : &m->slay;
    gpu_shard_tensor_copy(m, kind, layer, gpu_state_is_grass(s), (char *)dev + shard_offset(lay, kind, layer) * esize, esize, host,
                          to_device);
}

// Copies part `part` of state section i between host and its device buffer.
static void gpu_state_part_copy(GpuCheckpointIO *io, int i, int part, void *host, int to_device) {
    GpuLlama *m = io->m;
    GpuGrass *gs = &m->grass;
    void *dev[STATE_TENSORS];
    dev[STATE_ADAMW_M] = m->mom;
    dev[STATE_ADAMW_V] = m->var;
    dev[STATE_GRASS_SIGMA] = gs->sigma;
    dev[STATE_GRASS_RHO] = gs->rho;
    dev[STATE_GRASS_M] = gs->m;
    dev[STATE_GRASS_V] = gs->v;
    dev[STATE_MASTER] = m->master;
    int s = io->sec[i].tensor;
    size_t esize;
    if (m->owners > 1 && gpu_state_by_tensor(m, s, &esize)) {
        gpu_state_shard_copy(m, s, part, dev[s], esize, host, to_device);
    } else if (!host) {  // a rank other than 0 serving a save (state_serve): only the sharded sections need it
        return;
    } else if (gpu_state_by_tensor(m, s, &esize)) {
        int kind, layer;
        ParamLayout dlay;  // the stored layout: the parameters' (master weights) or the moments'
        gpu_state_tensors(m, s, part, &kind, &layer);
        llama_param_layout_of(&m->stored_cfg, &dlay, s == STATE_MASTER || !gs->p.enabled);
        gpu_tensor_copy(m, kind, layer, host, dev[s], &dlay, esize, to_device);
    } else {
        char *d = (char *)dev[s] + part * GPU_STATE_CHUNK;
        size_t bytes = gpu_state_part_bytes(io, i, part);
        cudaCheck(cudaMemcpy(to_device ? (void *)d : host, to_device ? host : (void *)d, bytes,
                             to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost));
    }
}

static void gpu_fetch_state(void *ctx, int i, int part, void *dst) {
    gpu_state_part_copy((GpuCheckpointIO *)ctx, i, part, dst, 0);
}

static void gpu_store_state(void *ctx, int i, int part, const void *src) {
    gpu_state_part_copy((GpuCheckpointIO *)ctx, i, part, (void *)src, 1);
}

static StateIO gpu_state_io(GpuCheckpointIO *ctx) {
    return (StateIO){gpu_state_parts, gpu_state_part_bytes, gpu_fetch_state, gpu_store_state, ctx};
}

// Rank 0 writes the checkpoint of step `done` (every rank holds the same weights; the others wait for it): the floatX
// weights the model computes with into model.safetensors (bf16 in the bf16 build), the fp32 master weights, when kept,
// into state.bin; with the state sharded, every section held in parts is gathered from the ranks as it is written.
// First every value is checked on the device (gpu_state_finite, on every rank holding a part): a diverged model stops
// the run, as the writer's own check would, but before any copy.
static void gpu_save_checkpoint(GpuLlama *m, Comm *comm, const TrainOptions *opt, int step, const DataLoader *train, int accum) {
    int finite = m->owners > 1 ? comm_min_int(comm, gpu_state_finite(m), "an all-reduce of whether the state is finite")
                               : comm->rank == 0 ? gpu_state_finite(m) : 1;
    StateHeader h = state_header_make(opt, &m->model_cfg, &m->grass.p, step, train, comm->world, accum);
    StateSection sec[STATE_MAX_SECTIONS];
    int n = gpu_state_sections(m, &h, sec);
    size_t esize = sizeof(floatX);
    GpuCheckpointIO ctx = {m, (void *)m->params, esize, sec};
    StateIO io = gpu_state_io(&ctx);
    if (comm->rank == 0) {
        if (!finite) {
            char last[CKPT_PATH_LEN];
            checkpoint_last_good(opt->out, last, sizeof(last));
            fail_status(EXIT_DIVERGED, "step %d: the weights or the optimizer state hold a non-finite value: training diverged and "
                        "nothing was saved; the last good checkpoint is %s", step, last);
        }
        Fetcher weights = {gpu_fetch_weight, &ctx};
        checkpoint_save(opt, step, &m->model_cfg, NULL, esize == 4 ? "F32" : "BF16", &weights, n, sec, &io, &m->grass.p);
    } else if (m->owners > 1) {  // serve rank 0's gathers: the weights' (sharded), then the state's
        for (int i = 0; m->shard_weights && i < llama_num_tensors(&m->model_cfg); i++) gpu_fetch_weight(&ctx, i, NULL);
        state_serve(n, sec, &io);
    }
    comm_barrier(comm);
}

static int gpu_load_state(GpuLlama *m, const TrainOptions *opt, const char *dir, DataLoader *train, int accum, int world) {
    StateHeader h = state_header_make(opt, &m->model_cfg, &m->grass.p, 0, train, world, accum);
    StateSection sec[STATE_MAX_SECTIONS];
    int n = gpu_state_sections(m, &h, sec);
    GpuCheckpointIO ctx = {m, NULL, 0, sec};
    StateIO io = gpu_state_io(&ctx);
    checkpoint_load_state(dir, &h, n, sec, &io, &m->grass.p);
    dataloader_seek(train, (int)h.data[0], (int)h.data[1], (int)h.data[2]);
    return (int)h.step;
}

// --gpu-mem-limit: holds back what the device has beyond the limit, so a larger card behaves like a smaller one.
// Returns the block (NULL when nothing is held) and its size in *held.
static void *gpu_hold_back(double limit_gib, size_t *held) {
    *held = 0;
    if (limit_gib <= 0) return NULL;
    size_t free_b, total_b;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    double limit = limit_gib * GIB, used = (double)(total_b - free_b);
    if (used > limit) fail("--gpu-mem-limit %.1f GiB: the run already uses %.2f GiB of the GPU", limit_gib, used / GIB);
    if (limit >= (double)total_b) return NULL;
    void *block = NULL;
    size_t hold = free_b - (size_t)(limit - used);
    if (hold > 0) cudaCheck(cudaMalloc(&block, hold));
    *held = hold;
    printf("gpu-mem-limit: holding back %.2f GiB of the GPU's %.2f GiB\n", hold / GIB, total_b / GIB);
    return block;
}

// FLOPs per token of one training step (forward + backward = 3 x forward): 6 per parameter of the matrices
// and 6 L T d for attention's two products with causal masking halving them (as llm.c counts). The embedding is a
// lookup; a tied V x d matrix is stored once and counts once, as the lm_head's product.
static double gpu_flops_per_token(const LlamaConfig *c, int T) {
    ParamLayout lay;
    llama_param_layout(c, &lay);
    double matrices = (double)lay.count - (c->tie_embeddings ? 0.0 : (double)c->vocab_size * c->dim);
    return 6.0 * matrices + 6.0 * c->n_layers * (double)T * llama_q_dim(c);
}

// The number of CUDA GPUs this process sees; fails plainly where there is none. Without a driver the runtime reports
// an insufficient driver, which is said as what it most often means.
static int gpu_devices(void) {
    int devices = 0;
    cudaError_t found = cudaGetDeviceCount(&devices);
    const char *why = found == cudaSuccess ? "the driver lists no device"
                      : found == cudaErrorInsufficientDriver ? "no NVIDIA driver, or one too old for the CUDA runtime of this build"
                      : cudaGetErrorString(found);
    if (found != cudaSuccess || devices == 0)
        fail("no CUDA GPU found (%s): train_llama needs an NVIDIA GPU and its driver; --dry-run prints the memory plan "
             "without one, and train_llama_cpu trains on the CPU", why);
    return devices;
}

int main(int argc, char **argv) {
    Comm comm;
    TrainOptions opt;
    if (!train_setup_start(&comm, &opt, &argc, &argv, 1)) return 0;

    train_setup_guard(&comm, &opt);
    TrainSetup setup;
    train_setup_model(&setup, &opt);
    const LlamaConfig cfg = setup.cfg;
    int world = comm.world, rank = comm.rank, planned_ranks = opt.ranks ? opt.ranks : world;  // --ranks: --dry-run's
    int accum = train_options_grad_accum(&opt, planned_ranks), B = opt.batch, T = opt.seq;

    GpuLlama model;
    char desc[256];
    llama_config_describe(&cfg, desc, sizeof(desc));
    gpu_plan(&model, &cfg, B, T, planned_ranks, &opt, setup.grass_rank);
    // A run checks what needs no GPU (the shards and tokenizer), then that there is a GPU, before it prints a plan it
    // could not carry out; --dry-run prints the plan only, which needs the sizes alone: no GPU is touched.
    TrainData data;
    int devices = 0;
    if (!opt.dry_run) {
        train_data_open(&data, &opt, &cfg, rank, world);
        devices = gpu_devices();
    }
    ParamLayout model_lay;
    llama_param_layout(&cfg, &model_lay);
    printf("model: %s; %zu parameters", desc, model_lay.count);
    if (model.stored_cfg.ffn_dim != cfg.ffn_dim) printf(" (ffn stored padded to %d)", model.stored_cfg.ffn_dim);
    printf("\n");
    if (model.grass.p.enabled)
        printf("grass: rank %d, interval %d, selector %s, side %s, alpha %g\n", setup.grass_rank, opt.grass_interval,
               opt.grass_select, opt.grass_side, (double)opt.grass_alpha);
    gpu_plan_print(&model);
    size_t cat[GPU_NUM_CATEGORIES], planned = gpu_plan_total(&model, cat);
    if (opt.gpu_mem_limit > 0 && planned > opt.gpu_mem_limit * GIB)
        fail("--gpu-mem-limit %g GiB: the plan needs %.2f GiB (lower --batch, raise --recompute, --master-weights 0, --state-dtype "
             "bf16, --shard-optimizer or --shard-weights over more ranks)",
             (double)opt.gpu_mem_limit, planned / GIB);
    if (opt.dry_run) {  // what each rank of such a run would hold, step and send
        printf("plan of each of %d rank%s: batch %d x %d tokens, %d micro-batches per step = %lld tokens per step\n", planned_ranks,
               planned_ranks > 1 ? "s" : "", B, T, accum, (long long)B * T * accum * planned_ranks);
        if (planned_ranks > 1) {
            double bytes[COMM_CATEGORIES];
            gpu_comm_bytes(&model, accum, bytes);
            comm_bytes_print("GPU", planned_ranks, gpu_sharding(&model), model.reduce_bf16 ? "bf16" : "fp32", bytes);
        }
        comm_finalize(&comm);
        return 0;
    }
    DataLoader *train = &data.train, *val = &data.val;
    cudaCheck(cudaSetDevice(comm.local_rank % devices));
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, comm.local_rank % devices));
    gpu_alloc(&model);
    GpuComm gcomm;
    gpu_comm_init(&gcomm, &comm, opt.comm);
    model.gcomm = world > 1 ? &gcomm : NULL;
    model.prof.enabled = opt.profile;
    size_t held_bytes;  // after everything that allocates (NCCL included), so the limit covers it all
    void *held = gpu_hold_back(opt.gpu_mem_limit, &held_bytes);
    gpu_shard_init(&model, rank);
    if (world > 1) {
        printf("ranks: %d over %s, gradients summed in %s\n", world, gcomm.use_nccl ? "NCCL" : "MPI", model.reduce_bf16 ? "bf16" : "fp32");
        double bytes[COMM_CATEGORIES];
        gpu_comm_bytes(&model, accum, bytes);
        comm_bytes_print("GPU", world, gpu_sharding(&model), model.reduce_bf16 ? "bf16" : "fp32", bytes);
    }
    printf("device: %s; batch: %d x %d tokens, %d micro-batches per step = %lld tokens per step\n", prop.name, B, T, accum,
           (long long)B * T * accum * world);
    if (setup.weights_dir) {
        checkpoint_read_model_parts(setup.weights_dir, &cfg, gpu_take_tensor, gpu_take_part, &model);  // a rank's parts
        printf("weights: %s\n", setup.weights_dir);
    } else {
        gpu_init_weights(&model, (uint64_t)opt.seed);
    }

    if (opt.eval_only) {
        Logger none;
        logger_init(&none, NULL, 0);
        logger_val(&none, 0, gpu_evaluate(&model, &comm, val, opt.eval_batches));
        comm_finalize(&comm);
        return 0;
    }
    int start = setup.resume_dir[0] ? gpu_load_state(&model, &opt, setup.resume_dir, train, accum, world) : 0;
    Logger log;
    train_log_open(&log, &opt, &setup, rank, start);
    if (data.have_val && schedule_eval_due(&opt, start, start))
        logger_val(&log, start, gpu_evaluate(&model, &comm, val, opt.eval_batches));

    // MFU against the dense bf16 tensor-core peak of the H100 SXM (989 TFLOP/s); other GPUs: read as relative
    double peak = 989e12, flops_per_step = gpu_flops_per_token(&cfg, T) * B * T * accum;
    // where the step time goes: events[0] at the start, then after each micro-batch's forward and backward
    // (2 per micro-batch), then after the optimizer
    cudaEvent_t *events = (cudaEvent_t *)xmalloc(sizeof(cudaEvent_t) * (2 * accum + 2));
    for (int i = 0; i < 2 * accum + 2; i++) cudaCheck(cudaEventCreate(&events[i]));
    int skipped = 0;  // steps skipped for a non-finite loss or gradient norm (--skip-nonfinite)
    for (int step = start; step < opt.steps; step++) {
        comm.step = step + 1;  // the step a timed-out collective names
        double t0 = wall_time();
        double comm_before[COMM_CATEGORIES];
        for (int i = 0; i < COMM_CATEGORIES; i++) comm_before[i] = (double)gcomm.bytes[i];
        cudaCheck(cudaEventRecord(events[0], model.stream));
        gpu_profile_begin(&model.prof, model.stream);
        gpu_zero_grads(&model, step);
        double loss = 0.0;
        for (int micro = 0; micro < accum; micro++) {
            dataloader_next_batch(train);
            gpu_set_batch(&model, train->inputs, train->targets, 1);
            loss += gpu_forward(&model, 1.0f / ((float)B * T * accum));
            cudaCheck(cudaEventRecord(events[2 * micro + 1], model.stream));
            model.reduce_in_backward = micro == accum - 1;
            gpu_backward(&model);
            cudaCheck(cudaEventRecord(events[2 * micro + 2], model.stream));
        }
        loss = comm_mean_f64(&comm, loss / accum);
        float lr = lr_at_step(&opt, step), norm = gpu_grad_norm(&model);
        int done = step + 1, apply = guard_step_finite(&opt, &log, &skipped, done, loss, norm);
        if (apply) gpu_optimizer_step(&model, &opt, step, lr, norm);
        cudaCheck(cudaEventRecord(events[2 * accum + 1], model.stream));
        gpu_profile_end(&model.prof, step > start, model.stream);
        gpu_comm_sync(model.gcomm, model.stream);
        double sec = wall_time() - t0, phase_ms[3] = {0.0, 0.0, 0.0};  // forward, backward, optimizer
        for (int i = 0; i < 2 * accum + 1; i++) {
            float ms;
            cudaCheck(cudaEventElapsedTime(&ms, events[i], events[i + 1]));
            phase_ms[i == 2 * accum ? 2 : i % 2] += ms;
        }
        size_t free_b, total_b;
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        double comm_bytes[COMM_CATEGORIES];
        for (int i = 0; i < COMM_CATEGORIES; i++) comm_bytes[i] = (double)gcomm.bytes[i] - comm_before[i];
        if (apply)
            logger_step(&log, done, opt.steps, (float)loss, lr, norm, 1000.0 * sec, (double)B * T * accum * world / sec,
                        flops_per_step / sec / peak, (double)(total_b - free_b - held_bytes) / GIB,
                        world > 1 ? comm_bytes : NULL, phase_ms);
        if (data.have_val && schedule_eval_due(&opt, done, start))
            logger_val(&log, done, gpu_evaluate(&model, &comm, val, opt.eval_batches));
        if ((rank == 0 || model.shard_weights) && schedule_sample_due(&opt, done))  // sharded: every rank gathers, rank 0 prints
            gpu_sample_print(&model, setup.have_tok ? &setup.tok : NULL, opt.sample_tokens, opt.sample_temperature,
                             (uint64_t)opt.seed, done, rank == 0);
        int saved = schedule_ckpt_due(&opt, done);
        if (saved) gpu_save_checkpoint(&model, &comm, &opt, done, train, accum);
        if (done < opt.steps && guard_stop_requested(&comm)) {
            if (guard_saves(&opt) && !saved) gpu_save_checkpoint(&model, &comm, &opt, done, train, accum);
            guard_exit_interrupted(&comm, &opt, done);
        }
    }
    for (int i = 0; i < 2 * accum + 2; i++) cudaCheck(cudaEventDestroy(events[i]));
    free(events);
    if (rank == 0) gpu_profile_print(&model.prof);
    logger_close(&log);
    train_data_close(&data);
    train_setup_close(&setup);
    if (held) cudaCheck(cudaFree(held));
    gpu_comm_free(&gcomm);
    gpu_free(&model);
    comm_finalize(&comm);
    return 0;
}
