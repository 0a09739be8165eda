/* Log forwarding: records reach the callback with level, target and text; the level filters;
 * NULL turns logging off; re-entry is refused; several threads may log at once. */
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

typedef struct {
    atomic_int records;
    atomic_int bad;
    atomic_int oversized_seen;
    atomic_int reentry_result;
    int try_reentry;
} sink;

static void on_log(void *userdata, mllp_log_level level, const char *target,
                   const char *message) {
    sink *s = (sink *)userdata;
    atomic_fetch_add(&s->records, 1);
    if (level < MLLP_LOG_ERROR || level > MLLP_LOG_TRACE || target == NULL || message == NULL ||
        strncmp(target, "mllp", 4) != 0) {
        atomic_fetch_add(&s->bad, 1);
        return;
    }
    if (level == MLLP_LOG_DEBUG && strstr(message, "skipped a frame of 13 bytes (maximum 4)")) {
        atomic_fetch_add(&s->oversized_seen, 1);
    }
    if (s->try_reentry) {
        atomic_store(&s->reentry_result, (int)mllp_set_log_callback(NULL, NULL, MLLP_LOG_OFF));
    }
}

/* Skips junk (logged at trace level) and decodes one oversized frame (debug level). */
static void *oversized(void *arg) {
    (void)arg;
    mllp_framing *f = new_framing();
    CHECK_RC(mllp_framing_set_max_message_size(f, 4), MLLP_OK);
    mllp_decoder *dec;
    CHECK_RC(mllp_decoder_new(f, &dec), MLLP_OK);
    mllp_framing_free(f);
    CHECK_RC(mllp_decoder_feed(dec, (const uint8_t *)"xx\x0bMSH|TOO|LONG|\x1c\r", 18), MLLP_OK);
    const uint8_t *p;
    size_t n;
    CHECK_RC(mllp_decoder_next(dec, &p, &n), MLLP_FRAME_OVERSIZED);
    mllp_decoder_free(dec);
    return NULL;
}

int main(void) {
    static sink s;

    /* Nothing is installed by default: no callback, nothing happens. */
    oversized(NULL);

    CHECK_RC(mllp_set_log_callback(on_log, &s, MLLP_LOG_TRACE), MLLP_OK);
    oversized(NULL);
    CHECK(atomic_load(&s.bad) == 0);
    CHECK(atomic_load(&s.oversized_seen) == 1);
    int at_trace = atomic_load(&s.records);
    CHECK(at_trace == 2); /* the trace record for the junk, the debug record for the frame */

    /* Debug level: the trace records are filtered out. */
    CHECK_RC(mllp_set_log_callback(on_log, &s, MLLP_LOG_DEBUG), MLLP_OK);
    atomic_store(&s.records, 0);
    oversized(NULL);
    CHECK(atomic_load(&s.oversized_seen) == 2);
    CHECK(atomic_load(&s.records) == 1);

    /* Warn level: nothing from a decoder. */
    CHECK_RC(mllp_set_log_callback(on_log, &s, MLLP_LOG_WARN), MLLP_OK);
    oversized(NULL);
    CHECK(atomic_load(&s.records) == 1);

    /* Several threads logging at once. */
    CHECK_RC(mllp_set_log_callback(on_log, &s, MLLP_LOG_DEBUG), MLLP_OK);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&threads[i], NULL, oversized, NULL) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(atomic_load(&s.oversized_seen) == 6);
    CHECK(atomic_load(&s.bad) == 0);

    /* The callback may not swap itself out. */
    s.try_reentry = 1;
    atomic_store(&s.reentry_result, -1);
    oversized(NULL);
    CHECK(atomic_load(&s.reentry_result) == (int)MLLP_INVALID_STATE);
    s.try_reentry = 0;

    /* NULL turns logging off. */
    CHECK_RC(mllp_set_log_callback(NULL, NULL, MLLP_LOG_TRACE), MLLP_OK);
    int before = atomic_load(&s.records);
    oversized(NULL);
    CHECK(atomic_load(&s.records) == before);
    /* ... and a callback can be installed again. */
    CHECK_RC(mllp_set_log_callback(on_log, &s, MLLP_LOG_DEBUG), MLLP_OK);
    oversized(NULL);
    CHECK(atomic_load(&s.records) == before + 1);
    CHECK_RC(mllp_set_log_callback(NULL, NULL, MLLP_LOG_OFF), MLLP_OK);

    printf("log_test: ok (%d records at trace level for one oversized frame)\n", at_trace);
    return 0;
}
