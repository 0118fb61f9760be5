#include "runtime/pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/timeutil.h"

struct slot {
    int running;
    struct rt_worker **idle; /* oldest first; at most the function's concurrency */
    size_t nidle;
};

struct rt_pool {
    const struct rt_manifest *m;
    pthread_mutex_t lock;
    struct slot *slots; /* one per function of m, in its order */
};

enum rt_status rt_pool_new(const struct rt_manifest *m, struct rt_pool **out, struct fm_err *err)
{
    struct rt_pool *p = calloc(1, sizeof *p);
    if (p == NULL || (p->slots = calloc(m->nfunctions + 1, sizeof *p->slots)) == NULL)
        goto nomem;
    for (size_t i = 0; i < m->nfunctions; i++) {
        p->slots[i].idle = calloc((size_t)m->functions[i].concurrency, sizeof(struct rt_worker *));
        if (p->slots[i].idle == NULL)
            goto nomem;
    }
    p->m = m;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return RT_OK;
nomem:
    if (p && p->slots)
        for (size_t i = 0; i < m->nfunctions; i++)
            free(p->slots[i].idle);
    if (p)
        free(p->slots);
    free(p);
    fm_err_set(err, "out of memory");
    return RT_ENOMEM;
}

void rt_pool_free(struct rt_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->m->nfunctions; i++) {
        for (size_t j = 0; j < p->slots[i].nidle; j++)
            rt_worker_stop(p->slots[i].idle[j]);
        free(p->slots[i].idle);
    }
    pthread_mutex_destroy(&p->lock);
    free(p->slots);
    free(p);
}

/* fn must be one of the manifest's own entries: a pointer from rt_manifest_find. */
static struct slot *slot_of(struct rt_pool *p, const struct rt_function *fn)
{
    size_t i = (size_t)(fn - p->m->functions);
    if (i >= p->m->nfunctions)
        abort();
    return &p->slots[i];
}

enum rt_status rt_pool_enter(struct rt_pool *p, const struct rt_function *fn)
{
    struct slot *s = slot_of(p, fn);
    pthread_mutex_lock(&p->lock);
    bool room = s->running < fn->concurrency;
    s->running += room;
    pthread_mutex_unlock(&p->lock);
    return room ? RT_OK : RT_EBUSY;
}

void rt_pool_leave(struct rt_pool *p, const struct rt_function *fn)
{
    struct slot *s = slot_of(p, fn);
    pthread_mutex_lock(&p->lock);
    s->running--;
    pthread_mutex_unlock(&p->lock);
}

struct rt_worker *rt_pool_take(struct rt_pool *p, const struct rt_function *fn)
{
    struct slot *s = slot_of(p, fn);
    struct rt_worker *w = NULL;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        w = s->nidle > 0 ? s->idle[--s->nidle] : NULL;
        pthread_mutex_unlock(&p->lock);
        /* An idle worker may have died (killed, OOM) since its last invocation: handing it
         * over would fail the next invocation and bill it as crashed. */
        if (w == NULL || rt_worker_alive(w))
            return w;
        rt_worker_stop(w);
    }
}

void rt_pool_give(struct rt_pool *p, const struct rt_function *fn, struct rt_worker *w)
{
    struct slot *s = slot_of(p, fn);
    if (w == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    bool keep = rt_worker_usable(w) && s->nidle < (size_t)fn->concurrency;
    if (keep)
        s->idle[s->nidle++] = w;
    pthread_mutex_unlock(&p->lock);
    if (!keep)
        rt_worker_stop(w);
}

size_t rt_pool_reap(struct rt_pool *p, int64_t now_us)
{
    size_t stopped = 0;
    for (size_t i = 0; i < p->m->nfunctions; i++) {
        struct slot *s = &p->slots[i];
        int64_t keep_us = p->m->functions[i].keep_alive_ms * 1000;
        struct rt_worker *expired = NULL;
        do {
            /* One at a time: stopping waits a grace period, which must not hold the lock.
             * Every idle worker is looked at, the dead ones too, whatever their age. */
            pthread_mutex_lock(&p->lock);
            expired = NULL;
            for (size_t j = 0; j < s->nidle && expired == NULL; j++) {
                struct rt_worker *w = s->idle[j];
                if (now_us - rt_worker_idle_since(w) < keep_us && rt_worker_alive(w))
                    continue;
                expired = w;
                for (size_t k = j + 1; k < s->nidle; k++)
                    s->idle[k - 1] = s->idle[k];
                s->nidle--;
            }
            pthread_mutex_unlock(&p->lock);
            if (expired) {
                rt_worker_stop(expired);
                stopped++;
            }
        } while (expired);
    }
    return stopped;
}

size_t rt_pool_idle(struct rt_pool *p, const struct rt_function *fn)
{
    struct slot *s = slot_of(p, fn);
    pthread_mutex_lock(&p->lock);
    size_t n = s->nidle;
    pthread_mutex_unlock(&p->lock);
    return n;
}
