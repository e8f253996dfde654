/* lm_backend_blas.c: the OpenBLAS backend (lm_backend.h).
 *
 * Matmuls are single-threaded cblas_sgemm calls over chunks of at most
 * LM_BLAS_ROW_CHUNK rows counted from each segment's (sequence's) first row,
 * so that a sequence's arithmetic never depends on its batch: OpenBLAS
 * computes a row differently depending on the row count of the call and on
 * the row's position in it (its micro-kernel tiles), which we measured on
 * 0.3.21.  All cores are used by the engine's lanes: one backend instance
 * per thread, each working on different sequences.
 * openblas_set_num_threads(1) is therefore called at creation (process-wide).
 *
 * When one lane works alone (a single long sequence, a shared prefix), the
 * engine lends it the idle lanes' cores (set_threads): a team of threads
 * (lm_team.h) then shares the lane's matmul pieces (row chunk x weight
 * panel), attention pieces (segment x head) and log-softmax rows.  Every
 * piece is the same call with the same arguments whoever runs it, so the
 * results are the same bits with or without the team; each member has its
 * own panel and score scratch.
 *
 * F32 weights are read in place from the mapping.  Other types are
 * dequantised, LM_BLAS_PANEL_ROWS weight rows at a time, into an f32 panel
 * (lm_quant_dequant_rows) that every segment of the call then multiplies;
 * panel boundaries depend on the weight only, so exactness per segment holds.
 *
 * Attention runs per (segment, head, block of LM_BLAS_ATT_BLOCK rows): the
 * block's scores against the past and its own causal keys by two sgemms,
 * a row softmax with a vectorisable exp, and two sgemms against the values.
 * Blocks are counted from the segment's first row, again for exactness.
 *
 * The elementwise ops (embed, rmsnorm, rope, swiglu, add, row_sum) are
 * float loops over host memory; logprob uses the same fast exp.  The exp,
 * row maximum and SwiGLU kernels also exist as AVX2 + FMA instances (target
 * attribute, so the file builds for baseline x86-64), picked per instance at
 * creation by __builtin_cpu_supports or forced by lm_backend_blas_set_isa.
 *
 * Fast mode (lm_backend_params.q8_act): every matrix is repacked once per
 * context (shared_new, lm_q8mm.h; types other than Q8_0 are first encoded
 * as Q8_0) and its products quantise the input rows to 8 bits
 * (lm_q8mm_act_quantize, into the lane's scratch) and multiply in
 * integers.  An output element there depends on its own row and weight row
 * only, so no row chunking is needed for exactness; each team member
 * quantises and multiplies an equal share of the rows.  A matrix whose rows
 * are not a multiple of 32 values keeps the float path.
 */
#include "config.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lm_backend.h"
#include "lm_gguf.h"
#include "lm_q8mm.h"
#include "lm_quant.h"
#include "lm_team.h"

#define LM_BLAS_PANEL_ROWS 256
#define LM_BLAS_ATT_BLOCK 64
/* Rows of one sgemm call at most (see above): 128-row calls cost about 5 %
 * more than 256-row ones on these shapes, and let two threads share a
 * 256-token sequence. */
#define LM_BLAS_ROW_CHUNK 128
#define LM_BLAS_TEAM_MAX 64
#define LM_BLAS_TEAM_MIN_ROWS 16

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LM_BLAS_HAVE_AVX2 1
#define AVX2_FN __attribute__((target("avx2,fma")))
#endif

typedef struct blas_backend {
    lm_backend base;
    const lm_model *model;
    float *panel;    /* [PANEL_ROWS, max_cols]: dequantised weight rows */
    float *scores;   /* [ATT_BLOCK, max_ctx]: attention probabilities */
    int64_t max_ctx;
    int avx2;        /* 1: the AVX2 instances of exp_sum, max_of, swiglu */
    int need_panel;  /* some 2-D weight is not F32 */
    /* The team (set_threads): members 1.. use their own scratch. */
    lm_team *team;   /* NULL until first lent more than one thread */
    int active;      /* members the ops use now: 1 or lm_team_size(team) */
    float *m_panel[LM_BLAS_TEAM_MAX], *m_scores[LM_BLAS_TEAM_MAX]; /* [0]: panel, scores */
    /* Fast mode: the context's packs (borrowed) and the quantised rows. */
    const struct blas_shared *shared; /* NULL: not in the fast mode */
    unsigned char *qact;              /* [max rows, lm_q8mm_act_row_bytes(max cols)] */
} blas_backend;

/* At most this many threads pack the weights in fast mode. */
#define LM_BLAS_PACK_THREADS 64

/* What the lanes of one context share: the fast mode's repacked weights. */
typedef struct blas_shared {
    int32_t n;                /* the model's n_weights */
    lm_q8mm_weights **pack;   /* [n] by weight slot, owned: the pack of each matrix
                                 the products use, else NULL */
} blas_shared;

/* Process-wide kernel choice (lm_backend_blas_set_isa), read at creation. */
static _Atomic int blas_isa_wanted = LM_QUANT_ISA_AUTO;

static int blas_cpu_has_avx2(void)
{
#ifdef LM_BLAS_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static lm_quant_isa blas_isa_resolve(lm_quant_isa want)
{
    return want != LM_QUANT_ISA_GENERIC && blas_cpu_has_avx2() ? LM_QUANT_ISA_AVX2
                                                                : LM_QUANT_ISA_GENERIC;
}

lm_quant_isa lm_backend_blas_set_isa(lm_quant_isa isa)
{
    atomic_store(&blas_isa_wanted, (int)isa);
    return blas_isa_resolve(isa);
}

static int64_t max_cols_of(const lm_hparams *hp)
{
    int64_t c = hp->n_embd;
    if (hp->n_head * hp->head_dim > c)
        c = hp->n_head * hp->head_dim;
    return hp->n_ff > c ? hp->n_ff : c;
}

static void blas_destroy(lm_backend *b);

static void blas_shared_free(void *arg)
{
    blas_shared *sh = arg;
    if (!sh)
        return;
    for (int32_t i = 0; sh->pack && i < sh->n; i++)
        lm_q8mm_weights_free(sh->pack[i]);
    free(sh->pack);
    free(sh);
}

/* The pack of a matrix of another type than Q8_0: its rows dequantised and
 * encoded as Q8_0 (lm_quant_quantize_row_q8_0), LM_BLAS_PANEL_ROWS rows at
 * a time through a float panel, then repacked. */
static dl_status pack_converted(const lm_weight *w, lm_q8mm_weights **out, dl_error *err)
{
    size_t qrow = lm_quant_row_size(LM_QTYPE_Q8_0, w->n_cols);
    unsigned char *q8 = malloc(qrow * (size_t)w->n_rows);
    float *panel = malloc(sizeof(float) * (size_t)(LM_BLAS_PANEL_ROWS * w->n_cols));
    dl_status st = DL_OK;
    if (!q8 || !panel) {
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory converting %s to 8 bits", w->name);
    } else {
        for (int64_t r0 = 0; r0 < w->n_rows; r0 += LM_BLAS_PANEL_ROWS) {
            int64_t nr = w->n_rows - r0 < LM_BLAS_PANEL_ROWS ? w->n_rows - r0 : LM_BLAS_PANEL_ROWS;
            lm_quant_dequant_rows(w->type, (const unsigned char *)w->data + (size_t)r0 * w->row_bytes,
                                  w->row_bytes, nr, w->n_cols, panel, w->n_cols);
            for (int64_t r = 0; r < nr; r++)
                lm_quant_quantize_row_q8_0(panel + r * w->n_cols, q8 + (size_t)(r0 + r) * qrow,
                                           w->n_cols);
        }
        st = lm_q8mm_weights_new(q8, qrow, w->n_rows, w->n_cols, out, err);
    }
    free(q8);
    free(panel);
    return st;
}

/* The pack of one matrix w into sh->pack[w->slot]: Q8_0 as it is, other
 * types converted to Q8_0 first; then the file's pages of w may leave
 * memory, since the products read the pack (an embedding lookup of a tied
 * matrix reads them back a row at a time). */
static dl_status pack_one(const lm_model *m, blas_shared *sh, const lm_weight *w, dl_error *err)
{
    dl_status st;
    if (w->type == LM_QTYPE_Q8_0)
        st = lm_q8mm_weights_new(w->data, w->row_bytes, w->n_rows, w->n_cols, &sh->pack[w->slot],
                                 err);
    else
        st = pack_converted(w, &sh->pack[w->slot], err);
    if (st == DL_OK)
        lm_gguf_release(m->gguf, w->data, (size_t)w->n_rows * w->row_bytes);
    return st;
}

/* Packing on several threads: each takes the next matrix of the list until
 * none is left or one has failed.  Every matrix has its own slot, status and
 * error, so the result is the same whichever thread packs what. */
typedef struct pack_job {
    const lm_model *m;
    blas_shared *sh;
    const lm_weight **list;
    int64_t n;
    dl_status *st;  /* [n] */
    dl_error *errs; /* [n] */
    atomic_llong next;
    atomic_int failed;
} pack_job;

static void *pack_worker(void *arg)
{
    pack_job *jb = arg;
    for (;;) {
        int64_t i = atomic_fetch_add(&jb->next, 1);
        if (i >= jb->n || atomic_load(&jb->failed))
            break;
        dl_error_clear(&jb->errs[i]);
        jb->st[i] = pack_one(jb->m, jb->sh, jb->list[i], &jb->errs[i]);
        if (jb->st[i] != DL_OK)
            atomic_store(&jb->failed, 1);
    }
    return NULL;
}

/* Runs the job on the calling thread and up to threads - 1 more (fewer when
 * a thread cannot be started); returns the first failure in list order. */
static dl_status pack_all(pack_job *jb, int threads, dl_error *err)
{
    pthread_t th[LM_BLAS_PACK_THREADS];
    int started = 0;
    for (int t = 1; t < threads && t < LM_BLAS_PACK_THREADS && t < jb->n; t++)
        if (pthread_create(&th[started], NULL, pack_worker, jb) == 0)
            started++;
    pack_worker(jb);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    for (int64_t i = 0; i < jb->n; i++)
        if (jb->st[i] != DL_OK) {
            if (err && err->code == DL_OK) /* the first error stays, as dl_error_set */
                *err = jb->errs[i];
            return jb->st[i];
        }
    return DL_OK;
}

/* Fast mode: packs every matrix of m for the integer products, on up to
 * p->threads threads (NULL state outside fast mode). */
static dl_status blas_shared_new(const lm_model *m, const lm_backend_params *p, void **out,
                                 dl_error *err)
{
    *out = NULL;
    if (!p->q8_act)
        return DL_OK;
    if (lm_q8mm_isa_best() == LM_Q8MM_ISA_GENERIC)
        return dl_error_set(err, DL_ERR_USAGE,
                            "the fast mode needs a CPU with AVX2 and FMA: this one has only the "
                            "portable integer kernel, which is slower than the exact path");
    /* the matmul operands: the output layer (the largest, first, so that
     * threads finish together) and the layers' matrices, not an untied token
     * embedding (only looked up); odd widths keep the float path */
    int64_t n_mat = 7 * m->hp.n_layer + 1;
    blas_shared *sh = calloc(1, sizeof *sh);
    pack_job jb = {.m = m, .sh = sh};
    if (sh)
        sh->pack = calloc((size_t)(m->n_weights > 0 ? m->n_weights : 1), sizeof *sh->pack);
    jb.list = calloc((size_t)n_mat, sizeof *jb.list);
    jb.st = calloc((size_t)n_mat, sizeof *jb.st);
    jb.errs = calloc((size_t)n_mat, sizeof *jb.errs);
    unsigned char *listed = calloc((size_t)(m->n_weights > 0 ? m->n_weights : 1), 1);
    dl_status st = DL_OK;
    if (!sh || !sh->pack || !jb.list || !jb.st || !jb.errs || !listed) {
        st = dl_error_set(err, DL_ERR_NOMEM, "out of memory repacking the weights");
    } else {
        sh->n = m->n_weights;
        for (int64_t i = 0; i < n_mat; i++) {
            const lm_weight *w = m->output;
            if (i > 0) {
                const lm_layer *l = &m->layers[(i - 1) / 7];
                const lm_weight *const mats[7] = {l->wq,     l->wk,   l->wv,    l->wo,
                                                  l->w_gate, l->w_up, l->w_down};
                w = mats[(i - 1) % 7];
            }
            if (w->n_rows <= 1 || w->n_cols % LM_QK_0 != 0 || listed[w->slot])
                continue; /* a tied matrix is packed once */
            listed[w->slot] = 1;
            jb.list[jb.n++] = w;
        }
        atomic_init(&jb.next, 0);
        atomic_init(&jb.failed, 0);
        st = pack_all(&jb, p->threads, err);
    }
    free(jb.list);
    free(jb.st);
    free(jb.errs);
    free(listed);
    if (st != DL_OK) {
        blas_shared_free(sh);
        return st;
    }
    *out = sh;
    return DL_OK;
}

static dl_status blas_create(const lm_model *m, const lm_backend_params *p, lm_backend **out,
                             dl_error *err)
{
    openblas_set_num_threads(1);
    blas_backend *be = calloc(1, sizeof *be);
    int need_panel = 0;
    for (int32_t i = 0; i < m->n_weights; i++)
        need_panel |= m->weights[i].type != LM_QTYPE_F32 && m->weights[i].n_rows > 1;
    if (be) {
        be->need_panel = need_panel;
        be->active = 1;
        if (need_panel)
            be->panel = malloc((size_t)(LM_BLAS_PANEL_ROWS * max_cols_of(&m->hp)) * sizeof(float));
        be->scores = malloc((size_t)(LM_BLAS_ATT_BLOCK * p->max_ctx) * sizeof(float));
    }
    if (!be || (need_panel && !be->panel) || !be->scores) {
        if (be) {
            free(be->panel);
            free(be->scores);
        }
        free(be);
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory creating the blas backend");
    }
    be->base.ops = &lm_backend_blas_ops;
    be->model = m;
    be->max_ctx = p->max_ctx;
    be->avx2 = blas_isa_resolve((lm_quant_isa)atomic_load(&blas_isa_wanted)) == LM_QUANT_ISA_AVX2;
    be->m_panel[0] = be->panel;
    be->m_scores[0] = be->scores;
    if (p->q8_act && p->shared) {
        int64_t rows = p->max_rows > p->max_logit_rows ? p->max_rows : p->max_logit_rows;
        be->shared = p->shared;
        be->qact = malloc((size_t)rows * lm_q8mm_act_row_bytes(max_cols_of(&m->hp)));
        if (!be->qact) {
            blas_destroy(&be->base);
            return dl_error_set(err, DL_ERR_NOMEM, "out of memory creating the blas backend");
        }
    }
    *out = &be->base;
    return DL_OK;
}

static void blas_destroy(lm_backend *b)
{
    blas_backend *be = (blas_backend *)b;
    if (!be)
        return;
    lm_team_free(be->team);
    for (int i = 0; i < LM_BLAS_TEAM_MAX; i++) { /* [0] is panel / scores */
        free(be->m_panel[i]);
        free(be->m_scores[i]);
    }
    free(be->qact);
    free(be);
}

/* Lends the instance n threads for its ops (1: its own only).  The team and
 * its members' scratch are made on the first n > 1 and kept; when they
 * cannot be had, fewer members (at worst 1) are used: the results are the
 * same either way. */
static int blas_set_threads(lm_backend *b, int n)
{
    blas_backend *be = (blas_backend *)b;
    if (n > LM_BLAS_TEAM_MAX)
        n = LM_BLAS_TEAM_MAX;
    if (n > 1 && !be->team) {
        be->team = lm_team_new(n);
        int got = lm_team_size(be->team);
        const lm_model *m = be->model;
        for (int i = 1; i < got; i++) {
            if (be->need_panel)
                be->m_panel[i] = malloc((size_t)(LM_BLAS_PANEL_ROWS * max_cols_of(&m->hp)) *
                                        sizeof(float));
            be->m_scores[i] = malloc((size_t)(LM_BLAS_ATT_BLOCK * be->max_ctx) * sizeof(float));
            if ((be->need_panel && !be->m_panel[i]) || !be->m_scores[i]) {
                lm_team_free(be->team); /* out of memory: no team */
                be->team = NULL;
                break;
            }
        }
    }
    int size = lm_team_size(be->team);
    be->active = n <= 1 ? 1 : n < size ? 1 : size; /* a team runs on all its members */
    return be->active;
}

static dl_status blas_sync(lm_backend *b, dl_error *err)
{
    (void)b;
    (void)err;
    return DL_OK;
}

static float *blas_buf_alloc(lm_backend *b, int64_t n)
{
    (void)b;
    void *p = NULL;
    /* 64-byte rows starts help the sgemm packing and the exp loops. */
    if (n <= 0 || posix_memalign(&p, 64, (size_t)n * sizeof(float)) != 0)
        return NULL;
    return p;
}

static void blas_buf_free(lm_backend *b, float *buf)
{
    (void)b;
    free(buf);
}

static void blas_copy(lm_backend *b, float *dst, const float *src, int64_t n)
{
    (void)b;
    memmove(dst, src, (size_t)n * sizeof *dst);
}

/* exp(x) for x <= 0 (softmax arguments), relative error < 2e-7: x = k ln2 + r,
 * |r| <= ln2/2, exp(r) by a degree-6 Taylor polynomial, 2^k by exponent bits;
 * k = round(x / ln2) by the 1.5 * 2^23 trick (round to nearest, no libm).
 * Written on GCC/clang vector extensions of 16 bytes (4 lanes: SSE2 on
 * baseline x86-64, NEON on arm64; wider types would change the ABI of
 * these helpers without -mavx), two vectors per step for parallelism. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(float *p, v4f v)
{
    memcpy(p, &v, sizeof v);
}

static inline v4f v4_splat(float f)
{
    return (v4f){f, f, f, f};
}

/* mask lanes (all ones) take b, others a. */
static inline v4f v4_select(v4i mask, v4f a, v4f b)
{
    return (v4f)(((v4i)a & ~mask) | ((v4i)b & mask));
}

static inline v4f v4_exp_neg(v4f x)
{
    const v4f lo = v4_splat(-87.0f), magic = v4_splat(12582912.0f);
    x = v4_select(x < lo, x, lo);
    v4f t = x * v4_splat(1.44269504f) + magic;
    v4f kf = t - magic;
    v4i k = (v4i)t - 0x4B400000;
    v4f r = x - kf * v4_splat(0.693145752f) - kf * v4_splat(1.42860677e-6f);
    v4f p = v4_splat(1.0f / 720);
    p = p * r + v4_splat(1.0f / 120);
    p = p * r + v4_splat(1.0f / 24);
    p = p * r + v4_splat(1.0f / 6);
    p = p * r + v4_splat(0.5f);
    p = p * r + v4_splat(1.0f);
    p = p * r + v4_splat(1.0f);
    return p * (v4f)((k + 127) << 23);
}

/* x[i] = exp(x[i] - mx) for i < n; returns their sum (8 float lanes in two
 * vectors, then a fixed pairwise order). */
static float exp_sum(float *x, int64_t n, float mx)
{
    v4f acc0 = v4_splat(0.0f), acc1 = acc0, m = v4_splat(mx);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v4f e0 = v4_exp_neg(v4_load(x + i) - m);
        v4f e1 = v4_exp_neg(v4_load(x + i + 4) - m);
        v4_store(x + i, e0);
        v4_store(x + i + 4, e1);
        acc0 += e0;
        acc1 += e1;
    }
    float tail = 0.0f;
    for (; i < n; i++) {
        x[i] = v4_exp_neg(v4_splat(x[i] - mx))[0];
        tail += x[i];
    }
    return (((acc0[0] + acc0[1]) + (acc0[2] + acc0[3])) + ((acc1[0] + acc1[1]) + (acc1[2] + acc1[3]))) +
           tail;
}

static float max_of(const float *x, int64_t n)
{
    v4f m4 = v4_splat(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v = v4_load(x + i);
        m4 = v4_select(v > m4, m4, v);
    }
    float m = m4[0] > m4[1] ? m4[0] : m4[1];
    m = m4[2] > m ? m4[2] : m;
    m = m4[3] > m ? m4[3] : m;
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

#ifdef LM_BLAS_HAVE_AVX2
/* The AVX2 + FMA instances (chosen per instance at creation when the CPU has
 * them): the same exp algorithm as v4_exp_neg on 8 lanes, with fused
 * multiply-adds, so values differ from the portable ones in the last bits
 * only.  Row tails use masked loads and stores.  The choice depends on the
 * CPU and lm_backend_blas_set_isa only, never on a batch, so per-segment
 * exactness holds. */
AVX2_FN static inline __m256 v8_exp_neg(__m256 x)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), magic);
    __m256 kf = _mm256_sub_ps(t, magic);
    __m256i k = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000));
    __m256 r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(kf, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* Lanes [0, n) of a mask, 0 <= n < 8. */
AVX2_FN static inline __m256i v8_tail_mask(int64_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2_FN static inline float v8_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* exp_sum on 16 lanes (two accumulators), the tail masked. */
AVX2_FN static float exp_sum_avx2(float *x, int64_t n, float mx)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, m = _mm256_set1_ps(mx);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 e0 = v8_exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        __m256 e1 = v8_exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m));
        _mm256_storeu_ps(x + i, e0);
        _mm256_storeu_ps(x + i + 8, e1);
        acc0 = _mm256_add_ps(acc0, e0);
        acc1 = _mm256_add_ps(acc1, e1);
    }
    for (; i < n; i += 8) {
        __m256i mask = v8_tail_mask(n - i < 8 ? n - i : 8);
        __m256 e = v8_exp_neg(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), m));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(x + i, mask, e);
        acc1 = _mm256_add_ps(acc1, e);
    }
    return v8_hsum(_mm256_add_ps(acc0, acc1));
}

AVX2_FN static float max_of_avx2(const float *x, int64_t n)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + i));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + i + 8));
    }
    for (; i < n; i += 8) {
        __m256i mask = v8_tail_mask(n - i < 8 ? n - i : 8);
        __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, mask), _mm256_castsi256_ps(mask));
        m1 = _mm256_max_ps(m1, v);
    }
    m0 = _mm256_max_ps(m0, m1);
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* gate = silu(gate) * up on 8 lanes; returns how many values it did. */
AVX2_FN static int64_t swiglu_avx2(float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 neg = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
        __m256 e = v8_exp_neg(_mm256_or_ps(g, sign)); /* exp(-|g|) */
        __m256 sig = _mm256_div_ps(_mm256_blendv_ps(one, e, neg), _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_mul_ps(g, sig), _mm256_loadu_ps(up + i)));
    }
    return i;
}
#endif

/* The dispatchers: one branch per row or per op call. */
static float row_max(const blas_backend *be, const float *x, int64_t n)
{
#ifdef LM_BLAS_HAVE_AVX2
    if (be->avx2)
        return max_of_avx2(x, n);
#endif
    (void)be;
    return max_of(x, n);
}

static float row_exp_sum(const blas_backend *be, float *x, int64_t n, float mx)
{
#ifdef LM_BLAS_HAVE_AVX2
    if (be->avx2)
        return exp_sum_avx2(x, n, mx);
#endif
    (void)be;
    return exp_sum(x, n, mx);
}

static void blas_embed(lm_backend *b, const lm_weight *tok, const int32_t *ids, int64_t n, float *x)
{
    (void)b;
    const unsigned char *base = tok->data;
    for (int64_t i = 0; i < n; i++)
        lm_quant_dequant_row(tok->type, base + (size_t)ids[i] * tok->row_bytes, x + i * tok->n_cols,
                             tok->n_cols);
}

/* rmsnorm of rows [i0, i1): each row alone. */
static void rmsnorm_rows(const float *x, const lm_weight *w, int64_t i0, int64_t i1, float eps,
                         float *y)
{
    int64_t d = w->n_cols;
    const float *g = w->data;
    for (int64_t i = i0; i < i1; i++) {
        const float *xi = x + i * d;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t j = 0;
        for (; j + 8 <= d; j += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += xi[j + l] * xi[j + l];
        for (; j < d; j++)
            acc[0] += xi[j] * xi[j];
        double ss = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        float r = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        for (j = 0; j < d; j++)
            y[i * d + j] = xi[j] * r * g[j];
    }
}

typedef struct matmul_job {
    blas_backend *be;
    const float *x;
    int64_t ldx;
    const int64_t *seg;
    int64_t n_seg;
    const lm_weight *w;
    float *y;
} matmul_job;

/* The pieces of y = x W^T are (weight panel, segment, row chunk), numbered
 * in that order; member tid computes pieces tid, tid + n, ...  A panel is
 * LM_BLAS_PANEL_ROWS weight rows dequantised into the member's scratch (F32
 * weights: all N rows, read in place); a chunk is LM_BLAS_ROW_CHUNK rows
 * counted from the segment's first row. */
static void matmul_part(void *arg, int tid, int nt)
{
    const matmul_job *j = arg;
    const lm_weight *w = j->w;
    int64_t K = w->n_cols, N = w->n_rows, piece = 0;
    int quant = w->type != LM_QTYPE_F32;
    int64_t pw = quant ? LM_BLAS_PANEL_ROWS : N;
    float *panel = j->be->m_panel[tid];
    for (int64_t j0 = 0; j0 < N; j0 += pw) {
        int64_t nc = N - j0 < pw ? N - j0 : pw;
        const float *wp = quant ? panel : (const float *)w->data + j0 * K;
        int have = 0;
        for (int64_t s = 0; s < j->n_seg; s++) {
            for (int64_t r0 = j->seg[s]; r0 < j->seg[s + 1]; r0 += LM_BLAS_ROW_CHUNK) {
                if (piece++ % nt != tid)
                    continue;
                if (quant && !have) {
                    lm_quant_dequant_rows(w->type,
                                          (const unsigned char *)w->data + (size_t)j0 * w->row_bytes,
                                          w->row_bytes, nc, K, panel, K);
                    have = 1;
                }
                int64_t m = j->seg[s + 1] - r0 < LM_BLAS_ROW_CHUNK ? j->seg[s + 1] - r0
                                                                  : LM_BLAS_ROW_CHUNK;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nc, (int)K, 1.0f,
                            j->x + r0 * j->ldx, (int)j->ldx, wp, (int)K, 0.0f, j->y + r0 * N + j0,
                            (int)N);
            }
        }
    }
}

/* Runs fn on the team when one is lent (set_threads) and the op has at
 * least LM_BLAS_TEAM_MIN_ROWS rows, else on the caller (waking the team
 * costs more than a few rows' work: one generated token is one row). */
static void blas_run(blas_backend *be, int64_t rows, lm_team_fn fn, void *arg)
{
    if (be->active > 1 && rows >= LM_BLAS_TEAM_MIN_ROWS)
        lm_team_run(be->team, fn, arg);
    else
        fn(arg, 0, 1);
}

/* Fast mode: member tid of nt quantises rows [n tid / nt, n (tid + 1) / nt)
 * and multiplies them by every weight row, in chunks of LM_BLAS_ROW_CHUNK
 * rows: one team run, no barrier between the two steps, equal shares.  An
 * output element depends on its own row only, so any split gives the same
 * bits. */
typedef struct q8_job {
    const float *x;
    int64_t ldx, n;
    const lm_q8mm_weights *pack;
    int64_t K, N;
    unsigned char *qact;
    float *y;
} q8_job;

static void q8_part(void *arg, int tid, int nt)
{
    const q8_job *j = arg;
    size_t rb = lm_q8mm_act_row_bytes(j->K);
    int64_t r0 = j->n * tid / nt, r1 = j->n * (tid + 1) / nt;
    for (int64_t c = r0; c < r1; c += LM_BLAS_ROW_CHUNK) {
        int64_t m = r1 - c < LM_BLAS_ROW_CHUNK ? r1 - c : LM_BLAS_ROW_CHUNK;
        unsigned char *act = j->qact + (size_t)c * rb;
        lm_q8mm_act_quantize(j->x + c * j->ldx, j->ldx, m, j->K, act);
        lm_q8mm_gemm(j->pack, act, m, 0, j->N, j->y + c * j->N, j->N);
    }
}

static void blas_matmul(lm_backend *b, const float *x, int64_t ldx, const int64_t *seg,
                        int64_t n_seg, const lm_weight *w, const lm_weight *bias, float *y)
{
    blas_backend *be = (blas_backend *)b;
    int64_t N = w->n_rows;
    const lm_q8mm_weights *pack = be->shared ? be->shared->pack[w->slot] : NULL;
    if (pack) {
        q8_job q = {x, ldx, seg[n_seg], pack, w->n_cols, N, be->qact, y};
        blas_run(be, q.n, q8_part, &q);
    } else {
        matmul_job job = {be, x, ldx, seg, n_seg, w, y};
        blas_run(be, seg[n_seg], matmul_part, &job);
    }
    if (bias) {
        const float *bv = bias->data;
        for (int64_t i = 0; i < seg[n_seg]; i++)
            for (int64_t j = 0; j < N; j++)
                y[i * N + j] += bv[j];
    }
}

/* Rotary embedding of rows [i0, i1): each row alone. */
static void rope_rows(float *x, int64_t i0, int64_t i1, int64_t n_heads, int64_t head_dim,
                      int64_t n_rot, lm_rope_style style, const int32_t *pos, const float *cs)
{
    int64_t half = n_rot / 2;
    int64_t step = style == LM_ROPE_NEOX ? 1 : 2, other = style == LM_ROPE_NEOX ? half : 1;
    for (int64_t i = i0; i < i1; i++) {
        const float *c = cs + (int64_t)pos[i] * half * 2;
        for (int64_t h = 0; h < n_heads; h++) {
            float *v = x + i * n_heads * head_dim + h * head_dim;
            for (int64_t p = 0; p < half; p++) {
                float *a = v + p * step, *bb = a + other;
                float x0 = *a, x1 = *bb, co = c[2 * p], si = c[2 * p + 1];
                *a = x0 * co - x1 * si;
                *bb = x0 * si + x1 * co;
            }
        }
    }
}

/* One block of query rows [b0, b1) of a segment (rows at q), one head. */
static void attend_block(const blas_backend *be, float *S, const lm_attn_args *a, int64_t r0,
                         int64_t b0, int64_t b1, int64_t h)
{
    int64_t hd = a->head_dim, q_dim = a->n_head * hd, kv_dim = a->n_head_kv * hd;
    int64_t off = (h / (a->n_head / a->n_head_kv)) * hd, np = a->n_past, bs = b1 - b0;
    int64_t ld = np + b1; /* keys this block can see */
    const float *q = a->q + (r0 + b0) * q_dim + h * hd;
    if (np > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bs, (int)np, (int)hd, a->scale, q,
                    (int)q_dim, a->past_k + off, (int)kv_dim, 0.0f, S, (int)ld);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bs, (int)b1, (int)hd, a->scale, q,
                (int)q_dim, a->k + r0 * kv_dim + off, (int)kv_dim, 0.0f, S + np, (int)ld);
    float inv[LM_BLAS_ATT_BLOCK];
    for (int64_t i = 0; i < bs; i++) {
        float *row = S + i * ld;
        int64_t n_keys = np + b0 + i + 1;
        float mx = row_max(be, row, n_keys);
        inv[i] = 1.0f / row_exp_sum(be, row, n_keys, mx);
        for (int64_t t = n_keys; t < ld; t++)
            row[t] = 0.0f; /* causal mask: later keys weigh nothing */
    }
    float *o = a->out + (r0 + b0) * q_dim + h * hd;
    if (np > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bs, (int)hd, (int)np, 1.0f, S,
                    (int)ld, a->past_v + off, (int)kv_dim, 0.0f, o, (int)q_dim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bs, (int)hd, (int)b1, 1.0f, S + np,
                (int)ld, a->v + r0 * kv_dim + off, (int)kv_dim, np > 0 ? 1.0f : 0.0f, o,
                (int)q_dim);
    /* softmax normalisation on the head_dim outputs rather than the keys */
    for (int64_t i = 0; i < bs; i++)
        for (int64_t d = 0; d < hd; d++)
            o[i * q_dim + d] *= inv[i];
}

typedef struct attention_job {
    blas_backend *be;
    const lm_attn_args *a;
} attention_job;

/* The pieces are (segment, head), numbered in that order; member tid
 * computes pieces tid, tid + n, ... with its own score scratch. */
static void attention_part(void *arg, int tid, int nt)
{
    const attention_job *j = arg;
    const lm_attn_args *a = j->a;
    int64_t piece = 0;
    for (int64_t s = 0; s < a->n_seg; s++) {
        int64_t r0 = a->seg[s], len = a->seg[s + 1] - r0;
        for (int64_t h = 0; h < a->n_head; h++) {
            if (piece++ % nt != tid)
                continue;
            for (int64_t b0 = 0; b0 < len; b0 += LM_BLAS_ATT_BLOCK)
                attend_block(j->be, j->be->m_scores[tid], a, r0, b0,
                             len - b0 < LM_BLAS_ATT_BLOCK ? len : b0 + LM_BLAS_ATT_BLOCK, h);
        }
    }
}

static void blas_attention(lm_backend *b, const lm_attn_args *a)
{
    blas_backend *be = (blas_backend *)b;
    attention_job job = {be, a};
    blas_run(be, a->seg[a->n_seg], attention_part, &job);
}

/* gate = silu(gate) * up, silu(g) = g * sigmoid(g), sigmoid from exp(-|g|). */
/* gate[i] = silu(gate[i]) * up[i], i < n: vectors of 8 (AVX2) or 4 from
 * gate[0], then single values, so an element's arithmetic depends on its
 * place only through n's tail. */
static void swiglu_span(const blas_backend *be, float *gate, const float *up, int64_t n)
{
    const v4f one = v4_splat(1.0f), zero = v4_splat(0.0f);
    int64_t i = 0;
#ifdef LM_BLAS_HAVE_AVX2
    if (be->avx2)
        i = swiglu_avx2(gate, up, n);
#endif
    (void)be;
    for (; i + 4 <= n; i += 4) {
        v4f g = v4_load(gate + i);
        v4i neg = g < zero;
        v4f e = v4_exp_neg(v4_select(neg, -g, g));
        v4f sig = v4_select(neg, one, e) / (one + e);
        v4_store(gate + i, g * sig * v4_load(up + i));
    }
    for (; i < n; i++) {
        v4f g = v4_splat(gate[i]);
        v4f e = v4_exp_neg(gate[i] < 0 ? g : -g);
        float ef = e[0];
        float sig = gate[i] < 0 ? ef / (1.0f + ef) : 1.0f / (1.0f + ef);
        gate[i] = gate[i] * sig * up[i];
    }
}

/* The elementwise ops on a team: rows for rmsnorm and rope, spans of
 * elements for SwiGLU and add whose starts are multiples of 64, so that
 * every element takes the same vector path as in one call over all n. */
typedef enum ew_op { EW_RMSNORM, EW_ROPE, EW_SWIGLU, EW_ADD } ew_op;

typedef struct ew_job {
    const blas_backend *be;
    ew_op op;
    int64_t n;             /* rows (rmsnorm, rope) or elements (swiglu, add) */
    float *x;              /* rmsnorm: input; rope: rows; swiglu: gate; add: x */
    const float *y;        /* swiglu: up; add: y */
    float *out;            /* rmsnorm */
    const lm_weight *w;    /* rmsnorm */
    float eps;
    int64_t n_heads, head_dim, n_rot; /* rope */
    lm_rope_style style;
    const int32_t *pos;
    const float *cs;
} ew_job;

static void ew_part(void *arg, int tid, int nt)
{
    const ew_job *j = arg;
    int64_t q = j->op == EW_SWIGLU || j->op == EW_ADD ? 64 : 1;
    int64_t lo = j->n * tid / nt / q * q, hi = tid == nt - 1 ? j->n : j->n * (tid + 1) / nt / q * q;
    if (hi <= lo)
        return;
    switch (j->op) {
    case EW_RMSNORM:
        rmsnorm_rows(j->x, j->w, lo, hi, j->eps, j->out);
        break;
    case EW_ROPE:
        rope_rows(j->x, lo, hi, j->n_heads, j->head_dim, j->n_rot, j->style, j->pos, j->cs);
        break;
    case EW_SWIGLU:
        swiglu_span(j->be, j->x + lo, j->y + lo, hi - lo);
        break;
    case EW_ADD:
        for (int64_t i = lo; i < hi; i++)
            j->x[i] += j->y[i];
        break;
    }
}

static void blas_rmsnorm(lm_backend *b, const float *x, const lm_weight *w, int64_t n, float eps,
                         float *y)
{
    blas_backend *be = (blas_backend *)b;
    ew_job j = {.be = be, .op = EW_RMSNORM, .n = n, .x = (float *)x, .out = y, .w = w, .eps = eps};
    blas_run(be, n, ew_part, &j);
}

static void blas_rope(lm_backend *b, float *x, int64_t n, int64_t n_heads, int64_t head_dim,
                      int64_t n_rot, lm_rope_style style, const int32_t *pos, const float *cs)
{
    blas_backend *be = (blas_backend *)b;
    ew_job j = {.be = be, .op = EW_ROPE, .n = n, .x = x, .n_heads = n_heads, .head_dim = head_dim,
                .n_rot = n_rot, .style = style, .pos = pos, .cs = cs};
    blas_run(be, n, ew_part, &j);
}

/* Elements per team member below which SwiGLU and add stay on the caller. */
#define LM_BLAS_TEAM_MIN_ELEMS 4096

static void blas_swiglu(lm_backend *b, float *gate, const float *up, int64_t n)
{
    blas_backend *be = (blas_backend *)b;
    ew_job j = {.be = be, .op = EW_SWIGLU, .n = n, .x = gate, .y = up};
    blas_run(be, n >= LM_BLAS_TEAM_MIN_ELEMS ? LM_BLAS_TEAM_MIN_ROWS : 0, ew_part, &j);
}

static void blas_add(lm_backend *b, float *x, const float *y, int64_t n)
{
    blas_backend *be = (blas_backend *)b;
    ew_job j = {.be = be, .op = EW_ADD, .n = n, .x = x, .y = y};
    blas_run(be, n >= LM_BLAS_TEAM_MIN_ELEMS ? LM_BLAS_TEAM_MIN_ROWS : 0, ew_part, &j);
}

typedef struct logprob_job {
    const blas_backend *be;
    float *logits;
    int64_t n, n_vocab;
    const int32_t *targets;
    float *out;
} logprob_job;

/* Member tid takes rows [n tid / nt, n (tid + 1) / nt): each row alone. */
static void logprob_part(void *arg, int tid, int nt)
{
    const logprob_job *j = arg;
    const blas_backend *be = j->be;
    int64_t n_vocab = j->n_vocab, i1 = j->n * (tid + 1) / nt;
    float *logits = j->logits, *out = j->out;
    const int32_t *targets = j->targets;
    for (int64_t i = j->n * tid / nt; i < i1; i++) {
        /* logits is scratch (lm_backend.h): exponentiated in place. */
        float *l = logits + i * n_vocab;
        float mx = row_max(be, l, n_vocab);
        float tl = l[targets[i]];
        float sum = row_exp_sum(be, l, n_vocab, mx);
        out[i] = (float)((double)tl - (double)mx - log((double)sum));
    }
}

static void blas_logprob(lm_backend *b, float *logits, int64_t n, int64_t n_vocab,
                         const int32_t *targets, float *out)
{
    blas_backend *be = (blas_backend *)b;
    logprob_job job = {be, logits, n, n_vocab, targets, out};
    blas_run(be, n, logprob_part, &job);
}

static void blas_row_sum(lm_backend *b, const float *x, int64_t n, int64_t dim, double *sum)
{
    (void)b;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++)
            sum[j] += (double)x[i * dim + j];
}

const lm_backend_ops lm_backend_blas_ops = {
    .name = "blas",
    .exact_segments = 1,
    .concurrent_lanes = 1,
    .q8_act = 1,
    .create = blas_create,
    .destroy = blas_destroy,
    .sync = blas_sync,
    .buf_alloc = blas_buf_alloc,
    .buf_free = blas_buf_free,
    .upload = blas_copy,
    .download = blas_copy,
    .copy = blas_copy,
    .embed = blas_embed,
    .rmsnorm = blas_rmsnorm,
    .matmul = blas_matmul,
    .rope = blas_rope,
    .attention = blas_attention,
    .swiglu = blas_swiglu,
    .add = blas_add,
    .logprob = blas_logprob,
    .row_sum = blas_row_sum,
    .set_threads = blas_set_threads,
    .shared_new = blas_shared_new,
    .shared_free = blas_shared_free,
};
