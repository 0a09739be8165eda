/* Small checking helpers shared by the C API test programs. */
#ifndef MLLP_TEST_CHECK_H
#define MLLP_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mllp.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,     \
                    #cond);                                                      \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Evaluates `expr` (an mllp_result) once and checks it equals `want`. */
#define CHECK_RC(expr, want)                                                     \
    do {                                                                         \
        mllp_result rc_ = (expr);                                                \
        mllp_result want_ = (want);                                              \
        if (rc_ != want_) {                                                      \
            fprintf(stderr, "%s:%d: %s returned %u (%s), expected %u (%s)\n",    \
                    __FILE__, __LINE__, #expr, (unsigned)rc_,                    \
                    mllp_result_str(rc_), (unsigned)want_,                       \
                    mllp_result_str(want_));                                     \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* Whether `hay` (hay_len bytes) contains the NUL-terminated `needle`. */
static inline int contains(const void *hay, size_t hay_len, const char *needle) {
    size_t n = strlen(needle);
    const unsigned char *h = (const unsigned char *)hay;
    if (n > hay_len) return 0;
    for (size_t i = 0; i + n <= hay_len; i++) {
        if (memcmp(h + i, needle, n) == 0) return 1;
    }
    return 0;
}

#endif
