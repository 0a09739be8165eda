/* Error paths of the C API: every NULL argument, buffers too small, bad options, codes and
 * their names, _free(NULL). */
#include "check.h"

static const mllp_result known[] = {
    MLLP_OK, MLLP_NEED_MORE, MLLP_NO_ACK, MLLP_NAK_UNPARSEABLE, MLLP_NULL_ARGUMENT,
    MLLP_INVALID_ARGUMENT, MLLP_BUFFER_TOO_SMALL, MLLP_INVALID_STATE, MLLP_PANIC, MLLP_CONFIG,
    MLLP_DECODER_FULL, MLLP_FRAME_TRUNCATED, MLLP_FRAME_OVERSIZED,
    MLLP_FRAME_PAYLOAD_CONTAINS_END, MLLP_FRAME_START_IN_FRAME, MLLP_HEADER, MLLP_NOT_AN_ACK,
    MLLP_CHARSET, MLLP_IO, MLLP_TIMEOUT, MLLP_CLOSED, MLLP_TLS, MLLP_NOT_DELIVERED,
    MLLP_UNCONFIRMED,
};

static void codes_and_version(void) {
    const char *v = mllp_version();
    CHECK(v != NULL && strncmp(v, "mllp/", 5) == 0 && strlen(v) > 5);
    /* The header's version macros are the library's version. */
    char want[64];
    snprintf(want, sizeof want, "mllp/%d.%d.%d", MLLP_VERSION_MAJOR, MLLP_VERSION_MINOR,
             MLLP_VERSION_PATCH);
    CHECK(strcmp(v, want) == 0);
    const char *unknown = mllp_result_str(999);
    CHECK(unknown != NULL && strcmp(unknown, "unknown result code") == 0);
    for (unsigned code = 0; code < 1000; code++) {
        const char *s = mllp_result_str(code);
        CHECK(s != NULL && *s != '\0');
    }
    CHECK(strcmp(mllp_result_str(0xFFFFFFFFu), "unknown result code") == 0);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *s = mllp_result_str(known[i]);
        CHECK(strcmp(s, "unknown result code") != 0);
        for (size_t j = 0; j < i; j++) CHECK(strcmp(s, mllp_result_str(known[j])) != 0);
    }
    CHECK(strstr(mllp_result_str(MLLP_BUFFER_TOO_SMALL), "too small") != NULL);
}

static void null_arguments(void) {
    uint8_t buf[64];
    size_t len = 0;
    const uint8_t *frame = NULL;
    char text[64];
    uint64_t value = 0;
    static const uint8_t msg[] = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r";

    CHECK_RC(mllp_framing_new(NULL), MLLP_NULL_ARGUMENT);
    /* Every failure says why, in the calling thread's last error text. */
    CHECK(strstr(last_error(), "mllp_framing_new") != NULL);

    CHECK_RC(mllp_encode_frame(NULL, NULL, 0, buf, sizeof buf, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_encode_frame(NULL, msg, 3, NULL, sizeof buf, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_encode_frame(NULL, msg, 3, buf, sizeof buf, NULL), MLLP_NULL_ARGUMENT);

    CHECK_RC(mllp_decoder_new(NULL, NULL), MLLP_NULL_ARGUMENT);
    mllp_decoder *dec = NULL;
    CHECK_RC(mllp_decoder_new(NULL, &dec), MLLP_OK);
    CHECK_RC(mllp_decoder_feed(NULL, msg, 3), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_feed(dec, NULL, 3), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_feed(dec, NULL, 0), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_next(NULL, &frame, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_next(dec, NULL, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_next(dec, &frame, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_finish(NULL, &frame, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_finish(dec, NULL, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_finish(dec, &frame, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_get_stat(NULL, MLLP_DECODER_STAT_FRAMES, &value), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_get_stat(dec, MLLP_DECODER_STAT_FRAMES, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_decoder_get_stat(dec, 99, &value), MLLP_INVALID_ARGUMENT);
    CHECK(value == 0 && strstr(last_error(), "99") != NULL);
    CHECK_RC(mllp_last_error(NULL, sizeof text, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_last_error(text, sizeof text, NULL), MLLP_NULL_ARGUMENT);
    /* ... which mllp_last_error's own failures leave alone. */
    CHECK(strstr(last_error(), "99") != NULL);
    CHECK_RC(mllp_ack_text(NULL, 0, text, sizeof text, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_ack_text(msg, 3, NULL, sizeof text, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_ack_text(msg, 3, text, sizeof text, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_ack_error_count(NULL, 0, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_ack_error_count(msg, 3, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_ack_error_text(NULL, 0, 0, text, sizeof text, &len), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_ack_error_text(msg, 3, 0, text, sizeof text, NULL), MLLP_NULL_ARGUMENT);
    /* The decoder still works after all that. */
    CHECK_RC(mllp_decoder_feed(dec, (const uint8_t *)"\x0bX\x1c\r", 4), MLLP_OK);
    CHECK_RC(mllp_decoder_next(dec, &frame, &len), MLLP_OK);
    CHECK(len == 1 && frame[0] == 'X');
    mllp_decoder_free(dec);

    CHECK_RC(mllp_build_ack(NULL, 0, MLLP_DISPOSITION_ACCEPT, NULL, buf, sizeof buf, &len),
             MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_build_ack(msg, sizeof msg - 1, MLLP_DISPOSITION_ACCEPT, NULL, NULL, 64, &len),
             MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_build_ack(msg, sizeof msg - 1, MLLP_DISPOSITION_ACCEPT, NULL, buf, sizeof buf,
                            NULL),
             MLLP_NULL_ARGUMENT);

    /* NULL is allowed where documented: the framing (defaults), the ACK text, a NULL buffer of
     * capacity 0 (a size query), and the log callback (logging off). */
    CHECK_RC(mllp_encode_frame(NULL, msg, 3, NULL, 0, &len), MLLP_BUFFER_TOO_SMALL);
    CHECK(len == 6);
    CHECK_RC(mllp_set_log_callback(NULL, NULL, MLLP_LOG_OFF), MLLP_OK);

    /* _free(NULL) does nothing. */
    mllp_decoder_free(NULL);
    mllp_framing_free(NULL);
    mllp_sender_builder_free(NULL);
    mllp_listener_builder_free(NULL);
}

static void buffers_too_small(void) {
    static const uint8_t payload[] = "MSH|^~\\&|A";
    size_t plen = sizeof payload - 1;
    uint8_t out[32];
    memset(out, 0xAA, sizeof out);
    size_t len = 0;
    /* One byte short: nothing written, the size needed reported. */
    CHECK_RC(mllp_encode_frame(NULL, payload, plen, out, plen + 2, &len), MLLP_BUFFER_TOO_SMALL);
    CHECK(len == plen + 3);
    for (size_t i = 0; i < sizeof out; i++) CHECK(out[i] == 0xAA);
    CHECK_RC(mllp_encode_frame(NULL, payload, plen, out, len, &len), MLLP_OK);
    CHECK(len == plen + 3 && out[0] == 0x0b && out[len - 2] == 0x1c && out[len - 1] == 0x0d);
    CHECK(out[len] == 0xAA);

    /* The last error text: size query, truncated copy, full copy. */
    mllp_framing *f = new_framing();
    CHECK_RC(mllp_framing_set_max_message_size(f, 2), MLLP_OK);
    mllp_decoder *dec = NULL;
    CHECK_RC(mllp_decoder_new(f, &dec), MLLP_OK);
    mllp_framing_free(f);
    size_t needed = 0;
    char text[256];
    CHECK_RC(mllp_decoder_feed(dec, (const uint8_t *)"\x0bTOOLONG\x1c\r", 10), MLLP_OK);
    const uint8_t *frame;
    CHECK_RC(mllp_decoder_next(dec, &frame, &len), MLLP_FRAME_OVERSIZED);
    CHECK(len == 7 && memcmp(frame, "TOOLONG", 7) == 0);
    CHECK_RC(mllp_last_error(NULL, 0, &needed), MLLP_BUFFER_TOO_SMALL);
    CHECK(needed > 10 && needed < sizeof text);
    memset(text, 'Z', sizeof text);
    CHECK_RC(mllp_last_error(text, 10, &len), MLLP_BUFFER_TOO_SMALL);
    CHECK(len == needed && text[9] == '\0' && strlen(text) == 9 && text[10] == 'Z');
    CHECK_RC(mllp_last_error(text, needed, &len), MLLP_OK);
    CHECK(strlen(text) == needed - 1);
    CHECK(strstr(text, "maximum message size of 2 bytes") != NULL);
    /* A later success leaves the text alone. */
    CHECK_RC(mllp_decoder_next(dec, &frame, &len), MLLP_NEED_MORE);
    CHECK_RC(mllp_last_error(NULL, 0, &len), MLLP_BUFFER_TOO_SMALL);
    CHECK(len == needed);
    mllp_decoder_free(dec);
}

static void bad_options(void) {
    uint8_t out[16];
    size_t len;
    /* (Every setter's bad values: builder_test.c.) A huge maximum is fine: the buffer grows
     * with the data, not with the limit. */
    mllp_framing *f = new_framing();
    CHECK_RC(mllp_framing_set_max_message_size(f, (size_t)-1), MLLP_OK);
    mllp_decoder *dec = NULL;
    CHECK_RC(mllp_decoder_new(f, &dec), MLLP_OK);
    mllp_decoder_free(dec);
    mllp_framing_free(f);

    /* A payload holding the end sequence cannot be framed. */
    CHECK_RC(mllp_encode_frame(NULL, (const uint8_t *)"A\x1c\rB", 4, out, sizeof out, &len),
             MLLP_FRAME_PAYLOAD_CONTAINS_END);
    /* Overlapping buffers are refused. */
    CHECK_RC(mllp_encode_frame(NULL, out + 2, 2, out, sizeof out, &len), MLLP_INVALID_ARGUMENT);

    /* Unknown enumeration values. */
    static const uint8_t msg[] = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r";
    CHECK_RC(mllp_build_ack(msg, sizeof msg - 1, 3, NULL, out, sizeof out, &len),
             MLLP_INVALID_ARGUMENT);
    CHECK_RC(mllp_build_ack(msg, sizeof msg - 1, 0, "\xff\xfe", out, sizeof out, &len),
             MLLP_INVALID_ARGUMENT);
    CHECK_RC(mllp_set_log_callback(NULL, NULL, 6), MLLP_INVALID_ARGUMENT);
}

int main(void) {
    codes_and_version();
    null_arguments();
    buffers_too_small();
    bad_options();
    printf("errors_test: ok\n");
    return 0;
}
