/*
 * shard.h: how data-parallel ranks divide the gradient collectives and the optimizer (docs/design.md §7), one
 * definition for both trainers, so that they divide a model identically:
 *  - segments: the tensors as the collectives move them, in the order the backward finishes them (gradients: the
 *    full ones, or Grass's compressed r x E ones of the projections), or the weights (the all-gather of updated
 *    weights) and Grass's updates U (their all-gather) in the same order;
 *  - buckets: consecutive segments packed into one collective of at most --bucket-mb, launched as soon as the
 *    backward has finished the bucket's last segment; a tensor too large for one bucket is several segments, each
 *    a piece [lo, hi) of every rank's part of it, so that buffers stay within --bucket-mb however large a tensor is;
 *  - ownership: with --shard-optimizer (ZeRO stage 1) rank r owns elements [r c, (r + 1) c) of every tensor of n
 *    elements, c = ceil(n / ranks) (the last ranks' parts may be shorter, or empty): it keeps their moments and
 *    master weights and updates only them. Without it every rank owns every element. A bucket's buffer is `ranks`
 *    slots, slot r holding rank r's parts of the bucket's segments one after another, so that a reduce-scatter
 *    leaves each rank its own parts averaged and an all-gather gives every rank all of them;
 *  - the local layout of the owned state (ShardLayout): ParamLayout's kind-major, layer-major order, every tensor
 *    c elements long.
 * Plain C that also compiles as C++.
 */
#ifndef GRASS_SHARD_H
#define GRASS_SHARD_H

#include "comm.h"
#include "common.h"
#include "grass.h"
#include "llama_config.h"

// The part of a tensor of n elements that rank `rank` of `owners` owns: [*lo, *hi).
static size_t shard_chunk(size_t n, int owners) { return (n + (size_t)owners - 1) / (size_t)owners; }
static void shard_slice(size_t n, int owners, int rank, size_t *lo, size_t *hi) {
    size_t c = shard_chunk(n, owners);
    *lo = (size_t)rank * c < n ? (size_t)rank * c : n;
    *hi = *lo + c < n ? *lo + c : n;
}

// The kinds of one block in the order the backward finishes their gradients.
static const int shard_block_order[] = {PARAM_WDOWN, PARAM_WGATE, PARAM_WUP, PARAM_MLP_NORM, PARAM_WO,
                                        PARAM_WQ,    PARAM_WK,    PARAM_WV,  PARAM_ATTN_NORM};
#define SHARD_BLOCK_KINDS ((int)(sizeof(shard_block_order) / sizeof(shard_block_order[0])))

// What a plan's segments are: the gradients (full, or Grass's compressed ones for the projections), the weights of
// every tensor, or Grass's updates U of the projections.
enum { SHARD_GRADS, SHARD_WEIGHTS, SHARD_UPDATES };

typedef struct {
    int kind, layer;
    int grass;           // a Grass compressed gradient or update (offset in the r x E state), else a tensor of a layout
    size_t offset;       // of its first element in its buffer: the gradients', the weights' or Grass's g
    size_t numel, chunk; // the tensor's elements, and those of each rank's part (shard_chunk)
    size_t lo, hi;       // the piece of every rank's part this segment moves: elements [lo, hi) of it (0, chunk: all)
    size_t slot_offset;  // where the piece starts in each slot of its bucket
    int bucket;
} ShardSeg;

typedef struct {
    int first, count;  // its segments
    size_t slot;       // elements of each rank's slot
} ShardBucket;

typedef struct {
    int what, ranks;   // SHARD_GRADS ...; the ranks the buckets are divided among (1: not divided)
    int nseg, nbucket;
    ShardSeg *seg;
    ShardBucket *bucket;
    size_t max_slot;   // the largest slot: a bucket buffer holds ranks x max_slot elements
    size_t total;      // sum over buckets of ranks x slot: the elements one step's collectives of this plan move
} ShardPlan;

// A segment's group, what --shard-weights gathers at once (a bucket holds segments of one group): its layer, or for the
// tensors outside the blocks SHARD_GROUP_HEAD (the lm_head and the final norm) or SHARD_GROUP_EMBED (the embedding).
// SHARD_GROUP_ALL stands for every group.
enum { SHARD_GROUP_HEAD = -1, SHARD_GROUP_EMBED = -2, SHARD_GROUP_ALL = -3 };
static int shard_seg_group(const ShardSeg *s) {
    if (llama_param_kinds[s->kind].per_layer) return s->layer;
    return s->kind == PARAM_EMBED ? SHARD_GROUP_EMBED : SHARD_GROUP_HEAD;
}

// The segments of `what` for the model cfg (as stored: the GPU's padded sizes), its layouts lay (weights) and glay
// (gradients), and Grass's plan, in backward order, packed into buckets of at most bucket_elems elements (at least
// one element of every rank's part), each divided among `ranks`.
static void shard_plan(ShardPlan *p, int what, const LlamaConfig *c, const ParamLayout *lay, const ParamLayout *glay,
                       const GrassPlan *gp, int ranks, size_t bucket_elems) {
    memset(p, 0, sizeof(*p));
    p->what = what;
    p->ranks = ranks;
    size_t piece = bucket_elems / ranks > 0 ? bucket_elems / ranks : 1;  // the most of a rank's part one bucket holds
    int max = 0;
    for (int k = 0; k < NUM_PARAM_KINDS; k++) {
        size_t n = llama_param_numel(c, k) > (size_t)gp->nstate ? llama_param_numel(c, k) : (size_t)gp->nstate;
        max += (int)((shard_chunk(n, ranks) + piece - 1) / piece) * (llama_param_kinds[k].per_layer ? c->n_layers : 1);
    }
    p->seg = (ShardSeg *)xcalloc(max, sizeof(ShardSeg));
    p->bucket = (ShardBucket *)xcalloc(max, sizeof(ShardBucket));
    int order[SHARD_BLOCK_KINDS];
    for (int pass = 0; pass < 2 + c->n_layers; pass++) {  // head and final norm, the blocks from the last, the embedding
        int n = 0, layer = 0;
        if (pass == 0) order[n++] = PARAM_LM_HEAD, order[n++] = PARAM_FINAL_NORM;
        else if (pass == 1 + c->n_layers) order[n++] = PARAM_EMBED;
        else {
            layer = c->n_layers - pass;
            for (int i = 0; i < SHARD_BLOCK_KINDS; i++) order[n++] = shard_block_order[i];
        }
        for (int i = 0; i < n; i++) {
            int kind = order[i], proj = llama_param_kinds[kind].is_projection, grass = gp->enabled && proj;
            if (!llama_param_present(c, kind)) continue;  // a tied lm_head: the embedding's segment carries both uses
            if (what == SHARD_UPDATES && !grass) continue;
            ShardSeg t;
            memset(&t, 0, sizeof(t));
            t.kind = kind;
            t.layer = layer;
            t.grass = what != SHARD_WEIGHTS && grass;
            if (t.grass) {
                t.offset = grass_state_offset(gp, kind, layer);
                t.numel = (size_t)gp->shape[kind].r * gp->shape[kind].E;
            } else {
                t.offset = llama_param_offset(c, what == SHARD_WEIGHTS ? lay : glay, kind, layer);
                t.numel = llama_param_numel(c, kind);
            }
            t.chunk = shard_chunk(t.numel, ranks);
            for (t.lo = 0; t.lo < t.chunk; t.lo = t.hi) {  // its pieces
                t.hi = t.chunk - t.lo < piece ? t.chunk : t.lo + piece;
                if (p->nseg == max) fail("internal: more segments than planned");
                p->seg[p->nseg++] = t;
            }
        }
    }
    for (int i = 0; i < p->nseg; i++) {  // buckets, in order: a segment joins the open one while it fits, of its layer
        ShardBucket *b = p->nbucket ? &p->bucket[p->nbucket - 1] : NULL;
        ShardSeg *s = &p->seg[i];
        if (!b || (b->slot + s->hi - s->lo) * ranks > bucket_elems || shard_seg_group(s) != shard_seg_group(&p->seg[b->first])) {
            b = &p->bucket[p->nbucket++];
            b->first = i;
        }
        s->bucket = (int)(b - p->bucket);
        s->slot_offset = b->slot;
        b->slot += s->hi - s->lo;
        b->count++;
    }
    for (int i = 0; i < p->nbucket; i++) {
        if (p->bucket[i].slot > p->max_slot) p->max_slot = p->bucket[i].slot;
        p->total += p->bucket[i].slot * ranks;
    }
}

static void shard_plan_free(ShardPlan *p) {
    free(p->seg);
    free(p->bucket);
    memset(p, 0, sizeof(*p));
}

// Where owned state lives on a rank: per kind the offset of its layer 0 and the elements of each of its tensors
// (shard_chunk of the tensor's), like ParamLayout. Every rank has the same layout; a rank whose part of a tensor is
// shorter leaves the rest unused.
typedef struct {
    size_t offset[NUM_PARAM_KINDS];
    size_t chunk[NUM_PARAM_KINDS];
    size_t count;
} ShardLayout;

// The owned part of a layout's tensors (with_projections 0: those outside the projections, as llama_param_layout_of),
// or with grass set, of Grass's r x E state of the projections.
static void shard_layout(ShardLayout *s, const LlamaConfig *c, int with_projections, const GrassPlan *grass, int owners) {
    memset(s, 0, sizeof(*s));
    for (int k = 0; k < NUM_PARAM_KINDS; k++) {
        s->offset[k] = s->count;
        int proj = llama_param_kinds[k].is_projection;
        size_t n = 0;
        if (grass) n = proj ? (size_t)grass->shape[k].r * grass->shape[k].E : 0;
        else if (llama_param_present(c, k) && (with_projections || !proj)) n = llama_param_numel(c, k);
        s->chunk[k] = shard_chunk(n, owners);
        s->count += s->chunk[k] * (llama_param_kinds[k].per_layer ? (size_t)c->n_layers : 1);
    }
}

// The local offset of tensor (kind, layer)'s owned part.
static size_t shard_offset(const ShardLayout *s, int kind, int layer) {
    return s->offset[kind] + (llama_param_kinds[kind].per_layer ? (size_t)layer * s->chunk[kind] : 0);
}

// The elements [*e0, *e1) of segment s's tensor that rank r's slot of its bucket holds.
static void shard_seg_range(const ShardSeg *s, int r, size_t *e0, size_t *e1) {
    size_t a = (size_t)r * s->chunk + s->lo, b = (size_t)r * s->chunk + s->hi;
    *e0 = a < s->numel ? a : s->numel;
    *e1 = b < s->numel ? b : s->numel;
}

// Where element e of segment s's tensor (in rank r's slot: shard_seg_range) sits in its bucket.
static size_t shard_packed_index(const ShardPlan *p, const ShardSeg *s, int r, size_t e) {
    return (size_t)r * p->bucket[s->bucket].slot + s->slot_offset + (e - (size_t)r * s->chunk - s->lo);
}

// The tensors a state section holds, in checkpoint order: every tensor (master weights), those outside Grass's
// projections (AdamW's moments under Grass; every tensor under AdamW: pass SHARD_STATE_ALL), or the projections
// (Grass's moments). The part-th of them into *kind, *layer (part >= 0); returns how many there are.
enum { SHARD_STATE_ALL, SHARD_STATE_DENSE, SHARD_STATE_GRASS };
static int shard_state_tensors(const LlamaConfig *c, int which, int part, int *kind, int *layer) {
    int n = 0;
    for (int i = 0; i < llama_num_tensors(c); i++) {
        int k, l;
        llama_tensor_at(c, i, &k, &l);
        int proj = llama_param_kinds[k].is_projection;
        if ((which == SHARD_STATE_DENSE && proj) || (which == SHARD_STATE_GRASS && !proj)) continue;
        if (n++ == part) *kind = k, *layer = l;
    }
    return n;
}

// full [n x esize bytes] on rank 0 = the owned parts (shard_slice's) that every one of the comm's ranks passes in
// part: a tensor of state held sharded, for a checkpoint.
static void shard_gather(const Comm *c, const void *part, void *full, size_t n, size_t esize) {
    size_t *counts = (size_t *)xmalloc(sizeof(size_t) * c->world);
    for (int r = 0; r < c->world; r++) {
        size_t lo, hi;
        shard_slice(n, c->world, r, &lo, &hi);
        counts[r] = (hi - lo) * esize;
    }
    comm_gather(c, part, full, counts);
    free(counts);
}

#endif
