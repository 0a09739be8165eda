/* The C outbox against a Rust listener started by the test runner (MLLP_TEST_PORT): messages
 * delivered in order, an AE dead-lettered with its ACK and listed, requeued and purged, a full
 * outbox, a second opener locked out, concurrent enqueues from threads, pending messages kept
 * across a close and delivered after a reopen, every NULL argument. The listener answers by
 * control ID prefix: ERR -> AE "error by test", else AA. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char address[64];

static size_t build_msg(char *out, size_t cap, const char *id) {
    int n = snprintf(out, cap,
                     "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ADT^A01^ADT_A01|%s|P|2.5.1\r"
                     "PID|1||12345^^^HOSP^MR||DOE^JANE\r",
                     id);
    CHECK(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void enqueue(mllp_outbox *o, const char *id, mllp_result want) {
    char msg[512];
    size_t len = build_msg(msg, sizeof msg, id);
    CHECK_RC(mllp_outbox_enqueue(o, (const uint8_t *)msg, len), want);
}

static uint64_t counter(mllp_outbox *o, mllp_outbox_stat which) {
    uint64_t v = 99;
    CHECK_RC(mllp_outbox_get_stat(o, which, &v), MLLP_OK);
    return v;
}

/* Waits (at most 20 s, polling every 5 ms) until counter `which` reaches `want`. */
static void wait_stat(mllp_outbox *o, mllp_outbox_stat which, uint64_t want) {
    struct timespec t = {0, 5 * 1000 * 1000};
    for (int i = 0; i < 4000; i++) {
        if (counter(o, which) == want) return;
        nanosleep(&t, NULL);
    }
    fprintf(stderr, "counter %u stayed at %llu, expected %llu\n", (unsigned)which,
            (unsigned long long)counter(o, which), (unsigned long long)want);
    exit(1);
}

static mllp_outbox_builder *new_builder(int deliver) {
    mllp_outbox_builder *b = NULL;
    CHECK_RC(mllp_outbox_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_outbox_builder_set_retry(b, 0, 5, 50), MLLP_OK);
    CHECK_RC(mllp_outbox_builder_set_poll_interval_ms(b, 20), MLLP_OK);
    CHECK_RC(mllp_outbox_builder_set_deliver(b, deliver), MLLP_OK);
    mllp_sender_builder *s = NULL;
    CHECK_RC(mllp_sender_builder_new(&s), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_ack_timeout_ms(s, 5000), MLLP_OK);
    CHECK_RC(mllp_outbox_builder_set_sender(b, s), MLLP_OK);
    mllp_sender_builder_free(s); /* copied */
    return b;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct job {
    mllp_outbox *outbox;
    int thread;
};

static void *enqueue_many(void *arg) {
    struct job *job = arg;
    for (int i = 0; i < 25; i++) {
        char id[32];
        snprintf(id, sizeof id, "T%d-%d", job->thread, i);
        enqueue(job->outbox, id, MLLP_OK);
    }
    return NULL;
}

static void delivery_and_dead_letters(const char *dir) {
    mllp_outbox_builder *b = new_builder(1);
    mllp_outbox *o = NULL;
    CHECK_RC(mllp_outbox_open(b, dir, address, &o), MLLP_OK);
    CHECK(o != NULL);

    /* A second opener is locked out, and told who holds the directory. */
    mllp_outbox *second = (mllp_outbox *)1;
    CHECK_RC(mllp_outbox_open(b, dir, address, &second), MLLP_LOCKED);
    CHECK(second == NULL);
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)getpid());
    CHECK(strstr(last_error(), pid) != NULL);

    enqueue(o, "C1", MLLP_OK);
    enqueue(o, "ERR1", MLLP_OK);
    enqueue(o, "C2", MLLP_OK);
    wait_stat(o, MLLP_OUTBOX_STAT_DELIVERED, 2);
    wait_stat(o, MLLP_OUTBOX_STAT_DEAD_LETTERED, 1);
    CHECK(counter(o, MLLP_OUTBOX_STAT_PENDING) == 0);
    CHECK(counter(o, MLLP_OUTBOX_STAT_HELD) == 0);

    /* Not HL7: refused before it is queued. */
    CHECK_RC(mllp_outbox_enqueue(o, (const uint8_t *)"hello", 5), MLLP_HEADER);

    /* Concurrent enqueues from 4 threads: all kept, all delivered. */
    pthread_t threads[4];
    struct job jobs[4];
    for (int t = 0; t < 4; t++) {
        jobs[t].outbox = o;
        jobs[t].thread = t;
        CHECK(pthread_create(&threads[t], NULL, enqueue_many, &jobs[t]) == 0);
    }
    for (int t = 0; t < 4; t++) CHECK(pthread_join(threads[t], NULL) == 0);
    wait_stat(o, MLLP_OUTBOX_STAT_DELIVERED, 102);
    CHECK(counter(o, MLLP_OUTBOX_STAT_SYNCS) <= 103);

    /* The dead letter: the message and the ACK's text. */
    mllp_dead_letters *list = NULL;
    CHECK_RC(mllp_outbox_dead_letters(dir, &list), MLLP_OK);
    CHECK(mllp_dead_letters_count(list) == 1);
    uint8_t buf[2048];
    size_t len = 0;
    CHECK_RC(mllp_dead_letters_get(list, 0, MLLP_DEAD_LETTER_CONTROL_ID, buf, sizeof buf, &len),
             MLLP_OK);
    CHECK(len == 4 && memcmp(buf, "ERR1", 4) == 0);
    CHECK_RC(mllp_dead_letters_get(list, 0, MLLP_DEAD_LETTER_REASON, NULL, 0, &len),
             MLLP_BUFFER_TOO_SMALL);
    CHECK(len > 0 && len < sizeof buf);
    CHECK_RC(mllp_dead_letters_get(list, 0, MLLP_DEAD_LETTER_REASON, buf, sizeof buf, &len),
             MLLP_OK);
    CHECK(contains(buf, len, "MSA|AE|ERR1"));
    CHECK(contains(buf, len, "error by test"));
    CHECK_RC(mllp_dead_letters_get(list, 0, MLLP_DEAD_LETTER_MESSAGE, buf, sizeof buf, &len),
             MLLP_OK);
    CHECK(contains(buf, len, "|ERR1|"));
    CHECK_RC(mllp_dead_letters_get(list, 1, MLLP_DEAD_LETTER_MESSAGE, buf, sizeof buf, &len),
             MLLP_INVALID_ARGUMENT);
    CHECK_RC(mllp_dead_letters_get(list, 0, 77, buf, sizeof buf, &len), MLLP_INVALID_ARGUMENT);
    mllp_dead_letters_free(list);

    /* Requeued: rejected again (the listener always refuses ERR), so dead again. */
    size_t n = 9;
    CHECK_RC(mllp_outbox_requeue_dead(dir, &n), MLLP_OK);
    CHECK(n == 1);
    wait_stat(o, MLLP_OUTBOX_STAT_DEAD_LETTERED, 1);
    CHECK_RC(mllp_outbox_purge_dead(dir, &n), MLLP_OK);
    CHECK(n <= 1);

    CHECK_RC(mllp_outbox_close(o), MLLP_OK);
    CHECK_RC(mllp_outbox_close(o), MLLP_OK);
    enqueue(o, "LATE", MLLP_CLOSED);
    uint64_t v = 0;
    CHECK_RC(mllp_outbox_get_stat(o, MLLP_OUTBOX_STAT_PENDING, &v), MLLP_CLOSED);
    mllp_outbox_free(o);
    mllp_outbox_builder_free(b);
}

static void bounds_and_reopen(const char *dir) {
    mllp_outbox_builder *b = new_builder(0);
    CHECK_RC(mllp_outbox_builder_set_bounds(b, 2, 1 << 20), MLLP_OK);
    mllp_outbox *o = NULL;
    CHECK_RC(mllp_outbox_open(b, dir, address, &o), MLLP_OK);
    enqueue(o, "K1", MLLP_OK);
    enqueue(o, "K2", MLLP_OK);
    enqueue(o, "K3", MLLP_FULL);
    CHECK(strstr(last_error(), "full") != NULL);
    CHECK(counter(o, MLLP_OUTBOX_STAT_PENDING) == 2);
    CHECK(counter(o, MLLP_OUTBOX_STAT_REFUSED_FULL) == 1);
    mllp_outbox_free(o); /* closes: the two messages stay on disk */

    CHECK_RC(mllp_outbox_builder_set_deliver(b, 1), MLLP_OK);
    CHECK_RC(mllp_outbox_open(b, dir, address, &o), MLLP_OK);
    CHECK(counter(o, MLLP_OUTBOX_STAT_PENDING) <= 2);
    wait_stat(o, MLLP_OUTBOX_STAT_DELIVERED, 2);
    enqueue(o, "K3", MLLP_OK);
    wait_stat(o, MLLP_OUTBOX_STAT_DELIVERED, 3);
    mllp_outbox_free(o);
    mllp_outbox_builder_free(b);
}

static void bad_arguments(const char *dir) {
    mllp_outbox_builder *b = new_builder(0);
    CHECK_RC(mllp_outbox_builder_new(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_builder_set_on_reject(b, 7), MLLP_INVALID_ARGUMENT);
    CHECK_RC(mllp_outbox_builder_set_on_reject(b, MLLP_OUTBOX_HOLD), MLLP_OK);
    CHECK_RC(mllp_outbox_builder_set_on_reject(NULL, MLLP_OUTBOX_HOLD), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_builder_set_bounds(b, 0, 1), MLLP_CONFIG);
    CHECK_RC(mllp_outbox_builder_set_segment_bytes(b, 0), MLLP_CONFIG);
    CHECK_RC(mllp_outbox_builder_set_poll_interval_ms(b, 0), MLLP_CONFIG);
    CHECK_RC(mllp_outbox_builder_set_retry(b, 0, 100, 10), MLLP_CONFIG);
    CHECK_RC(mllp_outbox_builder_set_deliver(b, 2), MLLP_INVALID_ARGUMENT);
    CHECK_RC(mllp_outbox_builder_set_sender(b, NULL), MLLP_NULL_ARGUMENT);
    mllp_outbox *o = (mllp_outbox *)1;
    CHECK_RC(mllp_outbox_open(NULL, dir, address, &o), MLLP_NULL_ARGUMENT);
    CHECK(o == NULL);
    CHECK_RC(mllp_outbox_open(b, NULL, address, &o), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_open(b, dir, NULL, &o), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_open(b, dir, address, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_enqueue(NULL, (const uint8_t *)"x", 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_get_stat(NULL, 0, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_resume(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_close(NULL), MLLP_NULL_ARGUMENT);
    mllp_dead_letters *list = (mllp_dead_letters *)1;
    CHECK_RC(mllp_outbox_dead_letters(NULL, &list), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_dead_letters(dir, NULL), MLLP_NULL_ARGUMENT);
    CHECK(mllp_dead_letters_count(NULL) == 0);
    size_t len = 0;
    CHECK_RC(mllp_dead_letters_get(NULL, 0, 0, NULL, 0, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_requeue_dead(dir, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_purge_dead(NULL, &len), MLLP_NULL_ARGUMENT);
    CHECK(strcmp(mllp_result_str(MLLP_FULL), "the outbox is full") == 0);
    mllp_outbox_free(NULL);
    mllp_outbox_builder_free(NULL);
    mllp_dead_letters_free(NULL);

    /* Unknown counters, with a valid handle. */
    CHECK_RC(mllp_outbox_builder_set_on_reject(b, MLLP_OUTBOX_DEAD_LETTER), MLLP_OK);
    CHECK_RC(mllp_outbox_open(b, dir, address, &o), MLLP_OK);
    uint64_t v = 5;
    CHECK_RC(mllp_outbox_get_stat(o, 1000, &v), MLLP_INVALID_ARGUMENT);
    CHECK(v == 0);
    CHECK_RC(mllp_outbox_get_stat(o, MLLP_OUTBOX_STAT_PENDING, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_enqueue(o, NULL, 3), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_outbox_resume(o), MLLP_OK);
    mllp_outbox_free(o);
    mllp_outbox_builder_free(b);
}

int main(void) {
    const char *port = getenv("MLLP_TEST_PORT");
    if (port == NULL) {
        fprintf(stderr, "MLLP_TEST_PORT is not set (run by tests/c_api.rs)\n");
        return 1;
    }
    snprintf(address, sizeof address, "127.0.0.1:%s", port);
    char tmpl[] = "/tmp/mllp-c-outbox-XXXXXX";
    char *root = mkdtemp(tmpl);
    CHECK(root != NULL);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/a", root);
    delivery_and_dead_letters(dir);
    snprintf(dir, sizeof dir, "%s/b", root);
    bounds_and_reopen(dir);
    snprintf(dir, sizeof dir, "%s/c", root);
    bad_arguments(dir);
    CHECK(nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
    printf("outbox_test: ok\n");
    return 0;
}
