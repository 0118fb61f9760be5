#ifndef FM_BILLING_MONEY_H
#define FM_BILLING_MONEY_H

/*
 * Exact decimal numbers for prices and allowances, and the rounding of exact ratios into
 * amounts of a currency's minor unit. Integers only: a price such as "0.0000166667" is kept
 * as 166667 scaled by 10^10, and every product is formed in 128 bits with overflow checked.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BILL_DEC_MAX_SCALE 18 /* most digits after the point a decimal may carry */
#define BILL_DEC_MAX_INT 20   /* most digits before the point */
#define BILL_NUM_BUFSZ 64     /* room for any number this module formats, with its NUL */

/** A non-negative decimal: units / 10^scale. A tiny value type, copied freely. */
struct bill_dec {
    __int128 units;
    int scale; /* 0..BILL_DEC_MAX_SCALE, trailing zeros removed */
};

/**
 * Parse a plain decimal string: digits, optionally a point and more digits ("12", "0.20").
 * No sign, exponent, spaces or empty parts.
 * @param out  written only on success
 * @return 0, or -1 when s is not such a number or has too many digits
 */
int bill_dec_parse(const char *s, struct bill_dec *out);

/** Format d in plain notation without trailing zeros ("0.0000002"). Returns 0, or -1 if n is short. */
int bill_dec_format(struct bill_dec d, char *buf, size_t n);

/** -1, 0 or 1 as a is below, equal to or above b. */
int bill_dec_cmp(struct bill_dec a, struct bill_dec b);

/** d expressed in units of 10^-scale (scale >= d.scale). Returns 0, or -1 on overflow. */
int bill_dec_units_at(struct bill_dec d, int scale, __int128 *out);

/** 10^e for 0 <= e <= 38. Returns 0, or -1 when it does not fit. */
int bill_pow10(int e, __int128 *out);

/**
 * Round num/den half-up to a whole number of 10^-digits (num >= 0, den > 0): the amount in
 * the minor unit when digits is the currency's (2 for cents).
 * @return 0, or -1 when an intermediate or the result does not fit (out untouched)
 */
int bill_ratio_round(__int128 num, __int128 den, int digits, int64_t *out);

/**
 * Format num/den (num >= 0, den > 0) in plain decimal notation with at most max_frac digits
 * after the point, rounded half-up there, trailing zeros removed. Exact whenever the ratio
 * terminates within max_frac digits. Returns 0, or -1 if n is short or it overflows.
 */
int bill_ratio_format(__int128 num, __int128 den, int max_frac, char *buf, size_t n);

/** Format an amount of minor units as a decimal with digits places ("-0.05", "2.73"). */
int bill_money_format(int64_t minor, int digits, char *buf, size_t n);

/**
 * The digits of an ISO 4217 currency's minor unit: 2 for "USD" (cents), 0 for "JPY", 3 for
 * "KWD". Returns -1 for a code that is not an active currency's (including "XAU" and the
 * other codes without a minor unit), so that nothing is rounded by a guess.
 */
int bill_currency_minor_digits(const char *code);

#endif
