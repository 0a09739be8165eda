/* The ACK builder from C: dispositions, texts, enhanced mode, unparseable input, buffer sizes,
 * and an ACK framed, decoded and compared. With MLLP_TEST_CORPUS set, an ACK for every
 * corpus file. */
#define _POSIX_C_SOURCE 200809L
#include "corpus.h"

static const char MSG[] =
    "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|CTRL42|P|2.5.1\r"
    "PID|1||12345^^^HOSP^MR||DOE^JANE\r"
    "OBX|1|NM|GLU^Glucose||5.4|mmol/L\r";

/* Builds an ACK, first asking for the size, then into a buffer of exactly that size. */
static mllp_result build(const char *msg, size_t len, mllp_disposition d, const char *text,
                         uint8_t **out, size_t *out_len) {
    size_t needed = 0;
    mllp_result rc = mllp_build_ack((const uint8_t *)msg, len, d, text, NULL, 0, &needed);
    if (rc != MLLP_BUFFER_TOO_SMALL) {
        *out = NULL;
        *out_len = needed;
        return rc;
    }
    CHECK(needed > 0);
    *out = malloc(needed);
    CHECK(*out != NULL);
    /* One byte short still fails and reports the same size. */
    size_t again = 0;
    CHECK_RC(mllp_build_ack((const uint8_t *)msg, len, d, text, *out, needed - 1, &again),
             MLLP_BUFFER_TOO_SMALL);
    CHECK(again == needed);
    rc = mllp_build_ack((const uint8_t *)msg, len, d, text, *out, needed, out_len);
    CHECK(*out_len == needed);
    return rc;
}

static void dispositions(void) {
    static const struct {
        mllp_disposition d;
        const char *msa;
        const char *err;
    } cases[] = {
        {MLLP_DISPOSITION_ACCEPT, "\rMSA|AA|CTRL42|all good\r", NULL},
        {MLLP_DISPOSITION_ERROR, "\rMSA|AE|CTRL42|all good\r", "\rERR|||207^"},
        {MLLP_DISPOSITION_REJECT, "\rMSA|AR|CTRL42|all good\r", "\rERR|||200^"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *ack;
        size_t len;
        CHECK_RC(build(MSG, sizeof MSG - 1, cases[i].d, "all good", &ack, &len), MLLP_OK);
        /* Sender and receiver swapped, trigger mirrored, version echoed. */
        CHECK(len > 4 && memcmp(ack, "MSH|^~\\&|EHR|HOSP|LAB|HOSP|", 27) == 0);
        CHECK(contains(ack, len, "|ACK^R01^ACK|"));
        CHECK(contains(ack, len, "|P|2.5.1\r"));
        CHECK(contains(ack, len, cases[i].msa));
        if (cases[i].err) {
            CHECK(contains(ack, len, cases[i].err));
        } else {
            CHECK(!contains(ack, len, "\rERR|"));
        }
        CHECK(ack[len - 1] == '\r');
        free(ack);
    }
    /* No text: MSA has two fields. Delimiters in a text are escaped. */
    uint8_t *ack;
    size_t len;
    CHECK_RC(build(MSG, sizeof MSG - 1, MLLP_DISPOSITION_ACCEPT, NULL, &ack, &len), MLLP_OK);
    CHECK(contains(ack, len, "\rMSA|AA|CTRL42\r"));
    free(ack);
    CHECK_RC(build(MSG, sizeof MSG - 1, MLLP_DISPOSITION_ERROR, "bad | field ^ here", &ack, &len),
             MLLP_OK);
    CHECK(contains(ack, len, "|bad \\F\\ field \\S\\ here"));
    /* Reading it back: MSA-3 and the ERR list, unescaped. */
    char text[64];
    size_t needed = 0, count = 0;
    CHECK_RC(mllp_ack_text(ack, len, text, sizeof text, &needed), MLLP_OK);
    CHECK(strcmp(text, "bad | field ^ here") == 0 && needed == strlen(text) + 1);
    CHECK_RC(mllp_ack_text(ack, len, NULL, 0, &needed), MLLP_BUFFER_TOO_SMALL);
    CHECK(needed == strlen(text) + 1);
    CHECK_RC(mllp_ack_error_count(ack, len, &count), MLLP_OK);
    CHECK(count == 1);
    CHECK_RC(mllp_ack_error_text(ack, len, 0, text, sizeof text, &needed), MLLP_OK);
    CHECK(strcmp(text, "bad | field ^ here") == 0);
    CHECK_RC(mllp_ack_error_text(ack, len, 1, text, sizeof text, &needed), MLLP_INVALID_ARGUMENT);
    CHECK(strstr(last_error(), "1 ERR segments") != NULL);
    free(ack);
    /* An accept has no ERR segment; a commit block has no text. */
    CHECK_RC(build(MSG, sizeof MSG - 1, MLLP_DISPOSITION_ACCEPT, NULL, &ack, &len), MLLP_OK);
    CHECK_RC(mllp_ack_error_count(ack, len, &count), MLLP_OK);
    CHECK(count == 0);
    free(ack);
    static const uint8_t commit[] = {0x06};
    CHECK_RC(mllp_ack_text(commit, 1, text, sizeof text, &needed), MLLP_OK);
    CHECK(needed == 1 && text[0] == '\0');
    /* A message that is not an acknowledgement. */
    CHECK_RC(mllp_ack_text((const uint8_t *)MSG, sizeof MSG - 1, text, sizeof text, &needed),
             MLLP_NOT_AN_ACK);
}

static void enhanced_mode(void) {
    /* MSH-15 = ER: acknowledge errors only; MSH-16 = NE. */
    static const char msg[] = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|9|P|2.5|||ER|NE\r";
    uint8_t out[512];
    size_t len = 99;
    CHECK_RC(mllp_build_ack((const uint8_t *)msg, sizeof msg - 1, MLLP_DISPOSITION_ACCEPT, NULL,
                            out, sizeof out, &len),
             MLLP_NO_ACK);
    CHECK(len == 0);
    CHECK_RC(mllp_build_ack((const uint8_t *)msg, sizeof msg - 1, MLLP_DISPOSITION_REJECT, NULL,
                            out, sizeof out, &len),
             MLLP_OK);
    CHECK(contains(out, len, "\rMSA|CR|9\r"));
}

static void unparseable(void) {
    static const char *garbage[] = {"", "hello", "MSH", "MSHA^~\\&|", "PID|1\rMSH|^~\\&|A\r",
                                    "MSH|^|x|"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        uint8_t *ack;
        size_t len;
        /* `garbage[i]` may be empty: pass a valid pointer with length 0. */
        CHECK_RC(build(garbage[i], strlen(garbage[i]), MLLP_DISPOSITION_ACCEPT, "ignored", &ack,
                       &len),
                 MLLP_NAK_UNPARSEABLE);
        CHECK(memcmp(ack, "MSH|^~\\&|", 9) == 0);
        CHECK(contains(ack, len, "\rMSA|AR||"));
        CHECK(contains(ack, len, "\rERR|||100^"));
        CHECK(!contains(ack, len, "ignored"));
        free(ack);
    }
    /* Bytes that are not even text. */
    uint8_t bin[300];
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)(i * 7 + 3);
    uint8_t out[1024];
    size_t len;
    CHECK_RC(mllp_build_ack(bin, sizeof bin, MLLP_DISPOSITION_ACCEPT, NULL, out, sizeof out, &len),
             MLLP_NAK_UNPARSEABLE);
    CHECK(contains(out, len, "\rMSA|AR||"));
    /* Encoding characters that cannot be read (a doubled escape), MSH-10 still findable: the
     * NAK names the message, so its sender can match it. */
    static const char bad_msh2[] = "MSH|^~\\\\&|A|B|C|D|2024||ADT^A01|ID-9|P|2.5\rPID|1\r";
    uint8_t *ack;
    CHECK_RC(build(bad_msh2, strlen(bad_msh2), MLLP_DISPOSITION_ACCEPT, NULL, &ack, &len),
             MLLP_NAK_UNPARSEABLE);
    CHECK(contains(ack, len, "\rMSA|AR|ID-9|"));
    free(ack);
}

static void framed_round_trip(void) {
    uint8_t *ack;
    size_t len;
    CHECK_RC(build(MSG, sizeof MSG - 1, MLLP_DISPOSITION_ACCEPT, NULL, &ack, &len), MLLP_OK);
    uint8_t frame[1024];
    size_t flen;
    CHECK_RC(mllp_encode_frame(NULL, ack, len, frame, sizeof frame, &flen), MLLP_OK);
    mllp_decoder *dec;
    CHECK_RC(mllp_decoder_new(NULL, &dec), MLLP_OK);
    CHECK_RC(mllp_decoder_feed(dec, frame, flen), MLLP_OK);
    const uint8_t *p;
    size_t n;
    CHECK_RC(mllp_decoder_next(dec, &p, &n), MLLP_OK);
    CHECK(n == len && memcmp(p, ack, len) == 0);
    mllp_decoder_free(dec);
    free(ack);
}

typedef struct {
    size_t acks, naks;
} ack_counts;

static void ack_one(const char *path, uint8_t *data, size_t len, void *ctx) {
    ack_counts *counts = ctx;
    uint8_t *ack;
    size_t alen;
    mllp_result rc =
        build((const char *)data, len, MLLP_DISPOSITION_ERROR, "test é", &ack, &alen);
    if (rc != MLLP_OK && rc != MLLP_NAK_UNPARSEABLE && rc != MLLP_NO_ACK && rc != MLLP_CHARSET) {
        fprintf(stderr, "%s: %s\n", path, mllp_result_str(rc));
        exit(1);
    }
    if (rc == MLLP_OK) {
        counts->acks++;
        CHECK(alen > 10 && memcmp(ack, "MSH", 3) == 0);
        /* The ACK uses the message's own field separator. */
        char ae[16], ce[16];
        snprintf(ae, sizeof ae, "\rMSA%cAE%c", ack[3], ack[3]);
        snprintf(ce, sizeof ce, "\rMSA%cCE%c", ack[3], ack[3]);
        CHECK(contains(ack, alen, ae) || contains(ack, alen, ce));
    }
    if (rc == MLLP_NAK_UNPARSEABLE) counts->naks++;
    free(ack);
    free(data);
}

static void corpus(void) {
    const char *dir = corpus_dir();
    if (!dir) return;
    ack_counts counts = {0, 0};
    long files = for_each_hl7(dir, ack_one, &counts);
    printf("corpus: %ld files, %zu ACKs, %zu NAKs for unparseable headers\n", files, counts.acks,
           counts.naks);
    CHECK(files > 0 && counts.acks > (size_t)files / 2);
}

int main(void) {
    dispositions();
    enhanced_mode();
    unparseable();
    framed_round_trip();
    corpus();
    printf("ack_test: ok\n");
    return 0;
}
