#ifndef FM_BILLING_JSON_FIELD_H
#define FM_BILLING_JSON_FIELD_H

/*
 * Reading checked fields out of parsed JSON for the plan and server catalogs. Each reader
 * takes the item (NULL when the field is absent) and its path as the user would write it
 * ("charges[1].tiers[0].unit_price"); on failure it puts "<path>: <reason>" into err and
 * returns -1, leaving *out untouched. Numbers are read without binary fractions: money and
 * quantities must be decimal strings, integers are checked digit by digit.
 */

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "billing/money.h"
#include "common/err.h"

/** A string of 1..max_len bytes. *out borrows from item. */
int bill_json_string(const cJSON *item, const char *path, size_t max_len, const char **out,
                     struct fm_err *err);

/** A whole number in min..max, written as a JSON integer (not a string, not 1.0 or 1e3). */
int bill_json_int(const cJSON *item, const char *path, int64_t min, int64_t max, int64_t *out,
                  struct fm_err *err);

/** A whole number in min..max written as text: an object's key ("128"). */
int bill_json_int_text(const char *text, const char *path, int64_t min, int64_t max,
                       int64_t *out, struct fm_err *err);

/**
 * Refuse the members of obj (an object) that are not among known (NULL-terminated):
 * "<path>.<name>: unknown field (expected a, b or c)". A typo in an optional field would
 * otherwise leave it at its default without a word.
 * @param path  the object's path, "" for the document itself
 */
int bill_json_known(const cJSON *obj, const char *path, const char *const *known,
                    struct fm_err *err);

/**
 * Whether s is a catalog id: lower-case letters, digits, '.', '-' and '_', starting with a
 * letter or digit. Ids are printed bare in CSV, text tables and command lines.
 */
bool bill_json_id_ok(const char *s);

/** A non-negative decimal written as a string ("0.0000166667"). */
int bill_json_dec(const cJSON *item, const char *path, struct bill_dec *out, struct fm_err *err);

/** true or false. */
int bill_json_bool(const cJSON *item, const char *path, bool *out, struct fm_err *err);

/** A calendar date "YYYY-MM-DD". *out borrows from item. */
int bill_json_date(const cJSON *item, const char *path, const char **out, struct fm_err *err);

/** An ISO 4217 currency code of three capital letters whose minor unit is known
 *  (bill_currency_minor_digits), copied into out with its NUL. */
int bill_json_currency(const cJSON *item, const char *path, char out[4], struct fm_err *err);

/**
 * Parse a whole JSON document; on failure err says where ("not valid JSON (line 3)"). An
 * object that has a key twice is refused ("charges[0].free: given twice"): JSON readers
 * disagree on which one counts.
 */
cJSON *bill_json_parse(const char *text, size_t len, struct fm_err *err);

/** Add name: "<integer>" as a JSON number without passing it through a binary fraction. */
int bill_json_add_int(cJSON *obj, const char *name, int64_t v);

#endif
