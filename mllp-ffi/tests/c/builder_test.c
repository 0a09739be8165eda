/* Every setter of the framing, sender and listener builders refuses bad values: the right code,
 * a last-error text, and the setting left as it was (a builder that failed every setter still
 * builds with the defaults). NULL handles are refused by every setter. */
#include "check.h"

static void framing(void) {
    mllp_framing *f = new_framing();
    static const uint8_t vt[] = {0x0b}, end[] = {0x1c, 0x0d}, nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    REFUSES(mllp_framing_set_sequences(f, vt, 0, end, 2), MLLP_CONFIG, "start sequence");
    REFUSES(mllp_framing_set_sequences(f, vt, 1, nine, 9), MLLP_CONFIG, "end sequence");
    REFUSES(mllp_framing_set_sequences(f, vt, 1, end, (size_t)-1), MLLP_CONFIG, "end sequence");
    REFUSES(mllp_framing_set_sequences(f, vt, 1, vt, 1), MLLP_CONFIG, "");
    REFUSES(mllp_framing_set_sequences(f, NULL, 1, end, 2), MLLP_CONFIG, "NULL");
    REFUSES(mllp_framing_set_max_message_size(f, 0), MLLP_CONFIG, "");
    REFUSES(mllp_framing_set_lenient_end(f, 2), MLLP_INVALID_ARGUMENT, "0 or 1");
    REFUSES(mllp_framing_set_start_in_frame(f, 7), MLLP_INVALID_ARGUMENT, "not 7");
    REFUSES(mllp_framing_set_lenient_end(NULL, 1), MLLP_NULL_ARGUMENT, "mllp_framing_set_lenient_end");
    REFUSES(mllp_framing_set_max_message_size(NULL, 1), MLLP_NULL_ARGUMENT, "");
    REFUSES(mllp_framing_set_start_in_frame(NULL, 0), MLLP_NULL_ARGUMENT, "");
    REFUSES(mllp_framing_set_sequences(NULL, vt, 1, end, 2), MLLP_NULL_ARGUMENT, "");
    /* Still the defaults: a frame is 0x0B payload 0x1C 0x0D. */
    uint8_t out[8];
    size_t len = 0;
    CHECK_RC(mllp_encode_frame(f, (const uint8_t *)"AB", 2, out, sizeof out, &len), MLLP_OK);
    CHECK(len == 5 && memcmp(out, "\x0b" "AB\x1c\r", 5) == 0);
    mllp_framing_free(f);
}

static void sender(void) {
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    REFUSES(mllp_sender_builder_set_connect_timeout_ms(b, 0), MLLP_CONFIG, "connect timeout");
    REFUSES(mllp_sender_builder_set_ack_timeout_ms(b, 0), MLLP_CONFIG, "ACK timeout");
    REFUSES(mllp_sender_builder_set_write_timeout_ms(b, 0), MLLP_CONFIG, "write timeout");
    REFUSES(mllp_sender_builder_set_retry(b, 3, 1000, 10), MLLP_CONFIG, "backoff");
    REFUSES(mllp_sender_builder_set_retry_backoff(b, 0.5, 0.5), MLLP_CONFIG, "factor");
    REFUSES(mllp_sender_builder_set_retry_backoff(b, 2.0, 1.5), MLLP_CONFIG, "jitter");
    REFUSES(mllp_sender_builder_set_retry_backoff(b, 0.0 / 0.0, 0.5), MLLP_CONFIG, "factor");
    REFUSES(mllp_sender_builder_set_framing(b, NULL), MLLP_NULL_ARGUMENT, "");
    REFUSES(mllp_sender_builder_set_charset(b, "klingon"), MLLP_CHARSET, "klingon");
    REFUSES(mllp_sender_builder_set_charset(b, "\xff"), MLLP_INVALID_ARGUMENT, "UTF-8");
    REFUSES(mllp_sender_builder_set_nodelay(b, 2), MLLP_INVALID_ARGUMENT, "nodelay");
    REFUSES(mllp_sender_builder_set_mllp2(b, -1), MLLP_INVALID_ARGUMENT, "mllp2");
    REFUSES(mllp_sender_builder_set_resend_on_reject(b, 9), MLLP_INVALID_ARGUMENT, "resend");
    REFUSES(mllp_sender_builder_set_tls(b, 3), MLLP_INVALID_ARGUMENT, "tls");
    REFUSES(mllp_sender_builder_set_tls_ca_file(b, NULL), MLLP_NULL_ARGUMENT, "CA file");
    REFUSES(mllp_sender_builder_set_tls_ca_file(b, "no-such-ca.pem"), MLLP_IO, "no-such-ca.pem");
    REFUSES(mllp_sender_builder_set_tls_server_name(b, NULL), MLLP_NULL_ARGUMENT, "server name");
    REFUSES(mllp_sender_builder_set_tls_server_name(b, ""), MLLP_CONFIG, "empty");
    REFUSES(mllp_sender_builder_set_tls_identity_pem(b, NULL, "k"), MLLP_NULL_ARGUMENT, "certificate");
    REFUSES(mllp_sender_builder_set_tls_identity_pem(b, "no-such.pem", "no-such.key"), MLLP_IO,
            "no-such");
    REFUSES(mllp_sender_builder_set_tls_identity_pkcs12(b, NULL, NULL), MLLP_NULL_ARGUMENT,
            "PKCS#12");
    REFUSES(mllp_sender_builder_set_tls_identity_pkcs12(b, "x.p12", "\xff"), MLLP_INVALID_ARGUMENT,
            "password");
    REFUSES(mllp_sender_builder_set_tls_danger_accept_invalid_certs(b, 2), MLLP_INVALID_ARGUMENT,
            "danger");
    /* NULL builders. */
    REFUSES(mllp_sender_builder_set_connect_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT,
            "mllp_sender_builder_set_connect_timeout_ms");
    CHECK_RC(mllp_sender_builder_set_ack_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_write_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_total_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_retry(NULL, 1, 1, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_retry_backoff(NULL, 2.0, 0.5), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_charset(NULL, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_nodelay(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_mllp2(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_resend_on_reject(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_tls(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_tls_server_name(NULL, "x"), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_sender_builder_set_tls_danger_accept_invalid_certs(NULL, 0), MLLP_NULL_ARGUMENT);
    /* An address that is not host:port is refused where it is given, and no sender made. */
    mllp_sender *s = (mllp_sender *)b;
    REFUSES(mllp_sender_builder_build(b, "[::1", &s), MLLP_CONFIG, "[::1");
    CHECK(s == NULL);
    REFUSES(mllp_sender_builder_build(b, "[::1:2575", &s), MLLP_CONFIG, "bracket");
    REFUSES(mllp_sender_builder_build(b, "::1:2575", &s), MLLP_CONFIG, "bracket");
    REFUSES(mllp_sender_builder_build(b, "[localhost]:2575", &s), MLLP_CONFIG, "IPv6");
    CHECK_RC(mllp_sender_builder_build(b, "[::1]:2575", &s), MLLP_OK);
    mllp_sender_free(s);
    s = NULL;
    /* Every setting as it was: plain TCP, so this builds (nothing connects yet). */
    CHECK_RC(mllp_sender_builder_build(b, "127.0.0.1:9", &s), MLLP_OK);
    mllp_sender_free(s);
    mllp_sender_builder_free(b);
}

static void listener(void) {
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    REFUSES(mllp_listener_builder_set_framing(b, NULL), MLLP_NULL_ARGUMENT, "");
    REFUSES(mllp_listener_builder_set_charset(b, "klingon"), MLLP_CHARSET, "klingon");
    REFUSES(mllp_listener_builder_set_detect_msh18(b, 2), MLLP_INVALID_ARGUMENT, "detect_msh18");
    REFUSES(mllp_listener_builder_set_reject_malformed(b, 2), MLLP_INVALID_ARGUMENT, "reject");
    REFUSES(mllp_listener_builder_set_max_connections(b, 0), MLLP_CONFIG, "at least 1");
    REFUSES(mllp_listener_builder_set_backlog_overflow(b, 2), MLLP_INVALID_ARGUMENT, "backlog");
    REFUSES(mllp_listener_builder_set_replace_idle(b, 2), MLLP_INVALID_ARGUMENT, "replace_idle");
    REFUSES(mllp_listener_builder_set_handshake_timeout_ms(b, 0), MLLP_CONFIG, "handshake");
    REFUSES(mllp_listener_builder_set_ack_policy(b, 9), MLLP_INVALID_ARGUMENT, "not 9");
    REFUSES(mllp_listener_builder_set_stack_size(b, MLLP_LISTENER_MIN_STACK_SIZE - 1), MLLP_CONFIG,
            "stack size");
    /* A stack no thread can get would drop every connection: refused here, not then. */
    REFUSES(mllp_listener_builder_set_stack_size(b, SIZE_MAX / 2), MLLP_CONFIG, "at most");
    REFUSES(mllp_listener_builder_set_stack_size(b, MLLP_LISTENER_MAX_STACK_SIZE + 1), MLLP_CONFIG,
            "stack size");
    REFUSES(mllp_listener_builder_set_tls_identity_pem(b, "server.pem", NULL), MLLP_NULL_ARGUMENT,
            "key file");
    REFUSES(mllp_listener_builder_set_tls_identity_pkcs12(b, "no-such.p12", "test"), MLLP_IO,
            "no-such.p12");
    /* Timeouts where 0 means "none" take any value. */
    CHECK_RC(mllp_listener_builder_set_frame_timeout_ms(b, 0), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_idle_timeout_ms(b, 0), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_write_timeout_ms(b, 0), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_evict_after_ms(b, 0), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_shutdown_grace_ms(b, 0), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_stack_size(b, MLLP_LISTENER_MIN_STACK_SIZE), MLLP_OK);
    CHECK_RC(mllp_listener_builder_set_stack_size(b, MLLP_LISTENER_MAX_STACK_SIZE), MLLP_OK);
    /* NULL builders. */
    REFUSES(mllp_listener_builder_set_max_connections(NULL, 1), MLLP_NULL_ARGUMENT,
            "mllp_listener_builder_set_max_connections");
    CHECK_RC(mllp_listener_builder_set_charset(NULL, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_detect_msh18(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_reject_malformed(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_backlog_overflow(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_replace_idle(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_evict_after_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_frame_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_idle_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_write_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_handshake_timeout_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_shutdown_grace_ms(NULL, 1), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_ack_policy(NULL, 0), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_listener_builder_set_stack_size(NULL, 1 << 20), MLLP_NULL_ARGUMENT);
    mllp_listener_builder_free(b);
}

int main(void) {
    framing();
    sender();
    listener();
    printf("builder_test: every setter refuses bad values\n");
    return 0;
}
