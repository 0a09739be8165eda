/* The C callback listener, driven by a Rust sender in tests/c_api.rs.
 *
 * First, on its own: every NULL argument, bad options, and a second listener served by
 * mllp_listener_run on a thread and stopped from inside its callback (a C sender talks to it).
 * Then it binds 127.0.0.1:0, prints "PORT <n>", starts, and waits for a line "stop" (or EOF) on
 * stdin while the Rust side sends. The callback answers by control ID prefix:
 *   ACC  -> accept, text "stored <id>"      ERR  -> error "cannot store", code 207
 *   REJ  -> reject "unsupported"            BAD  -> returns an invalid disposition (-> AE)
 *   SLOW -> prints "SLOW_STARTED", sleeps 300 ms, then accepts      else -> accept
 * On "stop" it stops and frees the listener and prints "STATS key=value ...". */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "check.h"

typedef struct {
    atomic_int calls;
    atomic_int in_flight;
    atomic_int max_in_flight;
    atomic_int bad_info;
    mllp_listener *self; /* for the callback that stops its own listener */
} app;

static int has_prefix(const mllp_message_info *info, const char *p) {
    size_t n = strlen(p);
    return info->control_id_len >= n && memcmp(info->control_id, p, n) == 0;
}

static mllp_disposition on_message(void *userdata, const mllp_message_info *info,
                                   mllp_response *response) {
    app *a = userdata;
    atomic_fetch_add(&a->calls, 1);
    int now = atomic_fetch_add(&a->in_flight, 1) + 1;
    int max = atomic_load(&a->max_in_flight);
    while (now > max && !atomic_compare_exchange_weak(&a->max_in_flight, &max, now)) {
    }
    /* The facts the library promises. */
    if (info->text == NULL || info->text_len < 8 || memcmp(info->text, "MSH|", 4) != 0 ||
        info->raw == NULL || info->raw_len != info->text_len || info->peer == NULL ||
        strncmp(info->peer, "127.0.0.1:", 10) != 0 || info->connection_id == 0 ||
        info->message_type_len != 7 || memcmp(info->message_type, "ADT^A01", 7) != 0 ||
        info->control_id == NULL || info->control_id_len == 0) {
        atomic_fetch_add(&a->bad_info, 1);
    }
    /* The growable part: how the text was decoded. */
    if (info->size != sizeof(mllp_message_info) || !MLLP_MESSAGE_INFO_HAS(info, replaced) ||
        info->charset == NULL || strcmp(info->charset, "UTF-8") != 0 || info->replaced != 0) {
        atomic_fetch_add(&a->bad_info, 1);
    }
    mllp_disposition d = MLLP_DISPOSITION_ACCEPT;
    if (has_prefix(info, "ACC")) {
        char text[64];
        snprintf(text, sizeof text, "stored %.*s", (int)info->control_id_len,
                 (const char *)info->control_id);
        if (mllp_response_set_text(response, text) != MLLP_OK) atomic_fetch_add(&a->bad_info, 1);
    } else if (has_prefix(info, "ERR")) {
        mllp_response_set_text(response, "cannot store");
        mllp_response_set_error_code(response, 207);
        d = MLLP_DISPOSITION_ERROR;
    } else if (has_prefix(info, "REJ")) {
        mllp_response_set_text(response, "unsupported");
        d = MLLP_DISPOSITION_REJECT;
    } else if (has_prefix(info, "BAD")) {
        d = 42;
    } else if (has_prefix(info, "SLOW")) {
        /* The test sends on another connection once it reads this line. */
        printf("SLOW_STARTED\n");
        fflush(stdout);
        struct timespec t = {0, 300 * 1000 * 1000};
        nanosleep(&t, NULL);
    } else if (has_prefix(info, "STOP")) {
        /* Stopping from a callback returns at once; the ACK is still sent. */
        if (mllp_listener_stop(a->self) != MLLP_OK) atomic_fetch_add(&a->bad_info, 1);
    }
    /* NULL arguments inside the callback. */
    if (mllp_response_set_text(NULL, "x") != MLLP_NULL_ARGUMENT ||
        mllp_response_set_error_code(NULL, 1) != MLLP_NULL_ARGUMENT) {
        atomic_fetch_add(&a->bad_info, 1);
    }
    atomic_fetch_sub(&a->in_flight, 1);
    return d;
}

/* A listener builder with the settings every listener here uses. */
static mllp_listener_builder *builder(void) {
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_ack_policy(b, MLLP_ACK_POLICY_ORIGINAL), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_shutdown_grace_ms(b, 5000), MLLP_OK);
    return b;
}

static void null_arguments(void) {
    mllp_listener *l = NULL;
    mllp_listener_builder *b = NULL;
    uint64_t value = 0;
    uint16_t port = 0;
    app a = {0};

    CHECK_RC(mllp_listener_builder_new(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_build(NULL, "127.0.0.1:0", on_message, &a, &l),
             MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_build(b, NULL, on_message, &a, &l), MLLP_NULL_ARGUMENT);
    CHECK(l == NULL);
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", NULL, &a, &l), MLLP_NULL_ARGUMENT);
    CHECK(strstr(last_error(), "callback") != NULL);
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, NULL),
             MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_build(b, "not an address", on_message, &a, &l), MLLP_CONFIG);

    /* A handle that never serves: every call checks its pointers; stop and free work. */
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_OK);
    CHECK_RC(mllp_listener_local_port(NULL, &port), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_local_port(l, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_local_port(l, &port), MLLP_OK);
    CHECK(port != 0);
    /* The port is taken. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    mllp_listener *l2 = NULL;
    CHECK_RC(mllp_listener_builder_build(b, addr, on_message, &a, &l2), MLLP_IO);
    CHECK(l2 == NULL);
    mllp_listener_builder_free(b);
    CHECK_RC(mllp_listener_start(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_run(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_stop(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_get_stat(NULL, MLLP_LISTENER_STAT_MESSAGES, &value),
             MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_get_stat(l, MLLP_LISTENER_STAT_MESSAGES, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_get_stat(l, 1000, &value), MLLP_INVALID_ARGUMENT);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_MESSAGES) == 0);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_CONNECTIONS_TOTAL) == 0);
    CHECK_RC(mllp_listener_stop(l), MLLP_OK);
    CHECK_RC(mllp_listener_start(l), MLLP_INVALID_STATE);
    CHECK(strstr(last_error(), "stopped") != NULL);
    mllp_listener_free(l);
    mllp_listener_free(NULL);
    CHECK(atomic_load(&a.calls) == 0);
    printf("null arguments refused\n");
}

static void *run_listener(void *arg) {
    mllp_listener *l = arg;
    return (void *)(size_t)mllp_listener_run(l);
}

/* mllp_listener_run on a thread, a C sender, and a callback that stops its own listener. */
static void run_and_stop_from_callback(void) {
    app a = {0};
    mllp_listener_builder *b = builder();
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_OK);
    mllp_listener_builder_free(b);
    a.self = l;
    uint16_t port = 0;
    CHECK_RC(mllp_listener_local_port(l, &port), MLLP_OK);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, run_listener, l) == 0);

    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    mllp_sender_builder *sb = NULL;
    CHECK_RC(mllp_sender_builder_new(&sb), MLLP_OK);
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(sb, addr, &s), MLLP_OK);
    mllp_sender_builder_free(sb);
    static const char acc[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|ACC7|P|2.5\rPID|1\r";
    static const char stop[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|STOP1|P|2.5\rPID|1\r";
    uint8_t ack[512];
    size_t ack_len = 0;
    mllp_ack_code code = 0;
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)acc, sizeof acc - 1, ack, sizeof ack, &ack_len,
                              &code),
             MLLP_OK);
    CHECK(code == MLLP_ACK_AA && contains(ack, ack_len, "MSA|AA|ACC7|stored ACC7"));
    /* Running already: a second run or start is refused. */
    CHECK_RC(mllp_listener_start(l), MLLP_INVALID_STATE);
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)stop, sizeof stop - 1, ack, sizeof ack,
                              &ack_len, &code),
             MLLP_OK);
    CHECK(code == MLLP_ACK_AA);
    void *rc = NULL;
    CHECK(pthread_join(t, &rc) == 0);
    CHECK((mllp_result)(size_t)rc == MLLP_OK);
    mllp_sender_free(s);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_MESSAGES) == 2);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_ACKS_AA) == 2);
    CHECK_RC(mllp_listener_run(l), MLLP_INVALID_STATE);
    mllp_listener_free(l);
    CHECK(atomic_load(&a.bad_info) == 0);
    printf("run on a thread, stopped from a callback\n");
}

int main(void) {
    null_arguments();
    run_and_stop_from_callback();

    app a = {0};
    /* Every listener setting, with values the Rust senders of the test runner work with. */
    mllp_listener_builder *b = builder();
    mllp_framing *f = new_framing();
    CHECK_RC(mllp_framing_set_max_message_size(f, 1 << 20), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_framing(b, f), MLLP_OK);
    mllp_framing_free(f);
    CHECK_RC(mllp_listener_builder_set_charset(b, "UTF-8"), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_detect_msh18(b, 1), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_reject_malformed(b, 1), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_max_connections(b, 4), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_backlog_overflow(b, 1), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_replace_idle(b, 0), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_evict_after_ms(b, 0), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_frame_timeout_ms(b, 30000), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_idle_timeout_ms(b, 30000), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_write_timeout_ms(b, 5000), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_handshake_timeout_ms(b, 5000), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_stack_size(b, 2 * MLLP_LISTENER_DEFAULT_STACK_SIZE),
             MLLP_OK);
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_OK);
    mllp_listener_builder_free(b);
    uint16_t port = 0;
    CHECK_RC(mllp_listener_local_port(l, &port), MLLP_OK);
    CHECK_RC(mllp_listener_start(l), MLLP_OK);
    printf("PORT %u\n", (unsigned)port);
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "stop", 4) == 0) break;
    }
    /* Stop waits for the connection threads: no callback runs after it returns. */
    CHECK_RC(mllp_listener_stop(l), MLLP_OK);
    int calls = atomic_load(&a.calls);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_CONNECTIONS_OPEN) == 0);
    unsigned long long messages = listener_stat(l, MLLP_LISTENER_STAT_MESSAGES),
                       aa = listener_stat(l, MLLP_LISTENER_STAT_ACKS_AA),
                       ae = listener_stat(l, MLLP_LISTENER_STAT_ACKS_AE),
                       ar = listener_stat(l, MLLP_LISTENER_STAT_ACKS_AR),
                       total = listener_stat(l, MLLP_LISTENER_STAT_CONNECTIONS_TOTAL);
    mllp_listener_free(l);
    CHECK(atomic_load(&a.calls) == calls);
    CHECK(atomic_load(&a.in_flight) == 0);
    printf("STATS calls=%d messages=%llu aa=%llu ae=%llu ar=%llu connections=%llu "
           "max_in_flight=%d bad_info=%d\n",
           calls, messages, aa, ae, ar, total, atomic_load(&a.max_in_flight),
           atomic_load(&a.bad_info));
    fflush(stdout);
    return atomic_load(&a.bad_info) == 0 && (unsigned long long)calls == messages ? 0 : 1;
}
