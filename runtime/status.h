#ifndef RT_STATUS_H
#define RT_STATUS_H

/* What a fallible runtime call returns. The message, when the caller wants one, goes into
 * the struct fm_err it passed. */
enum rt_status {
    RT_OK = 0,
    RT_EINVAL,    /* malformed input: manifest, arguments, spool contents */
    RT_EIO,       /* a system call failed */
    RT_ENOMEM,    /* out of memory or a buffer cap reached */
    RT_EBUSY,     /* someone else holds what we need (the spool's shipper lock) */
    RT_ETIMEDOUT, /* the caller's deadline passed first */
    RT_EREMOTE,   /* the metering service refused a whole batch */
    RT_EFULL,     /* the spool is over its size cap: nothing may run unmetered */
};

#endif
