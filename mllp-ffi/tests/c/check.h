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

/* `expr` returns `want` and the last-error text contains `text`. */
#define REFUSES(expr, want, text)                                                \
    do {                                                                         \
        CHECK_RC(expr, want);                                                    \
        if (strstr(last_error(), text) == NULL) {                                \
            fprintf(stderr, "%s:%d: %s: last error \"%s\" lacks \"%s\"\n",       \
                    __FILE__, __LINE__, #expr, last_error(), text);              \
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

/* The calling thread's last error text (a static buffer: for single-threaded checks). */
static inline const char *last_error(void) {
    static char text[1024];
    size_t needed = 0;
    mllp_result rc = mllp_last_error(text, sizeof text, &needed);
    if (rc != MLLP_OK || needed != strlen(text) + 1) {
        fprintf(stderr, "mllp_last_error returned %u, needed %zu\n", (unsigned)rc, needed);
        exit(1);
    }
    return text;
}

/* Whether this build has TLS: a TLS sender can be created. */
static inline int tls_built(void) {
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls(b, 1), MLLP_OK);
    mllp_sender *s = NULL;
    mllp_result rc = mllp_sender_builder_build(b, "127.0.0.1:9", &s);
    mllp_sender_builder_free(b);
    if (rc == MLLP_OK) {
        mllp_sender_free(s);
        return 1;
    }
    CHECK_RC(rc, MLLP_CONFIG);
    CHECK(strstr(last_error(), "no TLS support") != NULL);
    return 0;
}

/* New framing settings with the defaults. */
static inline mllp_framing *new_framing(void) {
    mllp_framing *f = NULL;
    CHECK_RC(mllp_framing_new(&f), MLLP_OK);
    CHECK(f != NULL);
    return f;
}

/* One counter of a decoder, sender or listener. */
static inline uint64_t decoder_stat(const mllp_decoder *d, mllp_decoder_stat which) {
    uint64_t v = 0;
    CHECK_RC(mllp_decoder_get_stat(d, which, &v), MLLP_OK);
    return v;
}
static inline uint64_t sender_stat(const mllp_sender *s, mllp_sender_stat which) {
    uint64_t v = 0;
    CHECK_RC(mllp_sender_get_stat(s, which, &v), MLLP_OK);
    return v;
}
static inline uint64_t listener_stat(const mllp_listener *l, mllp_listener_stat which) {
    uint64_t v = 0;
    CHECK_RC(mllp_listener_get_stat(l, which, &v), MLLP_OK);
    return v;
}

#endif
