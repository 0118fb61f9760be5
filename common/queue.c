#include "common/queue.h"

#include <stddef.h>

void fm_queue_init(struct fm_queue *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->ready, NULL);
    q->head = q->tail = NULL;
    q->closed = false;
}

void fm_queue_destroy(struct fm_queue *q)
{
    pthread_cond_destroy(&q->ready);
    pthread_mutex_destroy(&q->lock);
}

bool fm_queue_push(struct fm_queue *q, struct fm_qnode *n)
{
    pthread_mutex_lock(&q->lock);
    bool open = !q->closed;
    if (open) {
        n->next = NULL;
        if (q->tail)
            q->tail->next = n;
        else
            q->head = n;
        q->tail = n;
        pthread_cond_signal(&q->ready);
    }
    pthread_mutex_unlock(&q->lock);
    return open;
}

struct fm_qnode *fm_queue_take(struct fm_queue *q,
                               bool (*fits)(void *ctx, const struct fm_qnode *n), void *ctx)
{
    pthread_mutex_lock(&q->lock);
    while (q->head == NULL && !q->closed)
        pthread_cond_wait(&q->ready, &q->lock);
    struct fm_qnode *first = q->head, *last = first;
    if (first != NULL) {
        if (fits != NULL)
            (void)fits(ctx, first);
        while (fits != NULL && last->next != NULL && fits(ctx, last->next))
            last = last->next;
        q->head = last->next;
        if (q->head == NULL)
            q->tail = NULL;
        last->next = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    return first;
}

void fm_queue_close(struct fm_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->lock);
}
