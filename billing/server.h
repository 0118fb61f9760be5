#ifndef FM_BILLING_SERVER_H
#define FM_BILLING_SERVER_H

/*
 * Servers that could carry a load instead of pay-per-use, with their flat fee. A server
 * file holds one server object or an array of them:
 *   {"id": "aws-t3.micro", "name": "...", "provider": "aws", "vcpus": 2, "memory_mb": 1024,
 *    "hourly_price": "0.0104", "currency": "USD", "source": "...", "as_of": "YYYY-MM-DD"}
 */

#include <stddef.h>
#include <stdint.h>

#include "billing/money.h"
#include "billing/status.h"
#include "common/err.h"

#define BILL_HOURS_PER_MONTH 730

struct bill_server {
    char *id;
    char *name;
    char *provider;
    char *source;
    char *as_of;
    char currency[4];
    int32_t vcpus;
    int32_t memory_mb;
    struct bill_dec hourly; /* price of one hour */
};

/**
 * Parse the servers of one file.
 *
 * @param origin  names the text in messages ("servers/aws.json")
 * @param out     on BILL_OK, an array of *n servers (caller frees with bill_servers_free)
 * @return BILL_OK, BILL_EINVAL with "<origin>: [1].vcpus: ..." in err, BILL_ENOMEM
 */
enum bill_status bill_servers_parse(const char *text, size_t len, const char *origin,
                                    struct bill_server **out, size_t *n, struct fm_err *err);

/** Free what bill_servers_parse returned. NULL is a no-op. */
void bill_servers_free(struct bill_server *servers, size_t n);

/** Release the strings one server owns (for arrays built by other code). */
void bill_server_clear(struct bill_server *s);

/**
 * The monthly fee: hourly price × 730 hours, rounded half-up to the minor unit of the
 * server's currency (cents for USD, yen for JPY), in those minor units.
 * @return 0, or -1 when it does not fit (out untouched)
 */
int bill_server_monthly_fee(const struct bill_server *s, int64_t *out);

#endif
