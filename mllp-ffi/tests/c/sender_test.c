/* The C sender against a Rust listener started by the test runner (MLLP_TEST_PORT): accepted,
 * erroneous and rejected messages, corpus files (MLLP_TEST_CORPUS), an ACK buffer too small,
 * a code-only send, a slow ACK, a second thread on a busy handle, an unreachable port
 * (MLLP_TEST_DEAD_PORT), every NULL argument. The listener answers by control ID prefix:
 * REJ -> AR "rejected by test", ERR -> AE "error by test", SLOW -> AA after 800 ms, else AA. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "corpus.h"

static char address[64];

static size_t build_msg(char *out, size_t cap, const char *id) {
    int n = snprintf(out, cap,
                     "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ADT^A01^ADT_A01|%s|P|2.5.1\r"
                     "PID|1||12345^^^HOSP^MR||DOE^JANE\r",
                     id);
    CHECK(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static mllp_sender *new_sender(uint32_t ack_timeout_ms, uint32_t attempts) {
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_ack_timeout_ms(b, ack_timeout_ms), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, attempts, 20, 30000), MLLP_OK);
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(b, address, &s), MLLP_OK);
    mllp_sender_builder_free(b); /* the sender keeps what it needs */
    CHECK(s != NULL);
    return s;
}

/* Sends `id` and checks the ACK code and that MSA-2 echoes the ID. */
static void send_expect(mllp_sender *s, const char *id, mllp_ack_code want, const char *text) {
    char msg[512];
    uint8_t ack[1024];
    size_t len = build_msg(msg, sizeof msg, id), ack_len = 0;
    mllp_ack_code code = 99;
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, ack, sizeof ack, &ack_len, &code),
             MLLP_OK);
    if (code != want) {
        fprintf(stderr, "%s: got %s, expected %s\n", id, mllp_ack_code_str(code),
                mllp_ack_code_str(want));
        exit(1);
    }
    char msa[64];
    snprintf(msa, sizeof msa, "MSA|%s|%s", mllp_ack_code_str(want), id);
    CHECK(ack_len > 0 && ack_len <= sizeof ack);
    CHECK(contains(ack, ack_len, msa));
    if (text) CHECK(contains(ack, ack_len, text));
}

static void dispositions(void) {
    mllp_sender *s = new_sender(10000, 2);
    char id[32];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "C%04d", i);
        send_expect(s, id, MLLP_ACK_AA, NULL);
    }
    send_expect(s, "REJ1", MLLP_ACK_AR, "rejected by test");
    send_expect(s, "ERR1", MLLP_ACK_AE, "error by test");
    send_expect(s, "C9999", MLLP_ACK_AA, NULL);

    CHECK(sender_stat(s, MLLP_SENDER_STAT_MESSAGES) == 23);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_ACKS) == 21);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_NEGATIVE_ACKS) == 2);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_CONNECTS) == 1);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_FAILURES) == 0);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_RETRIES) == 0);

    /* Close, and the next send connects again. */
    CHECK_RC(mllp_sender_close(s), MLLP_OK);
    send_expect(s, "C10000", MLLP_ACK_AA, NULL);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_CONNECTS) == 2);
    mllp_sender_free(s);
    printf("dispositions: 24 messages, AA/AR/AE as expected\n");
}

static void small_buffers(void) {
    mllp_sender *s = new_sender(10000, 1);
    char msg[512];
    size_t len = build_msg(msg, sizeof msg, "SMALL1"), ack_len = 0;
    uint8_t small[10];
    memset(small, 0xAA, sizeof small);
    mllp_ack_code code = 99;
    /* Too small: the message was delivered, so the call succeeds (a caller that retries on
     * errors must not send it twice); the code is valid, the size needed reported, nothing
     * written into the buffer. */
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, small, sizeof small, &ack_len, &code),
             MLLP_OK);
    CHECK(code == MLLP_ACK_AA);
    CHECK(ack_len > sizeof small);
    for (size_t i = 0; i < sizeof small; i++) CHECK(small[i] == 0xAA);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_FRAMES_WRITTEN) == 1);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_ACKS) == 1);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_FAILURES) == 0);
    /* ... and the ACK can be fetched again. */
    size_t need = ack_len, got = 0;
    uint8_t *ack = malloc(need);
    CHECK(ack != NULL);
    CHECK_RC(mllp_sender_last_ack(s, small, sizeof small, &got), MLLP_BUFFER_TOO_SMALL);
    CHECK(got == need);
    CHECK_RC(mllp_sender_last_ack(s, NULL, 0, &got), MLLP_BUFFER_TOO_SMALL);
    CHECK_RC(mllp_sender_last_ack(s, ack, need, &got), MLLP_OK);
    CHECK(got == need && contains(ack, got, "MSA|AA|SMALL1"));
    free(ack);

    /* Code only: NULL buffer with capacity 0. */
    len = build_msg(msg, sizeof msg, "CODEONLY1");
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, NULL, 0, &ack_len, &code), MLLP_OK);
    CHECK(code == MLLP_ACK_AA && ack_len > 0);
    len = build_msg(msg, sizeof msg, "REJ2");
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, NULL, 0, &ack_len, &code), MLLP_OK);
    CHECK(code == MLLP_ACK_AR);
    mllp_sender_free(s);
    printf("small buffers: size needed %zu reported with the code\n", need);
}

/* Before anything is sent: no header, no control ID, a frame end inside. */
static void bad_messages(void) {
    mllp_sender *s = new_sender(10000, 1);
    uint8_t ack[64];
    size_t ack_len = 7;
    mllp_ack_code code = 99;
    static const char no_header[] = "PID|1\r";
    static const char no_id[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01||P|2.5\r";
    static const char with_end[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|E1|P|2.5\r\x1c\rPID|1\r";
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)no_header, sizeof no_header - 1, ack,
                              sizeof ack, &ack_len, &code),
             MLLP_HEADER);
    CHECK(ack_len == 0 && code == MLLP_ACK_NONE);
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)no_id, sizeof no_id - 1, ack, sizeof ack,
                              &ack_len, &code),
             MLLP_HEADER);
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)with_end, sizeof with_end - 1, ack,
                              sizeof ack, &ack_len, &code),
             MLLP_FRAME_PAYLOAD_CONTAINS_END);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_CONNECTS) == 0);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_FRAMES_WRITTEN) == 0);
    mllp_sender_free(s);

    /* A character set: UTF-8 text is encoded; text it cannot carry is refused. */
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_charset(b, "ISO-8859-1"), MLLP_OK);
    CHECK_RC(mllp_sender_builder_build(b, address, &s), MLLP_OK);
    mllp_sender_builder_free(b);
    static const char latin[] =
        "MSH|^~\\&|A|B|C|D|1||ADT^A01|L1|P|2.5||||||8859/1\rPID|1||1||M\xc3\xbcller\r";
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)latin, sizeof latin - 1, NULL, 0, &ack_len,
                              &code),
             MLLP_OK);
    CHECK(code == MLLP_ACK_AA);
    static const char greek[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|L2|P|2.5\rPID|1||1||\xce\xa9\r";
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)greek, sizeof greek - 1, NULL, 0, &ack_len,
                              &code),
             MLLP_CHARSET);
    static const char not_utf8[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|L3|P|2.5\rPID|\xff\r";
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)not_utf8, sizeof not_utf8 - 1, NULL, 0,
                              &ack_len, &code),
             MLLP_CHARSET);
    mllp_sender_free(s);
    printf("bad messages refused before sending\n");
}

static void unreachable(void) {
    const char *dead = getenv("MLLP_TEST_DEAD_PORT");
    CHECK(dead != NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%s", dead);
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, 2, 10, 10), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_connect_timeout_ms(b, 2000), MLLP_OK);
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(b, addr, &s), MLLP_OK);
    mllp_sender_builder_free(b);
    char msg[512];
    size_t len = build_msg(msg, sizeof msg, "DEAD1"), ack_len = 5;
    uint8_t ack[64];
    mllp_ack_code code = 99;
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, ack, sizeof ack, &ack_len, &code),
             MLLP_NOT_DELIVERED);
    CHECK(code == MLLP_ACK_NONE && ack_len == 0);
    size_t needed = 0;
    CHECK_RC(mllp_last_error(NULL, 0, &needed), MLLP_BUFFER_TOO_SMALL);
    CHECK(needed > 1);
    char *text = malloc(needed);
    CHECK(text != NULL);
    CHECK_RC(mllp_last_error(text, needed, &needed), MLLP_OK);
    CHECK(strstr(text, "not delivered") != NULL && strstr(text, "2 attempts") != NULL);
    printf("unreachable: %s\n", text);
    /* A short buffer gets a truncated, NUL-terminated text. */
    char shortbuf[8];
    CHECK_RC(mllp_last_error(shortbuf, sizeof shortbuf, &needed), MLLP_BUFFER_TOO_SMALL);
    CHECK(strlen(shortbuf) == 7 && strncmp(shortbuf, text, 7) == 0);
    free(text);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_FAILURES) == 1);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_RETRIES) == 1);
    mllp_sender_free(s);

    /* The total timeout stops the retries: no attempt starts 300 ms after the first. */
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, 0, 100, 100), MLLP_OK); /* no attempt limit */
    CHECK_RC(mllp_sender_builder_set_retry_backoff(b, 1.0, 0.0), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_total_timeout_ms(b, 300), MLLP_OK);
    CHECK_RC(mllp_sender_builder_build(b, addr, &s), MLLP_OK);
    mllp_sender_builder_free(b);
    len = build_msg(msg, sizeof msg, "DEAD2");
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, ack, sizeof ack, &ack_len, &code),
             MLLP_NOT_DELIVERED);
    uint64_t retries = sender_stat(s, MLLP_SENDER_STAT_RETRIES);
    CHECK(retries >= 1 && retries <= 4);
    mllp_sender_free(s);
    printf("total timeout 300 ms: %llu retries\n", (unsigned long long)retries);
}

/* Every sender setting at once, with values the test listener accepts. */
static void every_setting(void) {
    mllp_sender_builder *b = NULL;
    mllp_framing *f = new_framing();
    static const uint8_t vt[] = {0x0b}, fs_cr[] = {0x1c, 0x0d};
    CHECK_RC(mllp_framing_set_sequences(f, vt, 1, fs_cr, 2), MLLP_OK);
    CHECK_RC(mllp_framing_set_max_message_size(f, 1 << 16), MLLP_OK);
    CHECK_RC(mllp_framing_set_lenient_end(f, 1), MLLP_OK);
    CHECK_RC(mllp_framing_set_start_in_frame(f, MLLP_START_IN_FRAME_IGNORE), MLLP_OK);
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_framing(b, f), MLLP_OK);
    mllp_framing_free(f);
    CHECK_RC(mllp_sender_builder_set_connect_timeout_ms(b, 5000), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_ack_timeout_ms(b, 5000), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_write_timeout_ms(b, 5000), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_total_timeout_ms(b, 20000), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_charset(b, "UTF-8"), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, 2, 10, 50), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry_backoff(b, 1.5, 0.25), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_nodelay(b, 0), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_mllp2(b, 0), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_resend_on_reject(b, 1), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls(b, 0), MLLP_OK);
    /* One builder, two senders. */
    mllp_sender *s1 = NULL, *s2 = NULL;
    CHECK_RC(mllp_sender_builder_build(b, address, &s1), MLLP_OK);
    CHECK_RC(mllp_sender_builder_build(b, address, &s2), MLLP_OK);
    mllp_sender_builder_free(b);
    send_expect(s1, "ALL1", MLLP_ACK_AA, NULL);
    send_expect(s2, "ALL2", MLLP_ACK_AA, NULL);
    /* resend_on_reject: AR is sent again within the retry policy, then returned. */
    send_expect(s1, "REJ3", MLLP_ACK_AR, "rejected by test");
    CHECK(sender_stat(s1, MLLP_SENDER_STAT_RETRIES) == 1);
    CHECK(sender_stat(s1, MLLP_SENDER_STAT_NEGATIVE_ACKS) == 2);
    /* The ACK's text, read with the helpers. */
    uint8_t ack[1024];
    size_t ack_len = 0, needed = 0, count = 0;
    CHECK_RC(mllp_sender_last_ack(s1, ack, sizeof ack, &ack_len), MLLP_OK);
    char text[64];
    CHECK_RC(mllp_ack_text(ack, ack_len, text, sizeof text, &needed), MLLP_OK);
    CHECK(strcmp(text, "rejected by test") == 0);
    CHECK_RC(mllp_ack_error_count(ack, ack_len, &count), MLLP_OK);
    CHECK(count == 1);
    CHECK_RC(mllp_ack_error_text(ack, ack_len, 0, text, sizeof text, &needed), MLLP_OK);
    CHECK(strcmp(text, "rejected by test") == 0);
    mllp_sender_free(s1);
    mllp_sender_free(s2);
    printf("every setting: 2 senders from one builder, AR resent once\n");
}

typedef struct {
    mllp_sender *s;
    mllp_result rc;
    mllp_ack_code code;
} slow_job;

static void *send_slow(void *arg) {
    slow_job *job = arg;
    char msg[512];
    size_t len = build_msg(msg, sizeof msg, "SLOW2"), ack_len = 0;
    job->rc = mllp_sender_send(job->s, (const uint8_t *)msg, len, NULL, 0, &ack_len, &job->code);
    return NULL;
}

static void slow_and_busy(void) {
    /* An ACK later than the ACK timeout: written, unconfirmed. */
    mllp_sender *s = new_sender(200, 1);
    char msg[512];
    size_t len = build_msg(msg, sizeof msg, "SLOW1"), ack_len = 0;
    mllp_ack_code code = 99;
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, NULL, 0, &ack_len, &code),
             MLLP_UNCONFIRMED);
    CHECK(code == MLLP_ACK_NONE);
    CHECK(strstr(last_error(), "unconfirmed") != NULL);
    mllp_sender_free(s);

    /* A handle busy on one thread refuses a second thread instead of corrupting anything. */
    s = new_sender(10000, 1);
    slow_job job = {s, 0, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, send_slow, &job) == 0);
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    len = build_msg(msg, sizeof msg, "BUSY1");
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, NULL, 0, &ack_len, &code),
             MLLP_INVALID_STATE);
    CHECK_RC(mllp_sender_close(s), MLLP_INVALID_STATE);
    CHECK(strstr(last_error(), "in use by another thread") != NULL);
    uint64_t busy = 0;
    CHECK_RC(mllp_sender_get_stat(s, MLLP_SENDER_STAT_MESSAGES, &busy), MLLP_INVALID_STATE);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_RC(job.rc, MLLP_OK);
    CHECK(job.code == MLLP_ACK_AA);
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, len, NULL, 0, &ack_len, &code), MLLP_OK);
    mllp_sender_free(s);
    printf("slow ACK unconfirmed; busy handle refused a second thread\n");
}

typedef struct {
    mllp_sender *sender;
    uint8_t *ack;
    size_t cap, acked, refused;
} send_counts;

static void send_one(const char *path, uint8_t *data, size_t size, void *ctx) {
    send_counts *c = ctx;
    /* CR segment ends: LF and CRLF become CR, in place. */
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            if (n > 0 && data[n - 1] == '\r') continue;
            data[n++] = '\r';
        } else {
            data[n++] = data[i];
        }
    }
    size_t ack_len = 0;
    mllp_ack_code code = 99;
    mllp_result rc = mllp_sender_send(c->sender, data, n, c->ack, c->cap, &ack_len, &code);
    if (rc == MLLP_OK) {
        if (code != MLLP_ACK_AA) {
            fprintf(stderr, "%s: %s\n", path, mllp_ack_code_str(code));
            exit(1);
        }
        c->acked++;
    } else if (rc == MLLP_HEADER || rc == MLLP_FRAME_PAYLOAD_CONTAINS_END) {
        c->refused++;
    } else {
        fprintf(stderr, "%s: %s\n", path, mllp_result_str(rc));
        exit(1);
    }
    free(data);
}

/* Corpus files: CR segment ends, each sent as one message. */
static void corpus(void) {
    const char *dir = corpus_dir();
    if (!dir) return;
    send_counts c = {new_sender(10000, 2), NULL, 1 << 16, 0, 0};
    c.ack = malloc(c.cap);
    CHECK(c.ack != NULL);
    long files = for_each_hl7(dir, send_one, &c);
    free(c.ack);
    mllp_sender_free(c.sender);
    printf("corpus: %ld files, %zu acknowledged AA, %zu refused before sending\n", files, c.acked,
           c.refused);
    CHECK(files > 0 && c.acked * 2 > (size_t)files);
}

static void null_arguments(void) {
    mllp_sender *s = NULL;
    mllp_sender_builder *b = NULL;
    uint64_t value = 0;
    uint8_t buf[64];
    char text[64];
    size_t len = 0;
    mllp_ack_code code = 0;
    static const uint8_t msg[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|N1|P|2.5\r";

    CHECK_RC(mllp_sender_builder_new(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_build(NULL, address, &s), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_build(b, NULL, &s), MLLP_NULL_ARGUMENT);
    CHECK(s == NULL);
    CHECK(strstr(last_error(), "address") != NULL);
    CHECK_RC(mllp_sender_builder_build(b, address, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_build(b, "localhost", &s), MLLP_CONFIG);
    CHECK(s == NULL && strstr(last_error(), "port") != NULL);
    CHECK_RC(mllp_sender_builder_build(b, "127.0.0.1:\xff", &s), MLLP_INVALID_ARGUMENT);
    CHECK_RC(mllp_last_error(NULL, 0, &len), MLLP_BUFFER_TOO_SMALL);
    CHECK(len > 1);

    CHECK_RC(mllp_sender_builder_build(b, address, &s), MLLP_OK);
    mllp_sender_builder_free(b);
    size_t n = sizeof msg - 1;
    CHECK_RC(mllp_sender_send(NULL, msg, n, buf, sizeof buf, &len, &code), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_send(s, NULL, n, buf, sizeof buf, &len, &code), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_send(s, NULL, 0, buf, sizeof buf, &len, &code), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_send(s, msg, n, NULL, sizeof buf, &len, &code), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_send(s, msg, n, buf, sizeof buf, NULL, &code), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_send(s, msg, n, buf, sizeof buf, &len, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_last_ack(NULL, buf, sizeof buf, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_last_ack(s, NULL, sizeof buf, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_last_ack(s, buf, sizeof buf, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_last_ack(s, buf, sizeof buf, &len), MLLP_OK);
    CHECK(len == 0);
    CHECK_RC(mllp_sender_close(NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_get_stat(NULL, MLLP_SENDER_STAT_ACKS, &value), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_get_stat(s, MLLP_SENDER_STAT_ACKS, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_get_stat(s, 10000, &value), MLLP_INVALID_ARGUMENT);
    CHECK(value == 0);
    (void)text;
    /* The handle still works after all that. */
    CHECK_RC(mllp_sender_send(s, msg, n, buf, sizeof buf, &len, &code), MLLP_OK);
    CHECK(code == MLLP_ACK_AA && len > sizeof buf);
    CHECK_RC(mllp_sender_close(s), MLLP_OK);
    mllp_sender_free(s);
    mllp_sender_free(NULL);

    CHECK(strcmp(mllp_ack_code_str(MLLP_ACK_AA), "AA") == 0);
    CHECK(strcmp(mllp_ack_code_str(MLLP_ACK_CR), "CR") == 0);
    CHECK(strcmp(mllp_ack_code_str(MLLP_ACK_COMMIT_ACCEPT), "commit accept") == 0);
    CHECK(strcmp(mllp_ack_code_str(MLLP_ACK_NONE), "none") == 0);
    CHECK(strcmp(mllp_ack_code_str(1000), "unknown") == 0);
    printf("null arguments refused\n");
}

int main(void) {
    const char *port = getenv("MLLP_TEST_PORT");
    if (!port) {
        fprintf(stderr, "MLLP_TEST_PORT is not set (run by tests/c_api.rs)\n");
        return 1;
    }
    snprintf(address, sizeof address, "127.0.0.1:%s", port);
    null_arguments();
    dispositions();
    small_buffers();
    bad_messages();
    unreachable();
    every_setting();
    slow_and_busy();
    corpus();
    return 0;
}
