/* sel_opt.c: greedy optimisers (naive, lazy, stochastic, lazier-than-lazy).
 *
 * Tie-breaking is the reference's (DELIFT.md §5): naive greedy takes the
 * largest index among equal best gains; lazy greedy keeps a max-heap of
 * (stored gain, index), pops the top, recomputes its gain and accepts it when
 * the fresh gain is >= the stored gain now on top (index ignored), else
 * pushes it back.  On an all-equal 10 x 10 kernel with budget 3 that picks
 * 9, 0, 8.  The stochastic variants draw from the caller's seed through
 * splitmix64 + xoshiro256**, so a seed always gives the same selection.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sel.h"
#include "sel_impl.h"

void sel_options_init(sel_options *o)
{
    memset(o, 0, sizeof *o);
    o->optimizer = SEL_OPT_LAZY;
    o->budget_kind = SEL_BUDGET_COUNT;
    o->epsilon = 0.01;
    o->threads = 1;
}

void sel_result_init(sel_result *r)
{
    memset(r, 0, sizeof *r);
}

void sel_result_free(sel_result *r)
{
    if (!r)
        return;
    free(r->indices);
    free(r->gains);
    sel_result_init(r);
}

dl_status sel_options_budget(const sel_options *o, int64_t n, int64_t *count,
                             dl_error *err)
{
    if (o->budget_kind == SEL_BUDGET_COUNT) {
        if (o->budget < 0 || o->budget > n)
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "budget",
                                   "budget %lld is outside [0, n = %lld]",
                                   (long long)o->budget, (long long)n);
        *count = o->budget;
        return DL_OK;
    }
    if (o->budget_kind == SEL_BUDGET_FRACTION) {
        double f = o->budget_fraction;
        if (!(f >= 0.0 && f <= 1.0))
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "budget",
                                   "budget fraction %g is outside [0, 1]", f);
        int64_t c = (int64_t)floor(f * (double)n);
        *count = c > n ? n : c;
        return DL_OK;
    }
    return dl_error_set(err, DL_ERR_USAGE, "unknown budget kind %d", (int)o->budget_kind);
}

static dl_status check_options(const sel_options *o, int64_t n, dl_error *err)
{
    if ((unsigned)o->optimizer >= SEL_OPT_COUNT)
        return dl_error_set(err, DL_ERR_USAGE, "unknown optimizer %d", (int)o->optimizer);
    if (!(o->gain_tolerance >= 0.0) || !isfinite(o->gain_tolerance))
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "gain_tolerance",
                               "gain tolerance must be finite and >= 0 (got %g)",
                               o->gain_tolerance);
    if ((o->optimizer == SEL_OPT_STOCHASTIC || o->optimizer == SEL_OPT_LAZIER) &&
        !(o->epsilon > 0.0 && o->epsilon < 1.0))
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "epsilon",
                               "epsilon must be in (0, 1) (got %g)", o->epsilon);
    if (o->threads < 1 || o->threads > 256)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "threads",
                               "threads must be in [1, 256] (got %d)", o->threads);
    if (o->costs) {
        if (!(o->cost_budget > 0.0) || !isfinite(o->cost_budget))
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "cost_budget",
                                   "cost budget must be finite and > 0 (got %g)",
                                   o->cost_budget);
        for (int64_t j = 0; j < n; j++)
            if (!(o->costs[j] > 0.0) || !isfinite(o->costs[j]))
                return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "costs",
                                       "cost of item %lld must be finite and > 0 (got %g)",
                                       (long long)j, o->costs[j]);
    }
    return DL_OK;
}

/* ---- the run's shared state ------------------------------------------------ */

typedef struct run {
    sel_fn *f;
    const sel_options *o;
    int64_t n, budget;
    double cost_left; /* with costs */
    sel_result *out;
} run;

static int fits(const run *r, int64_t j)
{
    return !r->o->costs || r->o->costs[j] <= r->cost_left;
}

/* Score the greedy compares: the gain, or gain per cost. */
static double score(const run *r, int64_t j, double gain)
{
    return r->o->costs ? gain / r->o->costs[j] : gain;
}

/* 1 when the pick with this gain must not be taken (and sets out->stop). */
static int stop_here(run *r, double gain)
{
    const sel_options *o = r->o;
    double tol = o->gain_tolerance;
    if (o->stop_if_negative_gain && gain < -tol) {
        r->out->stop = SEL_STOP_NEGATIVE_GAIN;
        return 1;
    }
    if (o->stop_if_zero_gain && fabs(gain) <= tol) {
        r->out->stop = SEL_STOP_ZERO_GAIN;
        return 1;
    }
    return 0;
}

static dl_status take(run *r, int64_t j, double gain, dl_error *err)
{
    dl_status st = sel_fn_add(r->f, j, err);
    if (st != DL_OK)
        return st;
    r->out->indices[r->out->count] = j;
    r->out->gains[r->out->count] = gain;
    r->out->count++;
    if (r->o->costs)
        r->cost_left -= r->o->costs[j];
    return DL_OK;
}

static int cancelled(const run *r)
{
    return r->o->cancel && *r->o->cancel;
}

static double gain_of(run *r, int64_t j)
{
    r->out->evaluations++;
    return sel_fn_gain_update(r->f, j);
}

/* The incremental table (FL family) equals the reference's column sum while
 * the double sums are exact; on kernels with a wide dynamic range (tiny
 * Gaussian similarities) the two can differ in the last bits.  A decision
 * between values this close is settled with the reference's own sum, so
 * exact ties break as the reference breaks them. */
static int close_call(double a, double b)
{
    return fabs(a - b) <= 1e-10 * fmax(1.0, fmax(fabs(a), fabs(b)));
}

static double exact_gain(run *r, int64_t j)
{
    r->out->evaluations++;
    return sel_fn_gain(r->f, j);
}

/* ---- naive ------------------------------------------------------------------- */

/* Re-decides a naive step among the candidates whose table score is a close
 * call to the best, with the reference's sums (largest index on ties). */
static int64_t settle_naive(run *r, double best_score, double *best_gain)
{
    int64_t best = -1;
    double bs = 0;
    for (int64_t j = 0; j < r->n; j++) {
        if (r->f->in[j] || !fits(r, j) ||
            !close_call(score(r, j, r->f->gain[j]), best_score))
            continue;
        double g = exact_gain(r, j), s = score(r, j, g);
        if (best < 0 || s >= bs) {
            best = j;
            bs = s;
            *best_gain = g;
        }
    }
    return best;
}

static dl_status run_naive(run *r, dl_error *err)
{
    while (r->out->count < r->budget) {
        if (cancelled(r))
            return dl_error_set(err, DL_ERR_CANCELLED, "selection cancelled");
        int64_t best = -1;
        double best_score = 0, best_gain = 0;
        /* ascending with >=: the largest index wins among equal scores */
        for (int64_t j = 0; j < r->n; j++) {
            if (r->f->in[j] || !fits(r, j))
                continue;
            double g = gain_of(r, j), s = score(r, j, g);
            if (best < 0 || s >= best_score) {
                best = j;
                best_score = s;
                best_gain = g;
            }
        }
        if (best < 0) {
            r->out->stop = SEL_STOP_COST;
            return DL_OK;
        }
        if (r->f->gain)
            best = settle_naive(r, best_score, &best_gain);
        if (stop_here(r, best_gain))
            return DL_OK;
        dl_status st = take(r, best, best_gain, err);
        if (st != DL_OK)
            return st;
    }
    return DL_OK;
}

/* ---- a max-heap of (key, index), ordered as std::pair<double, ll> ----------
 *
 * The shape never changes an answer: (key, index) is a strict total order
 * over distinct indices, so the items in the heap alone fix its top. */

typedef struct heap_item {
    double key;
    int64_t idx;
} heap_item;

typedef struct heap {
    heap_item *a;
    int64_t len;
} heap;

static int heap_less(heap_item x, heap_item y)
{
    return x.key < y.key || (x.key == y.key && x.idx < y.idx);
}

/* The larger child of node i, or -1 for a leaf. */
static int64_t heap_big_child(const heap *h, int64_t i)
{
    int64_t l = 2 * i + 1, r = l + 1;
    if (l >= h->len)
        return -1;
    return r < h->len && heap_less(h->a[l], h->a[r]) ? r : l;
}

static void heap_sift_down(heap *h, int64_t i)
{
    heap_item it = h->a[i];
    for (;;) {
        int64_t big = heap_big_child(h, i);
        if (big < 0 || !heap_less(it, h->a[big]))
            break;
        h->a[i] = h->a[big];
        i = big;
    }
    h->a[i] = it;
}

static void heap_push(heap *h, heap_item it)
{
    int64_t i = h->len++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!heap_less(h->a[p], it))
            break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = it;
}

static heap_item heap_pop(heap *h)
{
    heap_item top = h->a[0];
    h->a[0] = h->a[--h->len];
    if (h->len > 0)
        heap_sift_down(h, 0);
    return top;
}

/* Index of the item that tops the heap once the root is popped (its larger
 * child), or -1 when the root is alone. */
static int64_t heap_next(const heap *h)
{
    return heap_big_child(h, 0);
}

static void heap_build(heap *h)
{
    for (int64_t i = h->len / 2 - 1; i >= 0; i--)
        heap_sift_down(h, i);
}

/* ---- lazy ---------------------------------------------------------------------- */

/* The reference's key of heap item it: its gain when it was stored,
 * keystep[] picks ago.  Unchanged by the table since: its gain now (cur, when
 * already known, else formed); changed: formed again over the memo of that
 * step (rebuilt from the first picks: a rare, O(m * picks) read). */
static double ref_key(run *r, heap_item it, const int32_t *keystep, const double *cur)
{
    if (r->f->touched[it.idx] <= keystep[it.idx])
        return cur ? *cur : score(r, it.idx, exact_gain(r, it.idx));
    r->out->evaluations++;
    return score(r, it.idx, sel_fn_gain_at_step(r->f, it.idx, keystep[it.idx]));
}

/* A close call between x, popped with the fresh score s, and y on top of the
 * heap, settled as the reference would with its own keys (the table's keys,
 * possibly a last bit away, decide nothing): 1 accepts x; 0 rejects x (push
 * it back with s); 2 means the reference holds y's key above x's (or equal
 * with a larger index) and pops y first: push x back unevaluated with its
 * old key, y raised above it.  y stays on top on 0, so the same item does
 * not pop again forever. */
static int settle_lazy(run *r, heap_item x, double s, heap *h, const int32_t *keystep)
{
    heap_item y = h->a[0];
    double ky = ref_key(r, y, keystep, NULL), kx = ref_key(r, x, keystep, &s);
    if (ky > kx || (ky == kx && y.idx > x.idx)) {
        if (!(h->a[0].key > x.key))
            h->a[0].key = nextafter(x.key, INFINITY);
        return 2;
    }
    if (s >= ky)
        return 1;
    if (!(h->a[0].key > s))
        h->a[0].key = nextafter(s, INFINITY);
    return 0;
}

static dl_status run_lazy(run *r, dl_error *err)
{
    heap h = {malloc((size_t)(r->n ? r->n : 1) * sizeof(heap_item)), 0};
    int32_t *keystep = calloc((size_t)(r->n ? r->n : 1), sizeof *keystep);
    if (!h.a || !keystep) {
        free(h.a);
        free(keystep);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the lazy heap");
    }
    for (int64_t j = 0; j < r->n; j++)
        h.a[h.len++] = (heap_item){score(r, j, gain_of(r, j)), j};
    heap_build(&h);
    dl_status st = DL_OK;
    while (r->out->count < r->budget) {
        if (cancelled(r)) {
            st = dl_error_set(err, DL_ERR_CANCELLED, "selection cancelled");
            break;
        }
        if (h.len == 0) {
            r->out->stop = SEL_STOP_COST;
            break;
        }
        heap_item top = h.a[0];
        if (!fits(r, top.idx)) {
            heap_pop(&h);
            continue; /* the cost budget only shrinks: it never fits again */
        }
        /* The top once x is popped: the larger child.  The reference reads
         * it even when the heap would be empty (its budget < n rule avoids
         * that); an empty heap accepts. */
        int64_t next = heap_next(&h);
        /* Graph cut: `next` is the item popped after x whatever happens to x
         * (a rejected x sinks below it), so its gathers are asked for now
         * and overlap x's (docs/selectors.md, "Measured, 08:30"). */
        if (next >= 0 && !r->f->gain)
            sel_fn_gain_prefetch(r->f, h.a[next].idx);
        double g = gain_of(r, top.idx), s = score(r, top.idx, g);
        int accept = next < 0 || s >= h.a[next].key;
        if (!accept && !(r->f->gain && close_call(s, h.a[next].key))) {
            /* the usual rejection: x goes back with its fresh key.  Replacing
             * the root and sifting it down keeps the same set of (key,
             * index) pairs as pop + push (so the same later tops), and sifts
             * the fresh key only as deep as it belongs, where a pop sifts
             * the last leaf all the way down and a push then sifts up. */
            h.a[0].key = s;
            heap_sift_down(&h, 0);
            if (r->f->gain)
                keystep[top.idx] = r->f->step;
            continue;
        }
        heap_pop(&h);
        if (r->f->gain && h.len > 0 && close_call(s, h.a[0].key)) {
            g = exact_gain(r, top.idx);
            s = score(r, top.idx, g);
            accept = settle_lazy(r, top, s, &h, keystep);
        }
        if (accept == 2) {
            heap_push(&h, top); /* its key and keystep as they were */
            continue;
        }
        if (accept) {
            if (stop_here(r, g))
                break;
            st = take(r, top.idx, g, err);
            if (st != DL_OK)
                break;
        } else {
            heap_push(&h, (heap_item){s, top.idx});
            if (r->f->gain)
                keystep[top.idx] = r->f->step;
        }
    }
    free(h.a);
    free(keystep);
    return st;
}

/* ---- random numbers: splitmix64 seeds xoshiro256** ---------------------------- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng *g, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        g->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, bound), bound > 0, without modulo bias (rejection). */
static uint64_t rng_below(rng *g, uint64_t bound)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do
        x = rng_next(g);
    while (x >= limit);
    return x % bound;
}

/* ---- stochastic and lazier-than-lazy ------------------------------------------ */

/* The candidates not yet picked (and still affordable), swap-removed. */
typedef struct pool_set {
    int64_t *item; /* (n) */
    int64_t *where; /* (n) position in item[], -1 when gone */
    int64_t len;
} pool_set;

static void pool_remove(pool_set *p, int64_t j)
{
    int64_t w = p->where[j];
    if (w < 0)
        return;
    int64_t last = p->item[--p->len];
    p->item[w] = last;
    p->where[last] = w;
    p->where[j] = -1;
}

/* Moves up to s random affordable candidates to the front of p->item
 * (partial Fisher-Yates); returns how many. */
static int64_t sample(run *r, pool_set *p, rng *g, int64_t s)
{
    int64_t got = 0;
    while (got < s && got < p->len) {
        int64_t k = got + (int64_t)rng_below(g, (uint64_t)(p->len - got));
        int64_t a = p->item[got], b = p->item[k];
        p->item[got] = b;
        p->where[b] = got;
        p->item[k] = a;
        p->where[a] = k;
        if (!fits(r, b)) {
            pool_remove(p, b); /* never affordable again */
            continue;
        }
        got++;
    }
    return got;
}

/* The best of the sampled items[0..got): largest score, ties to the
 * largest index. */
static int64_t best_plain(run *r, const int64_t *items, int64_t got, double *gain)
{
    int64_t best = -1;
    double best_score = 0;
    for (int64_t t = 0; t < got; t++) {
        int64_t j = items[t];
        double gj = gain_of(r, j), sj = score(r, j, gj);
        if (best < 0 || sj > best_score || (sj == best_score && j > best)) {
            best = j;
            *gain = gj;
            best_score = sj;
        }
    }
    return best;
}

/* Lazy within the sample: stored bounds (+inf when unknown) refreshed from
 * the top until a fresh score holds the next bound. */
static int64_t best_lazier(run *r, const int64_t *items, int64_t got, double *bound,
                           heap *h, double *gain)
{
    h->len = 0;
    for (int64_t t = 0; t < got; t++)
        h->a[h->len++] = (heap_item){bound[items[t]], items[t]};
    heap_build(h);
    for (;;) {
        heap_item top = heap_pop(h);
        double gj = gain_of(r, top.idx), sj = score(r, top.idx, gj);
        bound[top.idx] = sj;
        if (h->len == 0 || sj >= h->a[0].key) {
            *gain = gj;
            return top.idx;
        }
        heap_push(h, (heap_item){sj, top.idx});
    }
}

static dl_status run_stochastic(run *r, int lazier, dl_error *err)
{
    pool_set p = {malloc((size_t)(r->n ? r->n : 1) * sizeof(int64_t)),
                  malloc((size_t)(r->n ? r->n : 1) * sizeof(int64_t)), r->n};
    double *bound = lazier ? malloc((size_t)(r->n ? r->n : 1) * sizeof *bound) : NULL;
    heap h = {lazier ? malloc((size_t)(r->n ? r->n : 1) * sizeof(heap_item)) : NULL, 0};
    dl_status st = DL_OK;
    if (!p.item || !p.where || (lazier && (!bound || !h.a))) {
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory for stochastic greedy");
        goto done;
    }
    for (int64_t j = 0; j < r->n; j++) {
        p.item[j] = j;
        p.where[j] = j;
        if (bound)
            bound[j] = INFINITY; /* no gain known yet */
    }
    rng g;
    rng_seed(&g, r->o->seed);
    double want = ceil((double)r->n / (double)(r->budget ? r->budget : 1) *
                       log(1.0 / r->o->epsilon));
    int64_t s = want < 1 ? 1 : (want > (double)r->n ? r->n : (int64_t)want);
    while (r->out->count < r->budget) {
        if (cancelled(r)) {
            st = dl_error_set(err, DL_ERR_CANCELLED, "selection cancelled");
            break;
        }
        int64_t got = sample(r, &p, &g, s);
        if (got == 0) {
            r->out->stop = SEL_STOP_COST;
            break;
        }
        double best_gain = 0;
        int64_t best = lazier ? best_lazier(r, p.item, got, bound, &h, &best_gain)
                              : best_plain(r, p.item, got, &best_gain);
        if (stop_here(r, best_gain))
            break;
        st = take(r, best, best_gain, err);
        if (st != DL_OK)
            break;
        pool_remove(&p, best);
    }
done:
    free(p.item);
    free(p.where);
    free(bound);
    free(h.a);
    return st;
}

/* ---- the entry point --------------------------------------------------------------- */

static int uses_table(sel_fn_kind k)
{
    return k == SEL_FN_FL || k == SEL_FN_FLMI || k == SEL_FN_FLCG;
}

dl_status sel_maximize(const sel_problem *p, const sel_options *o,
                       sel_result *out, dl_error *err)
{
    if (!p || !o || !out)
        return dl_error_set(err, DL_ERR_USAGE, "sel_maximize: NULL argument");
    sel_result_free(out);
    dl_status st = sel_problem_check_shape(p, err);
    if (st != DL_OK)
        return st;
    int64_t n = sel_problem_size(p), budget;
    st = check_options(o, n, err);
    if (st == DL_OK)
        st = sel_options_budget(o, n, &budget, err);
    if (st != DL_OK)
        return st;
    sel_fn *f;
    st = sel_fn_create(p, uses_table(p->fn), o->threads, &f, err);
    if (st != DL_OK)
        return st;
    out->indices = malloc((size_t)(budget ? budget : 1) * sizeof *out->indices);
    out->gains = malloc((size_t)(budget ? budget : 1) * sizeof *out->gains);
    if (!out->indices || !out->gains) {
        sel_fn_free(f);
        sel_result_free(out);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for the result");
    }
    run r = {f, o, n, budget, o->cost_budget, out};
    out->stop = SEL_STOP_BUDGET;
    switch (o->optimizer) {
    case SEL_OPT_NAIVE:
        st = run_naive(&r, err);
        break;
    case SEL_OPT_LAZY:
        st = run_lazy(&r, err);
        break;
    case SEL_OPT_STOCHASTIC:
        st = run_stochastic(&r, 0, err);
        break;
    case SEL_OPT_LAZIER:
        st = run_stochastic(&r, 1, err);
        break;
    }
    if (st == DL_OK) {
        out->value = sel_fn_value_memo(f);
        out->gathered = f->gathered;
    }
    sel_fn_free(f);
    if (st != DL_OK)
        sel_result_free(out);
    return st;
}
