/* lm_team.h: a small team of threads that runs one job on all its members
 * at once, for the ops of one backend lane when that lane is the only one
 * working (one long sequence, a shared prefix).
 *
 * The caller is member 0; lm_team_run(t, fn, arg) calls fn(arg, tid, n) on
 * every member tid in [0, n) and returns when all have returned.  How a job
 * divides its work between members is the job's business: jobs in this
 * engine split into pieces whose arithmetic does not depend on which member
 * computes them or on n, so results are the same bits for any team size.
 *
 * Between jobs, members spin briefly (LM_TEAM_SPIN pauses, tens of
 * microseconds) and then sleep on a condition variable: ops come back to
 * back while a lane works alone, and a sleeping thread wakes too late to
 * share a short op.
 *
 * Thread-safety: one caller at a time per team; fn runs concurrently on the
 * members and must not call lm_team_run on the same team.
 */
#ifndef LM_TEAM_H
#define LM_TEAM_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_team lm_team;
typedef void (*lm_team_fn)(void *arg, int tid, int n);

/* A team of n members (the caller and n - 1 new threads), n >= 1.  NULL when
 * out of memory; when fewer threads could be started, a smaller team. */
lm_team *lm_team_new(int n);

/* Ends the threads and frees the team; NULL is a no-op. */
void lm_team_free(lm_team *t);

/* Members (1 for a NULL team). */
int lm_team_size(const lm_team *t);

/* fn(arg, tid, n) on every member; returns when all are done.  A NULL team
 * runs fn(arg, 0, 1) on the caller. */
void lm_team_run(lm_team *t, lm_team_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* LM_TEAM_H */
