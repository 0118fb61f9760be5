#ifndef FM_COMMON_QUEUE_H
#define FM_COMMON_QUEUE_H

#include <pthread.h>
#include <stdbool.h>

/*
 * A first-in first-out queue that threads share: producers push nodes they own, consumers
 * wait for them. Once closed it refuses pushes, and consumers drain what is left, then get
 * NULL. Nodes are embedded in the caller's structures (the first member, so that a node
 * pointer converts to its structure).
 */
struct fm_qnode {
    struct fm_qnode *next;
};

struct fm_queue {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    struct fm_qnode *head, *tail;
    bool closed;
};

void fm_queue_init(struct fm_queue *q);

/** Release what init made; the queue must be empty and no thread may use it. */
void fm_queue_destroy(struct fm_queue *q);

/** Append n. @return false, n untouched and still the caller's, once the queue is closed. */
bool fm_queue_push(struct fm_queue *q, struct fm_qnode *n);

/**
 * Wait for the first node and take it, then the nodes after it for as long as
 * fits(ctx, node) says so. fits is shown the first node too, whatever it answers, so that a
 * predicate that counts (the records of a batch, say) counts it. fits NULL: the first
 * node alone.
 * @return the nodes taken, in order and linked by next (the last's is NULL), or NULL once
 *         the queue is closed and empty
 */
struct fm_qnode *fm_queue_take(struct fm_queue *q,
                               bool (*fits)(void *ctx, const struct fm_qnode *n), void *ctx);

/** Refuse pushes from now on and wake every waiting consumer. */
void fm_queue_close(struct fm_queue *q);

#endif
