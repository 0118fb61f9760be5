#ifndef FM_BILLING_STATUS_H
#define FM_BILLING_STATUS_H

/* The outcome of every fallible call in the billing library. */
enum bill_status {
    BILL_OK = 0,
    BILL_EINVAL,    /* malformed input: a plan, a number, a negative quantity */
    BILL_EOVERFLOW, /* a quantity or an amount does not fit; nothing was wrapped */
    BILL_ENOMEM,
    BILL_EIO,       /* a file or folder could not be read */
    BILL_ENOTFOUND, /* no plan or server with that id */
};

/** A short English name for a status ("overflow"). The string is static. */
const char *bill_status_str(enum bill_status st);

#endif
