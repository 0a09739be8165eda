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

/* The text of the last failed _new on this thread. */
static const char *new_error(void) {
    static char text[512];
    size_t needed = 0;
    mllp_result rc = mllp_new_error(text, sizeof text, &needed);
    CHECK(rc == MLLP_OK || rc == MLLP_BUFFER_TOO_SMALL);
    return text;
}

static mllp_disposition on_message(void *userdata, const mllp_message_info *info,
                                   mllp_response *response);

/* Identity settings refused before any file is read, with or without TLS support. */
static void identity_config_errors(void) {
    mllp_sender_options so;
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_options_init(&so), MLLP_OK);
    CHECK(so.tls_pkcs12_file == NULL && so.tls_pkcs12_password == NULL);
    so.tls = 1;
    so.tls_cert_file = "client.pem";
    so.tls_key_file = "client.key";
    so.tls_pkcs12_file = "server.p12";
    CHECK_RC(mllp_sender_new("127.0.0.1:9", &so, &s), MLLP_CONFIG);
    CHECK(s == NULL && strstr(new_error(), "tls_pkcs12_file cannot be combined") != NULL);
    so.tls_cert_file = NULL;
    CHECK_RC(mllp_sender_new("127.0.0.1:9", &so, &s), MLLP_CONFIG);
    CHECK(strstr(new_error(), "cannot be combined") != NULL);
    so.tls_key_file = NULL;
    so.tls_pkcs12_file = NULL;
    so.tls_pkcs12_password = "test";
    CHECK_RC(mllp_sender_new("127.0.0.1:9", &so, &s), MLLP_CONFIG);
    CHECK(strstr(new_error(), "tls_pkcs12_password") != NULL);
    /* A PKCS#12 identity without tls is refused like every TLS field. */
    CHECK_RC(mllp_sender_options_init(&so), MLLP_OK);
    so.tls_pkcs12_file = "server.p12";
    CHECK_RC(mllp_sender_new("127.0.0.1:9", &so, &s), MLLP_CONFIG);
    CHECK(strstr(new_error(), "tls is 0") != NULL);

    mllp_listener_options lo;
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_options_init(&lo), MLLP_OK);
    CHECK(lo.tls_pkcs12_file == NULL && lo.tls_pkcs12_password == NULL);
    lo.tls_cert_file = "server.pem";
    lo.tls_key_file = "server.key";
    lo.tls_pkcs12_file = "server.p12";
    lo.tls_pkcs12_password = "test";
    CHECK_RC(mllp_listener_new("127.0.0.1:0", &lo, on_message, NULL, &l), MLLP_CONFIG);
    CHECK(l == NULL && strstr(new_error(), "tls_pkcs12_file cannot be combined") != NULL);
    CHECK_RC(mllp_listener_options_init(&lo), MLLP_OK);
    lo.tls_pkcs12_password = "test";
    CHECK_RC(mllp_listener_new("127.0.0.1:0", &lo, on_message, NULL, &l), MLLP_CONFIG);
    CHECK(strstr(new_error(), "tls_pkcs12_password") != NULL);
    printf("identity settings: PEM and PKCS#12 together refused\n");
}

/* Whether this build has TLS: a TLS sender can be created. */
static int tls_built(void) {
    mllp_sender_options o;
    CHECK_RC(mllp_sender_options_init(&o), MLLP_OK);
    o.tls = 1;
    mllp_sender *s = NULL;
    mllp_result rc = mllp_sender_new("127.0.0.1:9", &o, &s);
    if (rc == MLLP_OK) {
        mllp_sender_free(s);
        return 1;
    }
    CHECK_RC(rc, MLLP_CONFIG);
    CHECK(strstr(new_error(), "no TLS support") != NULL);
    return 0;
}

/* --- The C sender against the Rust TLS listener. ------------------------------------------- */

static char tls_address[64];

/* Options for a TLS sender: 3 attempts, short backoff; the caller sets the TLS fields. */
static mllp_sender_options tls_options(void) {
    mllp_sender_options o;
    CHECK_RC(mllp_sender_options_init(&o), MLLP_OK);
    o.tls = 1;
    o.max_attempts = 3;
    o.initial_backoff_ms = 10;
    o.max_backoff_ms = 50;
    return o;
}

/* Sends `id` over a sender with options `o`: expects `want` (and for MLLP_OK an AA echoing the
 * ID); for a failure, the last-error text must contain every one of `texts` (NULL-ended). */
static void send_with(const char *what, const mllp_sender_options *o, const char *id,
                      mllp_result want, const char *const *texts) {
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_new(tls_address, o, &s), MLLP_OK);
    char msg[512];
    uint8_t ack[1024];
    size_t len = build_msg(msg, sizeof msg, id), ack_len = 0;
    mllp_ack_code code = 99;
    mllp_result rc = mllp_sender_send(s, (const uint8_t *)msg, len, ack, sizeof ack, &ack_len, &code);
    char text[1024] = "";
    size_t needed = 0;
    if (rc != MLLP_OK) mllp_sender_last_error(s, text, sizeof text, &needed);
    if (rc != want) {
        fprintf(stderr, "%s: %s (%s), expected %s\n", what, mllp_result_str(rc), text,
                mllp_result_str(want));
        exit(1);
    }
    mllp_sender_stats st;
    CHECK_RC(mllp_sender_get_stats(s, &st), MLLP_OK);
    if (want == MLLP_OK) {
        char msa[64];
        snprintf(msa, sizeof msa, "MSA|AA|%s", id);
        CHECK(code == MLLP_ACK_AA && contains(ack, ack_len, msa));
        CHECK(st.acks == 1 && st.connects == 1);
        printf("%s: AA\n", what);
    } else {
        CHECK(code == MLLP_ACK_NONE && ack_len == 0);
        /* A certificate that fails verification is not tried again. */
        CHECK(st.failures == 1 && st.retries == 0 && st.frames_written == 0);
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
    mllp_sender_options o = tls_options();
    o.tls_ca_file = cert("ca.pem");
    send_with("trusting the test CA", &o, "TLS1", MLLP_OK, NULL);

    /* The default name is the host connected to; the certificate is valid for 127.0.0.1 and
     * for localhost. */
    o.tls_server_name = "localhost";
    send_with("server name localhost", &o, "TLS2", MLLP_OK, NULL);

    o = tls_options();
    static const char *const untrusted[] = {"certificate", "not signed by a trusted CA", NULL};
    send_with("system roots only", &o, "TLS3", MLLP_NOT_DELIVERED, untrusted);

    o = tls_options();
    o.tls_ca_file = cert("ca.pem");
    o.tls_server_name = "wrong.example";
    static const char *const wrong_name[] = {"certificate", "not valid for the name",
                                             "wrong.example", NULL};
    send_with("server name wrong.example", &o, "TLS4", MLLP_NOT_DELIVERED, wrong_name);

    o = tls_options();
    o.tls_danger_accept_invalid_certs = 1;
    send_with("certificate checks disabled", &o, "TLS5", MLLP_OK, NULL);
    o.tls_server_name = "wrong.example";
    send_with("certificate checks disabled, another name", &o, "TLS6", MLLP_OK, NULL);

    /* Client identities load (the listener does not ask for one, so none is sent). */
    o = tls_options();
    o.tls_ca_file = cert("ca.pem");
    o.tls_cert_file = cert("client.pem");
    o.tls_key_file = cert("client.key");
    send_with("client identity from PEM files", &o, "TLS7", MLLP_OK, NULL);
    o.tls_cert_file = NULL;
    o.tls_key_file = NULL;
    o.tls_pkcs12_file = cert("server.p12");
    o.tls_pkcs12_password = "test";
    send_with("client identity from PKCS#12", &o, "TLS8", MLLP_OK, NULL);

    /* A wrong password is found when the sender is created. */
    o.tls_pkcs12_password = "wrong";
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_new(tls_address, &o, &s), MLLP_TLS);
    CHECK(s == NULL && strstr(new_error(), "PKCS#12") != NULL);
    printf("client PKCS#12 with a wrong password: %s\n", new_error());
    o.tls_pkcs12_password = NULL;
    CHECK_RC(mllp_sender_new(tls_address, &o, &s), MLLP_TLS);
    o.tls_pkcs12_file = cert("no-such-file.p12");
    CHECK_RC(mllp_sender_new(tls_address, &o, &s), MLLP_IO);
    CHECK(strstr(new_error(), "no-such-file.p12") != NULL);
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

static mllp_listener *tls_listener(mllp_listener_options *o, app *a, uint16_t *port) {
    o->ack_policy = MLLP_ACK_POLICY_ORIGINAL;
    o->shutdown_grace_ms = 5000;
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_new("127.0.0.1:0", o, on_message, a, &l), MLLP_OK);
    CHECK_RC(mllp_listener_local_port(l, port), MLLP_OK);
    CHECK_RC(mllp_listener_start(l), MLLP_OK);
    return l;
}

static void tls_listeners(void) {
    app a = {0};
    mllp_listener_options o;

    /* A wrong PKCS#12 password is found when the listener is created. */
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_options_init(&o), MLLP_OK);
    o.tls_pkcs12_file = cert("server.p12");
    o.tls_pkcs12_password = "wrong";
    CHECK_RC(mllp_listener_new("127.0.0.1:0", &o, on_message, &a, &l), MLLP_TLS);
    CHECK(l == NULL && strstr(new_error(), "PKCS#12") != NULL);
    printf("server PKCS#12 with a wrong password: %s\n", new_error());

    uint16_t pem_port = 0, p12_port = 0;
    CHECK_RC(mllp_listener_options_init(&o), MLLP_OK);
    o.tls_cert_file = cert("server.pem");
    o.tls_key_file = cert("server.key");
    mllp_listener *pem = tls_listener(&o, &a, &pem_port);
    CHECK_RC(mllp_listener_options_init(&o), MLLP_OK);
    o.tls_pkcs12_file = cert("server.p12");
    o.tls_pkcs12_password = "test";
    mllp_listener *p12 = tls_listener(&o, &a, &p12_port);
    printf("TLS_PORTS %u %u\n", (unsigned)pem_port, (unsigned)p12_port);
    fflush(stdout);

    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (strncmp(line, "stop", 4) == 0) break;
    }
    CHECK_RC(mllp_listener_stop(pem), MLLP_OK);
    CHECK_RC(mllp_listener_stop(p12), MLLP_OK);
    mllp_listener_stats sp, s12;
    CHECK_RC(mllp_listener_get_stats(pem, &sp), MLLP_OK);
    CHECK_RC(mllp_listener_get_stats(p12, &s12), MLLP_OK);
    mllp_listener_free(pem);
    mllp_listener_free(p12);
    printf("STATS pem=%llu p12=%llu calls=%d tls_failures=%llu bad_info=%d\n",
           (unsigned long long)sp.acks_aa, (unsigned long long)s12.acks_aa,
           atomic_load(&a.calls), (unsigned long long)(sp.tls_failures + s12.tls_failures),
           atomic_load(&a.bad_info));
    fflush(stdout);
}

int main(void) {
    identity_config_errors();
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
