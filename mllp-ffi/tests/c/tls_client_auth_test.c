/* Client certificates, TLS versions, certificate reloads and the pending-handshake limit
 * through the C API, run by tests/c_api.rs.
 *
 * Always: the setters of this file refuse bad values (mllp_listener_builder_set_max_handshakes
 * 0, TLS versions other than 12 and 13, a client CA file that is missing or comes without a
 * TLS identity, a reload of a plain TCP listener). In a build without TLS support it then
 * prints a notice and exits 0.
 *
 * With TLS (the test certificates in MLLP_TEST_CERTS; in MLLP_TEST_SCRATCH the DER form of
 * client.pem and a server certificate made for this run, reloaded.pem/.key/.der, subject
 * "CN=mllp reloaded test server", signed by the test CA):
 * - a TLS listener allowing 1 pending handshake closes the first of two connections that
 *   stall in their handshake when the second arrives (MLLP_LISTENER_STAT_HANDSHAKES_DROPPED);
 * - a C sender that wants TLS 1.3 at least cannot reach a server limited to TLS 1.2
 *   (`openssl s_server -tls1_2`, port in MLLP_TEST_TLS12_PORT), one that accepts 1.2 can;
 * - a listener requiring client certificates from the test CA, TLS 1.3 at least, serves a C
 *   sender with client.pem (the callback sees its subject and certificate) and refuses C
 *   senders without a certificate, with one from another CA and with an expired one: their
 *   messages never reach the callback.
 * Then it prints "CLIENT_AUTH_PORT <port>" and obeys the Rust side on stdin: "reload-bad"
 * (reloads that fail: a missing file, a key that does not match, a missing client CA; each
 * returns its code and keeps the certificate: prints "RELOAD_BAD_DONE"), "reload" (reloaded.pem
 * with the test CA for clients, then a C sender with client.pem is still served: prints
 * "RELOADED"), "stop" (prints "STATS calls=<n> subject_ok=<n> bad_info=<n> tls_failures=<n>
 * aa=<n>"). The Rust side checks which certificate each connection is served, and that a
 * connection opened before the reload keeps working. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"

static char certs[1024], scratch[1024];

/* The path of `name` in `dir`, in one of 8 rotating buffers: valid until 8 more calls, enough
 * for the options of one sender, listener or reload. */
static const char *path_in(const char *dir, const char *name) {
    static char paths[8][1200];
    static int next = 0;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}
static const char *cert(const char *name) { return path_in(certs, name); }
static const char *made(const char *name) { return path_in(scratch, name); }

static size_t build_msg(char *out, size_t cap, const char *id) {
    int n = snprintf(out, cap,
                     "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ADT^A01^ADT_A01|%s|P|2.5.1\r"
                     "PID|1||12345^^^HOSP^MR||DOE^JANE\r",
                     id);
    CHECK(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* --- What the callback sees. -------------------------------------------------------------- */

static const char client_subject[] = "CN=mllp test client";
/* client.pem in DER, read from the scratch directory. */
static unsigned char client_der[4096];
static size_t client_der_len;

typedef struct {
    atomic_int calls;
    /* Messages whose TLS subject and certificate are client.pem's. */
    atomic_int subject_ok;
    atomic_int bad_info;
} app;

static mllp_disposition on_message(void *userdata, const mllp_message_info *info,
                                   mllp_response *response) {
    (void)response;
    app *a = userdata;
    if (a == NULL) return MLLP_DISPOSITION_ERROR;
    atomic_fetch_add(&a->calls, 1);
    if (!MLLP_MESSAGE_INFO_HAS(info, tls_certificate_len) || info->control_id == NULL) {
        atomic_fetch_add(&a->bad_info, 1);
        return MLLP_DISPOSITION_ERROR;
    }
    if (info->tls_subject_len == strlen(client_subject) && info->tls_subject != NULL &&
        memcmp(info->tls_subject, client_subject, info->tls_subject_len) == 0 &&
        info->tls_certificate_len == client_der_len && info->tls_certificate != NULL &&
        memcmp(info->tls_certificate, client_der, client_der_len) == 0) {
        atomic_fetch_add(&a->subject_ok, 1);
    }
    return MLLP_DISPOSITION_ACCEPT;
}

/* Builds a listener answering with `on_message` for `a` on a free loopback port (set in
 * `port`), frees the builder and starts it on a thread. */
static mllp_listener *start(mllp_listener_builder *b, app *a, uint16_t *port) {
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, a, &l), MLLP_OK);
    mllp_listener_builder_free(b);
    CHECK_RC(mllp_listener_local_port(l, port), MLLP_OK);
    CHECK_RC(mllp_listener_start(l), MLLP_OK);
    return l;
}

/* --- Always: the setters refuse what they cannot use. ------------------------------------- */

static void setter_errors(void) {
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    REFUSES(mllp_listener_builder_set_max_handshakes(b, 0), MLLP_CONFIG, "at least 1");
    CHECK_RC(mllp_listener_builder_set_max_handshakes(NULL, 8), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_max_handshakes(b, 1), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_max_handshakes(b, UINT32_MAX), MLLP_OK);
    REFUSES(mllp_listener_builder_set_tls_min_version(b, 11), MLLP_CONFIG, "not 11");
    REFUSES(mllp_listener_builder_set_tls_min_version(b, 14), MLLP_CONFIG, "not 14");
    CHECK_RC(mllp_listener_builder_set_tls_min_version(NULL, 13), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_tls_min_version(b, 13), MLLP_OK);
    REFUSES(mllp_listener_builder_set_tls_client_ca(b, NULL), MLLP_NULL_ARGUMENT, "client CA");
    REFUSES(mllp_listener_builder_set_tls_client_ca(b, "no-such-ca.pem"), MLLP_IO,
            "no-such-ca.pem");

    /* Without a client CA, these settings build a plain TCP listener, which has no TLS to
     * reload. */
    app a = {0};
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_OK);
    REFUSES(mllp_listener_reload_tls_pem(l, cert("server.pem"), cert("server.key"), NULL),
            MLLP_INVALID_STATE, "plain TCP");
    CHECK_RC(mllp_listener_reload_tls_pem(NULL, cert("server.pem"), cert("server.key"), NULL),
             MLLP_NULL_ARGUMENT);
    mllp_listener_free(l);

    /* A client CA needs a server identity. */
    CHECK_RC(mllp_listener_builder_set_tls_client_ca(b, cert("ca.pem")), MLLP_OK);
    l = NULL;
    REFUSES(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_CONFIG,
            "client CA needs a TLS identity");
    CHECK(l == NULL);
    mllp_listener_builder_free(b);

    mllp_sender_builder *s = NULL;
    CHECK_RC(mllp_sender_builder_new(&s), MLLP_OK);
    REFUSES(mllp_sender_builder_set_tls_min_version(s, 10), MLLP_CONFIG, "not 10");
    CHECK_RC(mllp_sender_builder_set_tls_min_version(NULL, 13), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_tls_min_version(s, 13), MLLP_OK);
    mllp_sender_builder_free(s);
    CHECK(atomic_load(&a.calls) == 0);
    printf("setters: max handshakes 0, TLS versions 10/11/14, a missing client CA file, a "
           "client CA without an identity and a reload of a plain listener refused\n");
}

/* --- The pending-handshake limit. ---------------------------------------------------------- */

/* A blocking TCP connection to 127.0.0.1:port that waits at most 30 s for data. */
static int tcp_connect(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    struct timeval tv = {.tv_sec = 30, .tv_usec = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    return fd;
}

/* A TLS listener allowing one pending handshake, with a handshake timeout far beyond the
 * wait below: two connections that send nothing. The listener accepts them in order, so when
 * the second arrives the first is pending, still in its handshake, and is closed for it. With
 * the default limit (64) the first would stay open for the whole handshake timeout and the
 * read below would time out. */
static void pending_handshake_limit(void) {
    app a = {0};
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pem(b, cert("server.pem"), cert("server.key")),
             MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_max_handshakes(b, 1), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_handshake_timeout_ms(b, 600000), MLLP_OK);
    uint16_t port = 0;
    mllp_listener *l = start(b, &a, &port);

    int first = tcp_connect(port);
    int second = tcp_connect(port);
    char byte;
    ssize_t n = recv(first, &byte, 1, 0);
    if (!(n == 0 || (n < 0 && errno == ECONNRESET))) {
        fprintf(stderr, "the first stalled connection was not closed: recv returned %zd (%s)\n",
                n, n < 0 ? strerror(errno) : "data");
        exit(1);
    }
    /* Closing the second ends its handshake, so that stopping need not wait for it. */
    CHECK(close(second) == 0);
    CHECK(close(first) == 0);
    /* Stopping joins the listener's threads: the counter is final. */
    CHECK_RC(mllp_listener_stop(l), MLLP_OK);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_HANDSHAKES_DROPPED) == 1);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_CONNECTIONS_TOTAL) == 0);
    CHECK(atomic_load(&a.calls) == 0);
    mllp_listener_free(l);
    printf("max handshakes 1: the first of two stalled handshakes closed for the second\n");
}

/* --- A sender that wants TLS 1.3 and a server limited to TLS 1.2. -------------------------- */

/* Sends `id` with a sender built by `b` to `address` once; returns the result and the number
 * of frames written, with the last-error text in `text` (empty on success). */
static mllp_result send_once(const mllp_sender_builder *b, const char *address, const char *id,
                             uint64_t *frames, char *text, size_t text_cap) {
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(b, address, &s), MLLP_OK);
    char msg[512];
    uint8_t ack[1024];
    size_t len = build_msg(msg, sizeof msg, id), ack_len = 0, needed = 0;
    mllp_ack_code code = 99;
    mllp_result rc = mllp_sender_send(s, (const uint8_t *)msg, len, ack, sizeof ack, &ack_len, &code);
    text[0] = '\0';
    if (rc != MLLP_OK) {
        mllp_last_error(text, text_cap, &needed);
        CHECK(code == MLLP_ACK_NONE && ack_len == 0);
    } else {
        char msa[64];
        snprintf(msa, sizeof msa, "MSA|AA|%s", id);
        CHECK(code == MLLP_ACK_AA && contains(ack, ack_len, msa));
    }
    *frames = sender_stat(s, MLLP_SENDER_STAT_FRAMES_WRITTEN);
    mllp_sender_free(s);
    return rc;
}

static void sender_min_version(const char *tls12_port) {
    char address[64], text[1024];
    snprintf(address, sizeof address, "127.0.0.1:%s", tls12_port);
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls_ca_file(b, cert("ca.pem")), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, 1, 10, 10), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_connect_timeout_ms(b, 30000), MLLP_OK);
    /* The server never answers: a sender that gets through waits this long for its ACK. */
    CHECK_RC(mllp_sender_builder_set_ack_timeout_ms(b, 500), MLLP_OK);

    /* TLS 1.3 at least: the handshake fails, nothing is written. The C API reports a failed
     * delivery by its outcome; the TLS error is in the last-error text. */
    CHECK_RC(mllp_sender_builder_set_tls_min_version(b, 13), MLLP_OK);
    uint64_t frames = 99;
    mllp_result rc = send_once(b, address, "V13", &frames, text, sizeof text);
    if (rc != MLLP_NOT_DELIVERED || frames != 0 || strstr(text, "TLS") == NULL ||
        strstr(text, "protocol version") == NULL) {
        fprintf(stderr, "TLS 1.3 at least against a TLS 1.2 server: %s, %llu frames: %s\n",
                mllp_result_str(rc), (unsigned long long)frames, text);
        exit(1);
    }
    printf("sender with TLS 1.3 at least, server with TLS 1.2 only: %s: %s\n",
           mllp_result_str(rc), text);

    /* TLS 1.2 allowed: the same server completes the handshake and gets the frame (it sends no
     * ACK). */
    CHECK_RC(mllp_sender_builder_set_tls_min_version(b, 12), MLLP_OK);
    rc = send_once(b, address, "V12", &frames, text, sizeof text);
    if (rc != MLLP_UNCONFIRMED || frames != 1) {
        fprintf(stderr, "TLS 1.2 allowed against a TLS 1.2 server: %s, %llu frames: %s\n",
                mllp_result_str(rc), (unsigned long long)frames, text);
        exit(1);
    }
    printf("sender with TLS 1.2 allowed: the frame was written (%s)\n", mllp_result_str(rc));
    mllp_sender_builder_free(b);
}

/* --- A listener that requires client certificates. ---------------------------------------- */

static char auth_address[64];

/* A sender to the client-certificate listener trusting the test CA, presenting `identity`
 * (NULL: none), one attempt. */
static mllp_sender_builder *auth_sender(const char *identity) {
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls_ca_file(b, cert("ca.pem")), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, 1, 10, 10), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_connect_timeout_ms(b, 30000), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_ack_timeout_ms(b, 30000), MLLP_OK);
    if (identity != NULL) {
        char pem[64], key[64];
        snprintf(pem, sizeof pem, "%s.pem", identity);
        snprintf(key, sizeof key, "%s.key", identity);
        CHECK_RC(mllp_sender_builder_set_tls_identity_pem(b, cert(pem), cert(key)), MLLP_OK);
    }
    return b;
}

/* A sender with `identity` is served: AA, and the callback saw one more message. */
static void served(app *a, const char *identity, const char *id) {
    mllp_sender_builder *b = auth_sender(identity);
    int calls = atomic_load(&a->calls);
    uint64_t frames = 0;
    char text[1024];
    mllp_result rc = send_once(b, auth_address, id, &frames, text, sizeof text);
    if (rc != MLLP_OK) {
        fprintf(stderr, "%s with %s: %s: %s\n", id, identity, mllp_result_str(rc), text);
        exit(1);
    }
    CHECK(atomic_load(&a->calls) == calls + 1);
    mllp_sender_builder_free(b);
    printf("%s: a client with %s.pem is served: AA\n", id, identity);
}

/* A sender with `identity` (NULL: none) is refused: its message does not reach the callback
 * (and the listener counts a failed handshake: see the STATS line). Under TLS 1.3 the server
 * checks the client's certificate after the client has finished its part of the handshake, so
 * the client has written its frame when the refusal (an alert, or a reset) arrives: the sender
 * reports MLLP_UNCONFIRMED, as for any written frame without an ACK; never MLLP_OK. */
static void refused(app *a, const char *identity, const char *id) {
    mllp_sender_builder *b = auth_sender(identity);
    int calls = atomic_load(&a->calls);
    uint64_t frames = 0;
    char text[1024];
    mllp_result rc = send_once(b, auth_address, id, &frames, text, sizeof text);
    const char *who = identity ? identity : "no certificate";
    if (rc != MLLP_NOT_DELIVERED && rc != MLLP_UNCONFIRMED) {
        fprintf(stderr, "%s with %s: %s: %s\n", id, who, mllp_result_str(rc), text);
        exit(1);
    }
    CHECK(atomic_load(&a->calls) == calls);
    mllp_sender_builder_free(b);
    printf("%s: a client with %s is refused: %s: %s\n", id, who, mllp_result_str(rc), text);
}

/* Reads the whole of `path` into `buf` (capacity `cap`); returns its length. */
static size_t read_file(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(1);
    }
    size_t n = fread(buf, 1, cap, f);
    CHECK(n > 0 && n < cap && feof(f));
    fclose(f);
    return n;
}

static void client_auth_listener(void) {
    client_der_len = read_file(made("client.der"), client_der, sizeof client_der);
    app a = {0};
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pem(b, cert("server.pem"), cert("server.key")),
             MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_client_ca(b, cert("ca.pem")), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_min_version(b, 13), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_max_handshakes(b, 8), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_ack_policy(b, MLLP_ACK_POLICY_ORIGINAL), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_shutdown_grace_ms(b, 5000), MLLP_OK);
    uint16_t port = 0;
    mllp_listener *l = start(b, &a, &port);
    snprintf(auth_address, sizeof auth_address, "127.0.0.1:%u", (unsigned)port);

    served(&a, "client", "AUTH1");
    CHECK(atomic_load(&a.subject_ok) == 1);
    refused(&a, NULL, "NOCERT1");
    refused(&a, "untrusted-client", "OTHERCA1");
    refused(&a, "expired-client", "EXPIRED1");

    printf("CLIENT_AUTH_PORT %u\n", (unsigned)port);
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "stop", 4) == 0) break;
        if (strncmp(line, "reload-bad", 10) == 0) {
            /* Each failed reload changes nothing (the Rust side checks the certificate). */
            REFUSES(mllp_listener_reload_tls_pem(l, made("no-such.pem"), made("reloaded.key"),
                                                 cert("ca.pem")),
                    MLLP_IO, "no-such.pem");
            REFUSES(mllp_listener_reload_tls_pem(l, made("reloaded.pem"), cert("server.key"),
                                                 cert("ca.pem")),
                    MLLP_TLS, "key");
            REFUSES(mllp_listener_reload_tls_pem(l, made("reloaded.pem"), made("reloaded.key"),
                                                 made("no-such-ca.pem")),
                    MLLP_IO, "no-such-ca.pem");
            CHECK_RC(mllp_listener_reload_tls_pem(l, NULL, made("reloaded.key"), NULL),
                     MLLP_NULL_ARGUMENT);
            printf("RELOAD_BAD_DONE\n");
        } else if (strncmp(line, "reload", 6) == 0) {
            CHECK_RC(mllp_listener_reload_tls_pem(l, made("reloaded.pem"), made("reloaded.key"),
                                                  cert("ca.pem")),
                     MLLP_OK);
            /* The new certificate chains to the test CA too, and the client CA still holds. */
            served(&a, "client", "AFTER1");
            refused(&a, "untrusted-client", "OTHERCA2");
            printf("RELOADED\n");
        } else {
            fprintf(stderr, "unknown command: %s", line);
            exit(1);
        }
        fflush(stdout);
    }
    CHECK_RC(mllp_listener_stop(l), MLLP_OK);
    unsigned long long tls_failures = listener_stat(l, MLLP_LISTENER_STAT_TLS_FAILURES),
                       aa = listener_stat(l, MLLP_LISTENER_STAT_ACKS_AA);
    mllp_listener_free(l);
    printf("STATS calls=%d subject_ok=%d bad_info=%d tls_failures=%llu aa=%llu\n",
           atomic_load(&a.calls), atomic_load(&a.subject_ok), atomic_load(&a.bad_info),
           tls_failures, aa);
    fflush(stdout);
}

int main(void) {
    const char *dir = getenv("MLLP_TEST_CERTS");
    if (!dir) {
        fprintf(stderr, "MLLP_TEST_CERTS must be set (run by tests/c_api.rs)\n");
        return 1;
    }
    CHECK(strlen(dir) < sizeof certs - 64);
    snprintf(certs, sizeof certs, "%s", dir);
    setter_errors();
    if (!tls_built()) {
        printf("this build has no TLS support (feature `tls`): skipping the TLS exchanges\n");
        return 0;
    }
    const char *made_dir = getenv("MLLP_TEST_SCRATCH");
    const char *tls12_port = getenv("MLLP_TEST_TLS12_PORT");
    if (!made_dir || !tls12_port) {
        fprintf(stderr, "MLLP_TEST_SCRATCH and MLLP_TEST_TLS12_PORT must be set (run by "
                        "tests/c_api.rs)\n");
        return 1;
    }
    CHECK(strlen(made_dir) < sizeof scratch - 64);
    snprintf(scratch, sizeof scratch, "%s", made_dir);
    pending_handshake_limit();
    sender_min_version(tls12_port);
    client_auth_listener();
    return 0;
}
