/* lm_team.c: see lm_team.h. */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "lm_team.h"

#define LM_TEAM_MAX 64
/* Pauses a member (or the caller) spins, watching for the next job (or the
 * end of this one), before it sleeps on the condition variable: a woken
 * thread starts tens of microseconds late on these machines, about as long
 * as one op of a 256-token sequence takes, so members that slept between
 * back-to-back ops would leave the caller doing most of the work. */
#define LM_TEAM_SPIN 4000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

struct lm_team {
    int n;
    pthread_t th[LM_TEAM_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;  /* bumped for each job */
    int pending;   /* members other than the caller still running it */
    int quit;
    lm_team_fn fn;
    void *arg;
};

typedef struct member {
    lm_team *t;
    int tid;
} member;

static void *member_loop(void *p)
{
    member me = *(member *)p;
    free(p);
    lm_team *t = me.t;
    uint64_t seen = 0;
    for (;;) {
        for (int i = 0; i < LM_TEAM_SPIN && __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE) == seen &&
                        !__atomic_load_n(&t->quit, __ATOMIC_RELAXED);
             i++)
            cpu_relax();
        pthread_mutex_lock(&t->mu);
        while (t->gen == seen && !t->quit)
            pthread_cond_wait(&t->go, &t->mu);
        if (t->quit)
            break;
        seen = t->gen;
        lm_team_fn fn = t->fn;
        void *arg = t->arg;
        int n = t->n;
        pthread_mutex_unlock(&t->mu);
        fn(arg, me.tid, n);
        pthread_mutex_lock(&t->mu);
        if (__atomic_sub_fetch(&t->pending, 1, __ATOMIC_ACQ_REL) == 0)
            pthread_cond_signal(&t->done);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

lm_team *lm_team_new(int n)
{
    lm_team *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    n = n < 1 ? 1 : n > LM_TEAM_MAX ? LM_TEAM_MAX : n;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->go, NULL);
    pthread_cond_init(&t->done, NULL);
    t->n = 1;
    for (int i = 1; i < n; i++) {
        member *m = malloc(sizeof *m);
        if (m) {
            m->t = t;
            m->tid = i;
        }
        if (!m || pthread_create(&t->th[i], NULL, member_loop, m) != 0) {
            free(m);
            break; /* a smaller team: every job divides by t->n */
        }
        t->n = i + 1;
    }
    return t;
}

void lm_team_free(lm_team *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    __atomic_store_n(&t->quit, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    for (int i = 1; i < t->n; i++)
        pthread_join(t->th[i], NULL);
    pthread_cond_destroy(&t->go);
    pthread_cond_destroy(&t->done);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int lm_team_size(const lm_team *t)
{
    return t ? t->n : 1;
}

void lm_team_run(lm_team *t, lm_team_fn fn, void *arg)
{
    if (!t || t->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->fn = fn;
    t->arg = arg;
    t->pending = t->n - 1;
    __atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&t->go);
    pthread_mutex_unlock(&t->mu);
    fn(arg, 0, t->n);
    for (int i = 0; i < LM_TEAM_SPIN && __atomic_load_n(&t->pending, __ATOMIC_ACQUIRE) > 0; i++)
        cpu_relax();
    pthread_mutex_lock(&t->mu);
    while (t->pending > 0)
        pthread_cond_wait(&t->done, &t->mu);
    pthread_mutex_unlock(&t->mu);
}
