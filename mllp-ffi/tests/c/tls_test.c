/* TLS through the C API, run by tests/c_api.rs.
 *
 * Always: the identity settings that are configuration errors (PEM files and a PKCS#12 file
 * together, a PKCS#12 password without a file). In a build without TLS support it then prints a
 * notice and exits 0.
 *
 * With TLS: the C sender against a Rust TLS listener (port in MLLP_TEST_TLS_PORT, serving
 * tests/certs/server.pem, directory in MLLP_TEST_CERTS): trusting the test CA -> AA; system
 * roots only -> not delivered after one attempt (certificate); another server name -> not
 * delivered (host name); certificate checks disabled -> AA; client identities from PEM files and
 * from a PKCS#12 archive -> AA; a wrong PKCS#12 password -> MLLP_TLS at _new.
 * Then two C TLS listeners, one with server.pem/server.key, one with server.p12: it prints
 * "TLS_PORTS <pem> <p12>", the Rust side sends to both with TLS senders trusting the test CA,
 * writes "stop", and the program prints "STATS pem=<messages> p12=<messages> calls=<n>
 * tls_failures=<n> bad_info=<n>". The callback accepts with the text "tls <control id>". */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>

#include "check.h"

static char certs[1024];

/* The path of a file in the certificate directory, in one of 8 rotating buffers: valid until
 * 8 more calls, enough for the options of one sender or listener. */
static const char *cert(const char *name) {
    static char paths[8][1200];
    static int next = 0;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", certs, name);
    return p;
}

static size_t build_msg(char *out, size_t cap, const char *id) {
    int n = snprintf(out, cap,
                     "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101120000||ADT^A01^ADT_A01|%s|P|2.5.1\r"
                     "PID|1||12345^^^HOSP^MR||DOE^JANE\r",
                     id);
    CHECK(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static mllp_disposition on_message(void *userdata, const mllp_message_info *info,
                                   mllp_response *response);

/* TLS setters refuse what they cannot use before anything is connected, with or without TLS
 * support: NULL names, files that do not exist (read when the setter is called). */
static void identity_setter_errors(void) {
    mllp_sender_builder *sb = NULL;
    CHECK_RC(mllp_sender_builder_new(&sb), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls_identity_pem(sb, "client.pem", NULL), MLLP_NULL_ARGUMENT);
    CHECK(strstr(last_error(), "key file") != NULL);
    CHECK_RC(mllp_sender_builder_set_tls_identity_pkcs12(sb, NULL, "test"), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_tls_identity_pkcs12(sb, "no-such-file.p12", NULL), MLLP_IO);
    CHECK(strstr(last_error(), "no-such-file.p12") != NULL);
    CHECK_RC(mllp_sender_builder_set_tls_ca_file(sb, "no-such-ca.pem"), MLLP_IO);
    CHECK(strstr(last_error(), "no-such-ca.pem") != NULL);
    CHECK_RC(mllp_sender_builder_set_tls_server_name(sb, ""), MLLP_CONFIG);
    /* Nothing was set, so the builder still makes a plain TCP sender. */
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(sb, "127.0.0.1:9", &s), MLLP_OK);
    mllp_sender_free(s);
    mllp_sender_builder_free(sb);

    mllp_listener_builder *lb = NULL;
    CHECK_RC(mllp_listener_builder_new(&lb), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pem(lb, NULL, "server.key"),
             MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pem(lb, "no-such.pem", "no-such.key"),
             MLLP_IO);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pkcs12(lb, "no-such-file.p12", "test"),
             MLLP_IO);
    CHECK(strstr(last_error(), "no-such-file.p12") != NULL);
    mllp_listener_builder_free(lb);
    printf("TLS setters: NULL names and missing files refused at once\n");
}

/* --- The C sender against the Rust TLS listener. ------------------------------------------- */

static char tls_address[64];

/* A builder for a TLS sender: 3 attempts, short backoff; the caller adds the TLS settings. */
static mllp_sender_builder *tls_builder(void) {
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls(b, 1), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, 3, 10, 50), MLLP_OK);
    return b;
}

/* Sends `id` over a sender built by `b`: expects `want` (and for MLLP_OK an AA echoing the
 * ID); for a failure, the last-error text must contain every one of `texts` (NULL-ended). */
static void send_with(const char *what, const mllp_sender_builder *b, const char *id,
                      mllp_result want, const char *const *texts) {
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(b, tls_address, &s), MLLP_OK);
    char msg[512];
    uint8_t ack[1024];
    size_t len = build_msg(msg, sizeof msg, id), ack_len = 0;
    mllp_ack_code code = 99;
    mllp_result rc = mllp_sender_send(s, (const uint8_t *)msg, len, ack, sizeof ack, &ack_len, &code);
    char text[1024] = "";
    size_t needed = 0;
    if (rc != MLLP_OK) mllp_last_error(text, sizeof text, &needed);
    if (rc != want) {
        fprintf(stderr, "%s: %s (%s), expected %s\n", what, mllp_result_str(rc), text,
                mllp_result_str(want));
        exit(1);
    }
    if (want == MLLP_OK) {
        char msa[64];
        snprintf(msa, sizeof msa, "MSA|AA|%s", id);
        CHECK(code == MLLP_ACK_AA && contains(ack, ack_len, msa));
        CHECK(sender_stat(s, MLLP_SENDER_STAT_ACKS) == 1);
        CHECK(sender_stat(s, MLLP_SENDER_STAT_CONNECTS) == 1);
        printf("%s: AA\n", what);
    } else {
        CHECK(code == MLLP_ACK_NONE && ack_len == 0);
        /* A certificate that fails verification is not tried again. */
        CHECK(sender_stat(s, MLLP_SENDER_STAT_FAILURES) == 1);
        CHECK(sender_stat(s, MLLP_SENDER_STAT_RETRIES) == 0);
        CHECK(sender_stat(s, MLLP_SENDER_STAT_FRAMES_WRITTEN) == 0);
        CHECK(strstr(text, "after 1 attempt:") != NULL);
        for (; *texts; texts++) {
            if (strstr(text, *texts) == NULL) {
                fprintf(stderr, "%s: the last error does not mention \"%s\": %s\n", what, *texts,
                        text);
                exit(1);
            }
        }
        printf("%s: %s\n", what, text);
    }
    mllp_sender_free(s);
}

static void tls_sender(void) {
    mllp_sender_builder *b = tls_builder();
    CHECK_RC(mllp_sender_builder_set_tls_ca_file(b, cert("ca.pem")), MLLP_OK);
    send_with("trusting the test CA", b, "TLS1", MLLP_OK, NULL);

    /* The default name is the host connected to; the certificate is valid for 127.0.0.1 and
     * for localhost. */
    CHECK_RC(mllp_sender_builder_set_tls_server_name(b, "localhost"), MLLP_OK);
    send_with("server name localhost", b, "TLS2", MLLP_OK, NULL);
    mllp_sender_builder_free(b);

    b = tls_builder();
    static const char *const untrusted[] = {"certificate", "not signed by a trusted CA", NULL};
    send_with("system roots only", b, "TLS3", MLLP_NOT_DELIVERED, untrusted);
    mllp_sender_builder_free(b);

    b = tls_builder();
    CHECK_RC(mllp_sender_builder_set_tls_ca_file(b, cert("ca.pem")), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls_server_name(b, "wrong.example"), MLLP_OK);
    static const char *const wrong_name[] = {"certificate", "not valid for the name",
                                             "wrong.example", NULL};
    send_with("server name wrong.example", b, "TLS4", MLLP_NOT_DELIVERED, wrong_name);
    mllp_sender_builder_free(b);

    b = tls_builder();
    CHECK_RC(mllp_sender_builder_set_tls_danger_accept_invalid_certs(b, 1), MLLP_OK);
    send_with("certificate checks disabled", b, "TLS5", MLLP_OK, NULL);
    CHECK_RC(mllp_sender_builder_set_tls_server_name(b, "wrong.example"), MLLP_OK);
    send_with("certificate checks disabled, another name", b, "TLS6", MLLP_OK, NULL);
    mllp_sender_builder_free(b);

    /* Client identities load (the listener does not ask for one, so none is sent). */
    b = tls_builder();
    CHECK_RC(mllp_sender_builder_set_tls_ca_file(b, cert("ca.pem")), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_tls_identity_pem(b, cert("client.pem"), cert("client.key")),
             MLLP_OK);
    send_with("client identity from PEM files", b, "TLS7", MLLP_OK, NULL);
    /* A second identity replaces the first. */
    CHECK_RC(mllp_sender_builder_set_tls_identity_pkcs12(b, cert("server.p12"), "test"), MLLP_OK);
    send_with("client identity from PKCS#12", b, "TLS8", MLLP_OK, NULL);

    /* A wrong password is found when the sender is built. */
    CHECK_RC(mllp_sender_builder_set_tls_identity_pkcs12(b, cert("server.p12"), "wrong"),
             MLLP_OK);
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(b, tls_address, &s), MLLP_TLS);
    CHECK(s == NULL && strstr(last_error(), "PKCS#12") != NULL);
    printf("client PKCS#12 with a wrong password: %s\n", last_error());
    CHECK_RC(mllp_sender_builder_set_tls_identity_pkcs12(b, cert("server.p12"), NULL), MLLP_OK);
    CHECK_RC(mllp_sender_builder_build(b, tls_address, &s), MLLP_TLS);
    /* TLS off forgets the TLS settings: a plain sender again. */
    CHECK_RC(mllp_sender_builder_set_tls(b, 0), MLLP_OK);
    CHECK_RC(mllp_sender_builder_build(b, tls_address, &s), MLLP_OK);
    mllp_sender_free(s);
    mllp_sender_builder_free(b);
}

/* --- C TLS listeners, driven by Rust TLS senders. ------------------------------------------ */

typedef struct {
    atomic_int calls;
    atomic_int bad_info;
} app;

static mllp_disposition on_message(void *userdata, const mllp_message_info *info,
                                   mllp_response *response) {
    app *a = userdata;
    if (a == NULL) return MLLP_DISPOSITION_ERROR;
    atomic_fetch_add(&a->calls, 1);
    if (info->text == NULL || info->text_len < 8 || memcmp(info->text, "MSH|", 4) != 0 ||
        info->peer == NULL || strncmp(info->peer, "127.0.0.1:", 10) != 0 ||
        info->control_id == NULL || info->control_id_len == 0) {
        atomic_fetch_add(&a->bad_info, 1);
        return MLLP_DISPOSITION_ERROR;
    }
    char text[64];
    snprintf(text, sizeof text, "tls %.*s", (int)info->control_id_len,
             (const char *)info->control_id);
    if (mllp_response_set_text(response, text) != MLLP_OK) atomic_fetch_add(&a->bad_info, 1);
    return MLLP_DISPOSITION_ACCEPT;
}

static mllp_listener *tls_listener(mllp_listener_builder *b, app *a, uint16_t *port) {
    CHECK_RC(mllp_listener_builder_set_ack_policy(b, MLLP_ACK_POLICY_ORIGINAL), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_shutdown_grace_ms(b, 5000), MLLP_OK);
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, a, &l), MLLP_OK);
    mllp_listener_builder_free(b);
    CHECK_RC(mllp_listener_local_port(l, port), MLLP_OK);
    CHECK_RC(mllp_listener_start(l), MLLP_OK);
    return l;
}

static void tls_listeners(void) {
    app a = {0};
    mllp_listener_builder *b = NULL;

    /* A wrong PKCS#12 password is found when the listener is built. */
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pkcs12(b, cert("server.p12"), "wrong"),
             MLLP_OK);
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_TLS);
    CHECK(l == NULL && strstr(last_error(), "PKCS#12") != NULL);
    printf("server PKCS#12 with a wrong password: %s\n", last_error());
    mllp_listener_builder_free(b);

    uint16_t pem_port = 0, p12_port = 0;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pem(b, cert("server.pem"), cert("server.key")),
             MLLP_OK);
    mllp_listener *pem = tls_listener(b, &a, &pem_port);
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_tls_identity_pkcs12(b, cert("server.p12"), "test"),
             MLLP_OK);
    mllp_listener *p12 = tls_listener(b, &a, &p12_port);
    printf("TLS_PORTS %u %u\n", (unsigned)pem_port, (unsigned)p12_port);
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "stop", 4) == 0) break;
    }
    CHECK_RC(mllp_listener_stop(pem), MLLP_OK);
    CHECK_RC(mllp_listener_stop(p12), MLLP_OK);
    unsigned long long pem_aa = listener_stat(pem, MLLP_LISTENER_STAT_ACKS_AA),
                       p12_aa = listener_stat(p12, MLLP_LISTENER_STAT_ACKS_AA),
                       tls_failures = listener_stat(pem, MLLP_LISTENER_STAT_TLS_FAILURES) +
                                      listener_stat(p12, MLLP_LISTENER_STAT_TLS_FAILURES);
    mllp_listener_free(pem);
    mllp_listener_free(p12);
    printf("STATS pem=%llu p12=%llu calls=%d tls_failures=%llu bad_info=%d\n", pem_aa, p12_aa,
           atomic_load(&a.calls), tls_failures, atomic_load(&a.bad_info));
    fflush(stdout);
}

int main(void) {
    identity_setter_errors();
    if (!tls_built()) {
        printf("this build has no TLS support (feature `tls`): skipping the TLS exchanges\n");
        return 0;
    }
    const char *dir = getenv("MLLP_TEST_CERTS");
    const char *port = getenv("MLLP_TEST_TLS_PORT");
    if (!dir || !port) {
        fprintf(stderr, "MLLP_TEST_CERTS and MLLP_TEST_TLS_PORT must be set (run by "
                        "tests/c_api.rs)\n");
        return 1;
    }
    CHECK(strlen(dir) < sizeof certs - 64);
    snprintf(certs, sizeof certs, "%s", dir);
    snprintf(tls_address, sizeof tls_address, "127.0.0.1:%s", port);
    tls_sender();
    tls_listeners();
    return 0;
}
