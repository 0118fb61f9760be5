#ifndef FM_TESTS_SUITES_H
#define FM_TESTS_SUITES_H

#include <check.h>

#define SUITE(name, db) Suite *suite_##name(void);
#include "tests/suites.def"
#undef SUITE

#endif
