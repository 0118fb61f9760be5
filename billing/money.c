#include "billing/money.h"

#include <string.h>

int bill_pow10(int e, __int128 *out)
{
    if (e < 0 || e > 38)
        return -1;
    __int128 p = 1;
    for (int i = 0; i < e; i++)
        p *= 10;
    *out = p;
    return 0;
}

int bill_dec_parse(const char *s, struct bill_dec *out)
{
    __int128 units = 0;
    int int_digits = 0, frac_digits = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        /* Leading zeros do not count against the limit: "0.5" has no integer digits. */
        if (int_digits > 0 || *p != '0')
            int_digits++;
        units = units * 10 + (*p - '0');
        if (int_digits > BILL_DEC_MAX_INT)
            return -1;
    }
    if (p == s)
        return -1;
    if (*p == '.') {
        const char *f = ++p;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (++frac_digits > BILL_DEC_MAX_SCALE)
                return -1;
            units = units * 10 + (*p - '0');
        }
        if (p == f)
            return -1;
    }
    if (*p != '\0')
        return -1;
    /* At most 38 significant digits went in, so units cannot have overflowed. */
    while (frac_digits > 0 && units % 10 == 0) {
        units /= 10;
        frac_digits--;
    }
    *out = (struct bill_dec){.units = units, .scale = frac_digits};
    return 0;
}

/* Write the digits of v (>= 0) into buf, most significant first; returns their count. */
static size_t u128_digits(unsigned __int128 v, char *buf)
{
    char tmp[48];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* Format units / 10^scale, dropping trailing fractional zeros. */
static int format_scaled(unsigned __int128 units, int scale, bool negative, char *buf, size_t n)
{
    char digits[48];
    size_t nd = u128_digits(units, digits);
    char out[96]; /* sign, "0.", up to 38 zeros, 39 digits */
    size_t o = 0;
    if (negative && units != 0)
        out[o++] = '-';
    if (scale > 38)
        return -1;
    if ((int)nd <= scale) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < scale - (int)nd; i++)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    } else {
        size_t whole = nd - (size_t)scale;
        memcpy(out + o, digits, whole);
        o += whole;
        if (scale > 0) {
            out[o++] = '.';
            memcpy(out + o, digits + whole, (size_t)scale);
            o += (size_t)scale;
        }
    }
    if (scale > 0) {
        while (out[o - 1] == '0')
            o--;
        if (out[o - 1] == '.')
            o--;
    }
    if (o + 1 > n)
        return -1;
    memcpy(buf, out, o);
    buf[o] = '\0';
    return 0;
}

int bill_dec_format(struct bill_dec d, char *buf, size_t n)
{
    if (d.units < 0 || d.scale < 0 || d.scale > BILL_DEC_MAX_SCALE)
        return -1;
    return format_scaled((unsigned __int128)d.units, d.scale, false, buf, n);
}

int bill_dec_units_at(struct bill_dec d, int scale, __int128 *out)
{
    __int128 p, v;
    if (scale < d.scale || bill_pow10(scale - d.scale, &p) != 0 ||
        __builtin_mul_overflow(d.units, p, &v))
        return -1;
    *out = v;
    return 0;
}

int bill_dec_cmp(struct bill_dec a, struct bill_dec b)
{
    int scale = a.scale > b.scale ? a.scale : b.scale;
    __int128 x, y;
    /* Both fit at the larger scale: parse keeps at most 38 significant digits. */
    if (bill_dec_units_at(a, scale, &x) != 0 || bill_dec_units_at(b, scale, &y) != 0)
        return a.units < b.units ? -1 : a.units > b.units;
    return x < y ? -1 : x > y;
}

/* num/den in units of 10^-digits, rounded half-up: floor((2·x + den) / (2·den)) with
 * x = num·10^digits. 2·den cannot overflow when 2·x + den did not. */
static int round_half_up(__int128 num, __int128 den, int digits, __int128 *out)
{
    __int128 p, twice;
    if (num < 0 || den <= 0 || bill_pow10(digits, &p) != 0 ||
        __builtin_mul_overflow(num, p, &twice) || __builtin_mul_overflow(twice, 2, &twice) ||
        __builtin_add_overflow(twice, den, &twice))
        return -1;
    *out = twice / (den * 2);
    return 0;
}

int bill_ratio_round(__int128 num, __int128 den, int digits, int64_t *out)
{
    __int128 q;
    if (round_half_up(num, den, digits, &q) != 0 || q > INT64_MAX)
        return -1;
    *out = (int64_t)q;
    return 0;
}

int bill_ratio_format(__int128 num, __int128 den, int max_frac, char *buf, size_t n)
{
    __int128 q;
    if (max_frac < 0 || round_half_up(num, den, max_frac, &q) != 0)
        return -1;
    return format_scaled((unsigned __int128)q, max_frac, false, buf, n);
}

int bill_money_format(int64_t minor, int digits, char *buf, size_t n)
{
    if (digits < 0 || digits > 18)
        return -1;
    bool negative = minor < 0;
    unsigned __int128 mag = negative ? (unsigned __int128)(-(__int128)minor) : (unsigned __int128)minor;
    char tmp[BILL_NUM_BUFSZ];
    if (format_scaled(mag, digits, negative, tmp, sizeof tmp) != 0)
        return -1;
    /* Money keeps all its minor digits ("2.50", not "2.5"): pad what format_scaled trimmed. */
    const char *dot = strchr(tmp, '.');
    size_t have = dot ? strlen(dot + 1) : 0;
    size_t len = strlen(tmp);
    size_t need = len + (digits > 0 && !dot ? 1 : 0) + ((size_t)digits - have);
    if (need + 1 > n)
        return -1;
    memcpy(buf, tmp, len);
    if (digits > 0 && !dot)
        buf[len++] = '.';
    while (have < (size_t)digits) {
        buf[len++] = '0';
        have++;
    }
    buf[len] = '\0';
    return 0;
}

/* ISO 4217's active currencies (and fund codes) by their minor unit. Every code not listed
 * under another count has 2 digits. */
static const char *const minor_0[] = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF",
                                      "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
                                      "XAF", "XOF", "XPF"};
static const char *const minor_3[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
static const char *const minor_4[] = {"CLF", "UYW"};
static const char *const minor_2[] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW",
    "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR",
    "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU",
    "UZS", "VED", "VES", "WST", "XCD", "YER", "ZAR", "ZMW", "ZWG"};

int bill_currency_minor_digits(const char *code)
{
    static const struct {
        const char *const *codes;
        size_t n;
        int digits;
    } by_digits[] = {
        {minor_2, sizeof minor_2 / sizeof minor_2[0], 2},
        {minor_0, sizeof minor_0 / sizeof minor_0[0], 0},
        {minor_3, sizeof minor_3 / sizeof minor_3[0], 3},
        {minor_4, sizeof minor_4 / sizeof minor_4[0], 4},
    };
    for (size_t k = 0; k < sizeof by_digits / sizeof by_digits[0]; k++)
        for (size_t i = 0; i < by_digits[k].n; i++)
            if (strcmp(by_digits[k].codes[i], code) == 0)
                return by_digits[k].digits;
    return -1;
}
