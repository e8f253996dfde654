/* ut.c: DELIFT's in-context utility: templates, prepared records, scoring
 * with shared prefixes, the cache as checkpoint (ut.h, docs/pipeline.md). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dl_sha256.h"
#include "ut.h"

/* Bumped whenever a change can alter a cached score's bits. */
#define UT_ENGINE_VERSION "delift-ut-3" /* 3: blas row chunks of 128 */

/* Pairs per cache transaction: large enough that the fsync is noise, small
 * enough that a kill loses little. */
#define UT_BLOCK_PAIRS 64

struct ut_scorer {
    lm_ctx *ctx;
    const lm_tok *tok;
    const char *tpl_noicl, *tpl_icl;
    int add_bos;
    int32_t bos, eos;
    int64_t n_ctx;
    int64_t tq; /* truncation quantum: a cut rounds up to a multiple of it */
    ut_cache *cache;
    int64_t scope;
    char scope_hex[65];
    ut_stats stats;
    double *cur_ll; /* set while a block runs in log-likelihood mode (no cache) */
    int no_sharing; /* benchmarks: every prompt token in the continuation */
};

/* ---- templates --------------------------------------------------------------- */

static const char *find_ph(const char *s, const char *ph)
{
    return strstr(s, ph);
}

static int count_ph(const char *s, const char *ph)
{
    int n = 0;
    for (const char *p = strstr(s, ph); p; p = strstr(p + 1, ph))
        n++;
    return n;
}

static dl_status check_one(const char *tpl, int icl, dl_error *err)
{
    const char *field = icl ? "template.icl" : "template.noicl";
    const char *pi = find_ph(tpl, "{p_i}");
    dl_status st = DL_OK;
    if (count_ph(tpl, "{p_i}") != 1)
        st = dl_error_set(err, DL_ERR_USAGE, "the template must contain {p_i} exactly once");
    else if (!icl && (count_ph(tpl, "{p_j}") || count_ph(tpl, "{r_j}")))
        st = dl_error_set(err, DL_ERR_USAGE, "the no-ICL template cannot use {p_j} or {r_j}");
    else if (icl && (count_ph(tpl, "{p_j}") > 1 || count_ph(tpl, "{r_j}") > 1))
        st = dl_error_set(err, DL_ERR_USAGE, "{p_j} and {r_j} may appear at most once each");
    else if (icl && (find_ph(pi, "{p_j}") || find_ph(pi, "{r_j}")))
        st = dl_error_set(err, DL_ERR_USAGE, "{p_j} and {r_j} must come before {p_i}");
    if (st)
        dl_error_locate(err, NULL, 0, field);
    return st;
}

dl_status ut_config_check(const ut_config *c, dl_error *err)
{
    dl_status st = check_one(c && c->tpl_noicl ? c->tpl_noicl : UT_TPL_NOICL_DEFAULT, 0, err);
    if (!st)
        st = check_one(c && c->tpl_icl ? c->tpl_icl : UT_TPL_ICL_DEFAULT, 1, err);
    if (!st && c && (c->trunc_quantum < 0 || c->trunc_quantum > UT_TRUNC_QUANTUM_MAX)) {
        st = dl_error_set(err, DL_ERR_USAGE,
                          "the truncation quantum must be 0 (the default, %d) or 1 to %d tokens",
                          UT_TRUNC_QUANTUM_DEFAULT, UT_TRUNC_QUANTUM_MAX);
        dl_error_locate(err, NULL, 0, "truncate_quantum");
    }
    return st;
}

int64_t ut_config_trunc_quantum(const ut_config *c)
{
    return c && c->trunc_quantum > 0 ? c->trunc_quantum : UT_TRUNC_QUANTUM_DEFAULT;
}

/* A growable byte buffer for filling templates. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static int sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* Appends tpl[0 .. up to {p_i}) with {p_j}/{r_j} filled (ex may be NULL for
 * no-ICL).  *tail receives the text after {p_i}. */
static int fill_head(sbuf *b, const char *tpl, const ut_item *ex, const char **tail)
{
    const char *s = tpl;
    for (;;) {
        const char *ph = strchr(s, '{');
        while (ph && strncmp(ph, "{p_i}", 5) && strncmp(ph, "{p_j}", 5) && strncmp(ph, "{r_j}", 5))
            ph = strchr(ph + 1, '{');
        if (!ph)
            return -1; /* checked templates always hold {p_i} */
        if (sbuf_add(b, s, (size_t)(ph - s)))
            return -1;
        if (!strncmp(ph, "{p_i}", 5)) {
            *tail = ph + 5;
            return 0;
        }
        const char *v = ph[1] == 'p' ? ex->prompt : ex->response;
        if (sbuf_add(b, v, strlen(v)))
            return -1;
        s = ph + 5;
    }
}

/* ---- prepared records ---------------------------------------------------------- */

static char *concat3(const char *a, const char *b, size_t bn, const char *c, const char *d,
                     size_t dn, const char *e)
{
    size_t an = strlen(a), cn = strlen(c), en = strlen(e);
    char *s = malloc(an + bn + cn + dn + en + 1);
    if (!s)
        return NULL;
    char *p = s;
    memcpy(p, a, an), p += an;
    if (bn)
        memcpy(p, b, bn), p += bn;
    memcpy(p, c, cn), p += cn;
    if (dn)
        memcpy(p, d, dn), p += dn;
    memcpy(p, e, en), p += en;
    *p = '\0';
    return s;
}

void ut_set_free(ut_set *s)
{
    if (!s)
        return;
    for (int64_t i = 0; i < s->n; i++) {
        free(s->items[i].prompt);
        free(s->items[i].response);
        free(s->items[i].resp_ids);
    }
    free(s->items);
    free(s);
}

dl_status ut_set_from_pool(const rec_pool *pool, const lm_tok *tok, ut_set **out, dl_error *err)
{
    *out = NULL;
    int32_t eos = lm_tok_eos(tok);
    if (eos < 0)
        return dl_error_set(err, DL_ERR_INPUT,
                            "the model's tokenizer has no EOS token, which DELIFT's sequences "
                            "need as separator and terminator");
    ut_set *s = calloc(1, sizeof *s);
    if (!s || !(s->items = calloc((size_t)(pool->n ? pool->n : 1), sizeof *s->items))) {
        free(s);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld records",
                            (long long)pool->n);
    }
    s->n = pool->n;
    for (int64_t i = 0; i < pool->n; i++) {
        const rec_record *r = &pool->records[i];
        ut_item *it = &s->items[i];
        memcpy(it->hash, r->hash, REC_HASH_LEN);
        it->prompt = concat3("Instruction: ", r->instruction, r->instruction_len, "\nInput: ",
                             r->input, r->input_len, "\n");
        it->response = concat3(" ", r->output, r->output_len, "", NULL, 0, "");
        lm_tok_ids ids = {0};
        dl_status st = DL_ERR_NOMEM;
        if (it->prompt && it->response) {
            st = lm_tok_encode(tok, it->response, strlen(it->response), 0, &ids, err);
            if (!st)
                st = lm_tok_ids_push(&ids, eos, err);
        } else {
            dl_error_set(err, DL_ERR_NOMEM, "out of memory for record %lld", (long long)i);
        }
        if (st) {
            lm_tok_ids_free(&ids);
            ut_set_free(s);
            return st;
        }
        it->resp_ids = ids.ids;
        it->n_resp = ids.n;
    }
    *out = s;
    return DL_OK;
}

/* ---- scorer ------------------------------------------------------------------- */

dl_status ut_scorer_new(lm_ctx *ctx, const lm_tok *tok, const ut_config *cfg,
                        const uint8_t model_hash[32], ut_cache *cache, ut_scorer **out,
                        dl_error *err)
{
    *out = NULL;
    dl_status st = ut_config_check(cfg, err);
    if (st)
        return st;
    ut_scorer *s = calloc(1, sizeof *s);
    if (!s)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    s->ctx = ctx;
    s->tok = tok;
    s->tpl_noicl = cfg && cfg->tpl_noicl ? cfg->tpl_noicl : UT_TPL_NOICL_DEFAULT;
    s->tpl_icl = cfg && cfg->tpl_icl ? cfg->tpl_icl : UT_TPL_ICL_DEFAULT;
    s->add_bos = cfg ? cfg->add_bos : 0;
    s->tq = ut_config_trunc_quantum(cfg);
    s->bos = lm_tok_bos(tok);
    s->eos = lm_tok_eos(tok);
    s->n_ctx = lm_ctx_n_ctx(ctx);
    if (s->eos < 0 || (s->add_bos && s->bos < 0)) {
        const char *which = s->eos < 0 ? "EOS" : "BOS";
        free(s);
        return dl_error_set(err, DL_ERR_INPUT, "the model's tokenizer has no %s token", which);
    }
    /* The scope: everything a score depends on besides the two records. */
    dl_sha256_ctx h;
    dl_sha256_init(&h);
    char meta[256];
    /* the fast mode's scores differ: their own scope (exact scopes unchanged) */
    int mn = snprintf(meta, sizeof meta, "%s|bos=%d|n_ctx=%lld|tq=%lld|backend=%s%s",
                      UT_ENGINE_VERSION, s->add_bos, (long long)s->n_ctx, (long long)s->tq,
                      lm_ctx_backend_name(ctx), lm_ctx_q8_act(ctx) ? "|act=q8" : "");
    dl_sha256_update(&h, meta, (size_t)mn + 1);
    dl_sha256_update(&h, model_hash, 32);
    dl_sha256_update(&h, s->tpl_noicl, strlen(s->tpl_noicl) + 1);
    dl_sha256_update(&h, s->tpl_icl, strlen(s->tpl_icl) + 1);
    uint8_t key[32];
    dl_sha256_final(&h, key);
    dl_sha256_hex(key, s->scope_hex);
    if (cache) {
        char desc[400];
        char mh[65];
        dl_sha256_hex(model_hash, mh);
        snprintf(desc, sizeof desc, "%s model=%.16s", meta, mh);
        st = ut_cache_scope(cache, key, desc, &s->scope, err);
        if (st) {
            free(s);
            return st;
        }
        s->cache = cache;
    }
    *out = s;
    return DL_OK;
}

void ut_scorer_free(ut_scorer *s)
{
    free(s);
}

const char *ut_scorer_scope_hex(const ut_scorer *s)
{
    return s->scope_hex;
}

const ut_stats *ut_scorer_stats(const ut_scorer *s)
{
    return &s->stats;
}

int ut_scorer_set_sharing(ut_scorer *s, int on)
{
    if (s->cache && !on)
        return -1;
    s->no_sharing = !on;
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- one group: pairs sharing a header (one example, or no-ICL) ------------- */

/* A pair to compute: target item, where its d goes, and its cache key. */
typedef struct ut_job {
    const ut_item *target;
    int64_t out;      /* index into the block's result arrays */
    int32_t *seq;     /* owned: the continuation (or whole sequence when unshared) */
    int64_t n_seq;
    int64_t split;    /* end of the shared prefix in prompt tokens (-1: unshared) */
    int64_t cut;      /* prompt tokens dropped to fit: the prefix is [cut, split) */
    int64_t t0;       /* first scored index in seq */
} ut_job;

static int64_t lcp(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    int64_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

/* Builds job->seq for target t whose full prompt is head + p_i + tail.
 * h_ids: tokens(head).  Returns DL_ERR_NOMEM or a tokenizer error; marks
 * the job unscorable (n_seq 0) when the response does not fit. */
static dl_status job_build(ut_scorer *s, sbuf *text, size_t head_len, const char *tail,
                           const lm_tok_ids *h_ids, ut_job *job, dl_error *err)
{
    const ut_item *t = job->target;
    text->n = head_len;
    if (sbuf_add(text, t->prompt, strlen(t->prompt)) || sbuf_add(text, tail, strlen(tail)))
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    lm_tok_ids f = {0};
    dl_status st = lm_tok_encode(s->tok, text->p, text->n, 0, &f, err);
    if (st) {
        lm_tok_ids_free(&f);
        return st;
    }
    int64_t nb = s->add_bos ? 1 : 0, n_f = f.n;
    int64_t total = nb + n_f + 1 + t->n_resp;
    job->n_seq = 0;
    if (nb + 1 + t->n_resp > s->n_ctx) { /* the response alone does not fit */
        lm_tok_ids_free(&f);
        return DL_OK;
    }
    /* The cut rounds up to the quantum, so that the targets of one example
     * whose overflows round alike share the prefix [cut, split). */
    int64_t over = total - s->n_ctx;
    job->cut = over > 0 ? (over + s->tq - 1) / s->tq * s->tq : 0;
    if (job->cut > n_f)
        job->cut = n_f; /* every prompt token: BOS, EOS and the response still fit */
    int64_t split = s->no_sharing ? 0 : lcp(f.ids, f.n, h_ids->ids, h_ids->n);
    int64_t from;
    if (job->cut == 0 || job->cut < split) {
        job->split = split; /* the prefix is [bos] h[cut..split) */
        from = split;
    } else {
        job->split = -1; /* the cut reaches p_i: unshared, [bos] f[cut..) eos r */
        from = job->cut;
    }
    int64_t lead = job->split < 0 ? nb : 0; /* BOS goes in the sequence only when unshared */
    job->n_seq = lead + (n_f - from) + 1 + t->n_resp;
    job->seq = malloc((size_t)job->n_seq * sizeof *job->seq);
    if (!job->seq) {
        lm_tok_ids_free(&f);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    }
    int64_t k = 0;
    if (lead)
        job->seq[k++] = s->bos;
    memcpy(job->seq + k, f.ids + from, (size_t)(n_f - from) * sizeof *f.ids);
    k += n_f - from;
    job->seq[k++] = s->eos;
    job->t0 = k;
    memcpy(job->seq + k, t->resp_ids, (size_t)t->n_resp * sizeof *t->resp_ids);
    lm_tok_ids_free(&f);
    return DL_OK;
}

static int cmp_job_len(const void *a, const void *b)
{
    const ut_job *x = *(const ut_job *const *)a, *y = *(const ut_job *const *)b;
    return (x->n_seq < y->n_seq) - (x->n_seq > y->n_seq);
}

/* Scores jobs[0..n) which share the prefix [bos] h_ids[cut..split), or are
 * unshared (split -1, no prefix).  d_out[job->out]. */
static dl_status score_batch(ut_scorer *s, ut_job **jobs, int64_t n, const lm_tok_ids *h_ids,
                             int64_t split, int64_t cut, double *d_out, ut_cache_value *v_out,
                             dl_error *err)
{
    int64_t nb = s->add_bos ? 1 : 0;
    int64_t n_pre = split >= 0 ? nb + split - cut : 0;
    lm_prefix *pre = NULL;
    dl_status st = DL_OK;
    double t_start = now_s();
    if (n_pre > 0) {
        int32_t *p = malloc((size_t)n_pre * sizeof *p);
        if (!p)
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        if (nb)
            p[0] = s->bos;
        memcpy(p + nb, h_ids->ids + cut, (size_t)(split - cut) * sizeof *p);
        st = lm_prefix_new(s->ctx, p, n_pre, s->n_ctx, &pre, err);
        free(p);
        if (st)
            return st;
        s->stats.tokens_prefix += n_pre;
    }
    qsort(jobs, (size_t)n, sizeof *jobs, cmp_job_len); /* longest first: lanes balance */
    lm_seq *seqs = malloc((size_t)n * sizeof *seqs);
    int64_t n_lp = 0;
    for (int64_t i = 0; i < n; i++)
        n_lp += jobs[i]->n_seq - jobs[i]->t0;
    float *lp = malloc((size_t)(n_lp ? n_lp : 1) * sizeof *lp);
    if (!seqs || !lp) {
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        seqs[i] = (lm_seq){jobs[i]->seq, jobs[i]->n_seq, jobs[i]->t0, jobs[i]->n_seq};
        s->stats.tokens_scored += jobs[i]->n_seq;
        s->stats.tokens_unshared += jobs[i]->n_seq + n_pre;
        s->stats.pairs_truncated += jobs[i]->cut > 0;
    }
    st = lm_ctx_score(s->ctx, pre, seqs, n, lp, NULL, err);
    if (st)
        goto done;
    const float *q = lp;
    for (int64_t i = 0; i < n; i++) {
        int64_t T = jobs[i]->n_seq - jobs[i]->t0;
        double acc = 0.0, lp_sum = 0.0;
        for (int64_t t = 0; t < T; t++) {
            double e = 1.0 - exp((double)q[t]);
            acc += e * e;
            lp_sum += (double)q[t];
        }
        if (s->cur_ll)
            s->cur_ll[jobs[i]->out] = lp_sum / (double)T;
        q += T;
        d_out[jobs[i]->out] = sqrt(acc / (double)T);
        v_out[jobs[i]->out].n_scored = (int32_t)T;
        v_out[jobs[i]->out].n_cut = (int32_t)jobs[i]->cut;
    }
done:
    s->stats.seconds_model += now_s() - t_start;
    free(seqs);
    free(lp);
    lm_prefix_free(pre);
    return st;
}

/* Computes d for the targets of one header (an example's, or no-ICL):
 * jobs[0..n) with targets and out set; groups by split and scores. */
static dl_status score_group(ut_scorer *s, const char *tpl, const ut_item *ex, ut_job *jobs,
                             int64_t n, double *d_out, ut_cache_value *v_out, dl_error *err)
{
    sbuf text = {0};
    const char *tail = NULL;
    lm_tok_ids h_ids = {0};
    ut_job **ptr = malloc((size_t)(n ? n : 1) * sizeof *ptr);
    dl_status st = DL_OK;
    if (!ptr || fill_head(&text, tpl, ex, &tail)) {
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t head_len = text.n;
    st = lm_tok_encode(s->tok, text.p, head_len, 0, &h_ids, err);
    for (int64_t i = 0; !st && i < n; i++) {
        st = job_build(s, &text, head_len, tail, &h_ids, &jobs[i], err);
        if (!st && jobs[i].n_seq == 0) {
            d_out[jobs[i].out] = NAN;
            v_out[jobs[i].out] = (ut_cache_value){NAN, 0, 0};
            if (s->cur_ll)
                s->cur_ll[jobs[i].out] = NAN;
            s->stats.unscorable++;
        }
    }
    /* Repeatedly take the jobs of the first remaining prefix [cut, split);
     * split -1: the unshared sequences, scored together without a prefix. */
    for (int64_t i = 0; !st && i < n; i++) {
        if (!jobs[i].seq)
            continue;
        int64_t split = jobs[i].split, cut = split < 0 ? 0 : jobs[i].cut, m = 0;
        for (int64_t k = i; k < n; k++)
            if (jobs[k].seq && jobs[k].split == split && (split < 0 || jobs[k].cut == cut))
                ptr[m++] = &jobs[k];
        st = score_batch(s, ptr, m, &h_ids, split, cut, d_out, v_out, err);
        for (int64_t k = 0; k < m; k++) {
            free(ptr[k]->seq);
            ptr[k]->seq = NULL;
        }
    }
done:
    for (int64_t i = 0; i < n; i++) {
        free(jobs[i].seq);
        jobs[i].seq = NULL;
    }
    free(ptr);
    free(text.p);
    lm_tok_ids_free(&h_ids);
    return st;
}

/* ---- blocks: cache lookup, compute the rest, commit ------------------------ */

/* One unit of work: the pairs of block entries [0..n) with example ex (NULL:
 * no-ICL); targets[k], results into d[k]. */
typedef struct ut_block {
    ut_cache_key *keys;
    ut_cache_value *vals;
    uint8_t *found;
    ut_job *jobs;
    const ut_item **targets;
    const ut_item **examples; /* per entry; NULL entries for no-ICL */
    double *d;
    double *ll; /* mean log-probabilities, in log-likelihood mode */
    int64_t n, cap;
} ut_block;

static void block_free(ut_block *b)
{
    free(b->keys);
    free(b->vals);
    free(b->found);
    free(b->jobs);
    free(b->targets);
    free(b->examples);
    free(b->d);
    free(b->ll);
    memset(b, 0, sizeof *b);
}

static int block_reserve(ut_block *b, int64_t cap)
{
    if (cap <= b->cap)
        return 0;
    block_free(b);
    b->keys = calloc((size_t)cap, sizeof *b->keys);
    b->vals = calloc((size_t)cap, sizeof *b->vals);
    b->found = calloc((size_t)cap, 1);
    b->jobs = calloc((size_t)cap, sizeof *b->jobs);
    b->targets = calloc((size_t)cap, sizeof *b->targets);
    b->examples = calloc((size_t)cap, sizeof *b->examples);
    b->d = calloc((size_t)cap, sizeof *b->d);
    b->ll = calloc((size_t)cap, sizeof *b->ll);
    b->cap = cap;
    return b->keys && b->vals && b->found && b->jobs && b->targets && b->examples && b->d &&
                   b->ll
               ? 0
               : -1;
}

static void block_add(ut_block *b, const ut_item *t, const ut_item *ex)
{
    int64_t k = b->n++;
    b->targets[k] = t;
    b->examples[k] = ex;
    ut_cache_key *key = &b->keys[k];
    memset(key, 0, sizeof *key);
    key->kind = ex ? UT_CACHE_ICL : UT_CACHE_NOICL;
    memcpy(key->target, t->hash, 32);
    if (ex)
        memcpy(key->example, ex->hash, 32);
    b->found[k] = 0;
}

/* Runs a filled block: entries are grouped by example (consecutive runs of
 * the same example pointer). */
static dl_status block_run(ut_scorer *s, ut_block *b, int ll_mode, dl_error *err)
{
    dl_status st = DL_OK;
    s->stats.pairs_total += b->n;
    s->cur_ll = NULL;
    if (ll_mode)
        s->cur_ll = b->ll; /* the cache holds d only: compute everything */
    else if (s->cache) {
        st = ut_cache_get(s->cache, s->scope, b->keys, b->n, b->vals, b->found, err);
        if (st)
            return st;
    }
    int64_t fresh = 0;
    for (int64_t k = 0; k < b->n; k++) {
        if (b->found[k]) {
            b->d[k] = b->vals[k].d;
            s->stats.pairs_cached++;
        }
    }
    for (int64_t k0 = 0; !st && k0 < b->n;) {
        const ut_item *ex = b->examples[k0];
        int64_t k1 = k0, m = 0;
        while (k1 < b->n && b->examples[k1] == ex)
            k1++;
        for (int64_t k = k0; k < k1; k++)
            if (!b->found[k])
                b->jobs[m++] = (ut_job){.target = b->targets[k], .out = k};
        if (m)
            st = score_group(s, ex ? s->tpl_icl : s->tpl_noicl, ex, b->jobs, m, b->d, b->vals,
                             err);
        fresh += m;
        k0 = k1;
    }
    s->cur_ll = NULL;
    if (st)
        return st;
    s->stats.pairs_scored += fresh;
    if (s->cache && fresh && !ll_mode) {
        /* Store the computed entries only (compacted to the front). */
        int64_t w = 0;
        for (int64_t k = 0; k < b->n; k++)
            if (!b->found[k]) {
                b->keys[w] = b->keys[k];
                b->vals[w] = b->vals[k];
                b->vals[w].d = b->d[k];
                w++;
            }
        st = ut_cache_put(s->cache, s->scope, b->keys, b->vals, w, err);
    }
    return st;
}

static dl_status hooks_poll(const ut_hooks *h, const char *phase, int64_t done, int64_t total,
                            dl_error *err)
{
    if (h && h->progress)
        h->progress(h->progress_ctx, phase, done, total);
    if (h && h->cancel && atomic_load(h->cancel))
        return dl_error_set(err, DL_ERR_CANCELLED, "cancelled");
    return DL_OK;
}

static dl_status score_noicl(ut_scorer *s, const ut_set *targets, double *d, double *ll,
                             const ut_hooks *h, dl_error *err)
{
    ut_block b = {0};
    if (block_reserve(&b, UT_BLOCK_PAIRS))
        return block_free(&b), dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    dl_status st = hooks_poll(h, "noicl", 0, targets->n, err);
    for (int64_t i0 = 0; !st && i0 < targets->n; i0 += UT_BLOCK_PAIRS) {
        int64_t i1 = i0 + UT_BLOCK_PAIRS < targets->n ? i0 + UT_BLOCK_PAIRS : targets->n;
        b.n = 0;
        for (int64_t i = i0; i < i1; i++)
            block_add(&b, &targets->items[i], NULL);
        st = block_run(s, &b, ll != NULL, err);
        for (int64_t i = i0; !st && i < i1; i++) {
            d[i] = b.d[i - i0];
            if (ll)
                ll[i] = b.ll[i - i0];
        }
        if (!st)
            st = hooks_poll(h, "noicl", i1, targets->n, err);
    }
    block_free(&b);
    return st;
}

/* Inverts the pairs (rows = targets) into per-example lists of entry ids. */
static dl_status pairs_by_example(const ut_pairs *pairs, int64_t n_t, int64_t n_e,
                                  int64_t **col_ptr, int64_t **entry, dl_error *err)
{
    int64_t nnz = pairs ? pairs->row_ptr[n_t] : n_t * n_e;
    *col_ptr = calloc((size_t)n_e + 1, sizeof **col_ptr);
    *entry = malloc((size_t)(nnz ? nnz : 1) * sizeof **entry);
    if (!*col_ptr || !*entry)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory for %lld pairs", (long long)nnz);
    int64_t *cp = *col_ptr;
    for (int64_t k = 0; k < nnz; k++) {
        int64_t j = pairs ? pairs->cols[k] : k % n_e;
        if (j < 0 || j >= n_e)
            return dl_error_set(err, DL_ERR_USAGE, "pair %lld names example %lld of %lld",
                                (long long)k, (long long)j, (long long)n_e);
        cp[j + 1]++;
    }
    for (int64_t j = 0; j < n_e; j++)
        cp[j + 1] += cp[j];
    int64_t *fill = malloc((size_t)n_e * sizeof *fill + 1);
    if (!fill)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    memcpy(fill, cp, (size_t)n_e * sizeof *fill);
    for (int64_t k = 0; k < nnz; k++) { /* k ascends: targets stay in row order */
        int64_t j = pairs ? pairs->cols[k] : k % n_e;
        (*entry)[fill[j]++] = k;
    }
    free(fill);
    return DL_OK;
}

static dl_status score_icl(ut_scorer *s, const ut_set *targets, const ut_set *examples,
                           const ut_pairs *pairs, double *d, double *ll, const ut_hooks *h,
                           dl_error *err)
{
    int64_t n_t = targets->n, n_e = examples->n;
    int64_t nnz = pairs ? pairs->row_ptr[n_t] : n_t * n_e;
    int64_t *col_ptr = NULL, *entry = NULL, *row_of = NULL;
    ut_block b = {0};
    dl_status st = pairs_by_example(pairs, n_t, n_e, &col_ptr, &entry, err);
    if (!st && !(row_of = malloc((size_t)(nnz ? nnz : 1) * sizeof *row_of)))
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; !st && i < n_t; i++)
        for (int64_t k = pairs ? pairs->row_ptr[i] : i * n_e;
             k < (pairs ? pairs->row_ptr[i + 1] : (i + 1) * n_e); k++)
            row_of[k] = i;
    int64_t max_col = 0;
    for (int64_t j = 0; !st && j < n_e; j++)
        if (col_ptr[j + 1] - col_ptr[j] > max_col)
            max_col = col_ptr[j + 1] - col_ptr[j];
    if (!st && block_reserve(&b, max_col > UT_BLOCK_PAIRS ? max_col : UT_BLOCK_PAIRS))
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    int64_t done = 0;
    if (!st)
        st = hooks_poll(h, "pairs", 0, nnz, err);
    /* A block: whole examples, until it holds UT_BLOCK_PAIRS pairs or more. */
    for (int64_t j0 = 0; !st && j0 < n_e;) {
        int64_t j1 = j0;
        b.n = 0;
        while (j1 < n_e && (b.n == 0 || b.n + col_ptr[j1 + 1] - col_ptr[j1] <= b.cap)) {
            for (int64_t q = col_ptr[j1]; q < col_ptr[j1 + 1]; q++)
                block_add(&b, &targets->items[row_of[entry[q]]], &examples->items[j1]);
            j1++;
            if (b.n >= UT_BLOCK_PAIRS)
                break;
        }
        st = block_run(s, &b, ll != NULL, err);
        for (int64_t q = col_ptr[j0]; !st && q < col_ptr[j1]; q++) {
            d[entry[q]] = b.d[q - col_ptr[j0]];
            if (ll)
                ll[entry[q]] = b.ll[q - col_ptr[j0]];
        }
        done += b.n;
        if (!st)
            st = hooks_poll(h, "pairs", done, nnz, err);
        j0 = j1;
    }
    block_free(&b);
    free(col_ptr);
    free(entry);
    free(row_of);
    return st;
}

dl_status ut_score_noicl(ut_scorer *s, const ut_set *targets, double *d, const ut_hooks *h,
                         dl_error *err)
{
    return score_noicl(s, targets, d, NULL, h, err);
}

dl_status ut_score_noicl_ll(ut_scorer *s, const ut_set *targets, double *d, double *ll,
                            const ut_hooks *h, dl_error *err)
{
    return score_noicl(s, targets, d, ll, h, err);
}

dl_status ut_score_icl(ut_scorer *s, const ut_set *targets, const ut_set *examples,
                       const ut_pairs *pairs, double *d, const ut_hooks *h, dl_error *err)
{
    return score_icl(s, targets, examples, pairs, d, NULL, h, err);
}

dl_status ut_score_icl_ll(ut_scorer *s, const ut_set *targets, const ut_set *examples,
                          const ut_pairs *pairs, double *d, double *ll, const ut_hooks *h,
                          dl_error *err)
{
    return score_icl(s, targets, examples, pairs, d, ll, h, err);
}

dl_status ut_embed(ut_scorer *s, const ut_set *set, float *out, const ut_hooks *h, dl_error *err)
{
    int64_t chunk = 64;
    lm_seq *seqs = malloc((size_t)chunk * sizeof *seqs);
    int32_t **bufs = calloc((size_t)chunk, sizeof *bufs);
    int64_t d = lm_ctx_model(s->ctx)->hp.n_embd;
    dl_status st = seqs && bufs ? DL_OK : dl_error_set(err, DL_ERR_NOMEM, "out of memory");
    if (!st)
        st = hooks_poll(h, "embed", 0, set->n, err);
    for (int64_t i0 = 0; !st && i0 < set->n; i0 += chunk) {
        int64_t m = set->n - i0 < chunk ? set->n - i0 : chunk;
        for (int64_t k = 0; !st && k < m; k++) {
            const ut_item *it = &set->items[i0 + k];
            lm_tok_ids ids = {0};
            if (s->add_bos)
                st = lm_tok_ids_push(&ids, s->bos, err);
            if (!st)
                st = lm_tok_encode(s->tok, it->prompt, strlen(it->prompt), 0, &ids, err);
            if (!st)
                st = lm_tok_ids_push(&ids, s->eos, err);
            for (int64_t t = 0; !st && t < it->n_resp; t++)
                st = lm_tok_ids_push(&ids, it->resp_ids[t], err);
            int64_t n = ids.n < s->n_ctx ? ids.n : s->n_ctx; /* the head, when too long */
            bufs[k] = ids.ids;
            seqs[k] = (lm_seq){ids.ids, n, n, n};
        }
        double t0 = now_s();
        if (!st)
            st = lm_ctx_score(s->ctx, NULL, seqs, m, NULL, out + i0 * d, err);
        s->stats.seconds_model += now_s() - t0;
        for (int64_t k = 0; k < m; k++) {
            free(bufs[k]);
            bufs[k] = NULL;
        }
        if (!st)
            st = hooks_poll(h, "embed", i0 + m, set->n, err);
    }
    free(seqs);
    free(bufs);
    return st;
}

void ut_kernel_from_d(const double *d_noicl, const double *d_icl, int64_t n_rows, int64_t n_cols,
                      const int64_t *row_ptr, float *out, double *min_out, double *max_out)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t k0 = row_ptr ? row_ptr[i] : i * n_cols;
        int64_t k1 = row_ptr ? row_ptr[i + 1] : (i + 1) * n_cols;
        for (int64_t k = k0; k < k1; k++) {
            double u = d_noicl[i] - d_icl[k];
            if (isfinite(u)) {
                lo = u < lo ? u : lo;
                hi = u > hi ? u : hi;
            }
        }
    }
    double range = hi - lo;
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t k0 = row_ptr ? row_ptr[i] : i * n_cols;
        int64_t k1 = row_ptr ? row_ptr[i + 1] : (i + 1) * n_cols;
        for (int64_t k = k0; k < k1; k++) {
            double u = d_noicl[i] - d_icl[k];
            out[k] = isfinite(u) && range > 0 ? (float)((u - lo) / range) : 0.0f;
        }
    }
    if (min_out)
        *min_out = isfinite(lo) ? lo : 0.0;
    if (max_out)
        *max_out = isfinite(hi) ? hi : 0.0;
}
