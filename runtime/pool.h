#ifndef RT_POOL_H
#define RT_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/manifest.h"
#include "runtime/status.h"
#include "runtime/worker.h"

/*
 * What the runtime keeps per function between invocations: how many run now (against the
 * manifest's "concurrency") and the idle warm workers (at most "concurrency", stopped after
 * "keep_alive_ms" idle). Opaque; every call is thread-safe.
 */
struct rt_pool;

/**
 * A pool for the functions of m.
 * @param m    borrowed; must outlive the pool
 * @param out  on RT_OK the pool (caller frees with rt_pool_free); untouched on error
 * @return RT_OK, RT_ENOMEM
 */
enum rt_status rt_pool_new(const struct rt_manifest *m, struct rt_pool **out, struct fm_err *err);

/** Stop every idle worker and free the pool; NULL is a no-op. No invocation may be running. */
void rt_pool_free(struct rt_pool *p);

/**
 * Take one of fn's concurrency slots, to be given back with rt_pool_leave.
 * @return RT_OK, RT_EBUSY when fn already runs "concurrency" invocations
 */
enum rt_status rt_pool_enter(struct rt_pool *p, const struct rt_function *fn);

void rt_pool_leave(struct rt_pool *p, const struct rt_function *fn);

/** The most recently used live idle worker of fn (now the caller's), or NULL: a cold start.
 *  Idle workers found dead on the way are stopped. */
struct rt_worker *rt_pool_take(struct rt_pool *p, const struct rt_function *fn);

/** Give w back after an invocation: kept idle when usable, else stopped. Takes ownership. */
void rt_pool_give(struct rt_pool *p, const struct rt_function *fn, struct rt_worker *w);

/** Stop the workers idle for longer than their function's keep-alive at now_us (monotonic),
 *  and those that died while idle. Returns how many were stopped. */
size_t rt_pool_reap(struct rt_pool *p, int64_t now_us);

/** How many idle workers fn has now. */
size_t rt_pool_idle(struct rt_pool *p, const struct rt_function *fn);

#endif
