#include "billing/status.h"

const char *bill_status_str(enum bill_status st)
{
    switch (st) {
    case BILL_OK:
        return "ok";
    case BILL_EINVAL:
        return "invalid";
    case BILL_EOVERFLOW:
        return "overflow";
    case BILL_ENOMEM:
        return "out of memory";
    case BILL_EIO:
        return "input/output error";
    case BILL_ENOTFOUND:
        return "not found";
    }
    return "unknown status";
}
