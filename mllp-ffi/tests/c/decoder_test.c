/* The C decoder: table cases, then every corpus file framed and fed in 1-byte (and larger)
 * chunks, each frame compared with the file it came from. */
#define _POSIX_C_SOURCE 200809L
#include "corpus.h"

typedef struct {
    char name[512];
    unsigned char *data;
    size_t len;
} sample;

/* Everything the decoder hands out, in order: result code and bytes. */
typedef struct {
    mllp_result rc[64];
    char bytes[64][64];
    size_t n;
} events;

/* Feeds `len` bytes in `chunk`-byte pieces, recording every non-NEED_MORE result. */
static void feed_all(mllp_decoder *dec, const void *data, size_t len, size_t chunk, events *ev) {
    const unsigned char *p = (const unsigned char *)data;
    for (size_t at = 0; at < len; at += chunk) {
        size_t n = len - at < chunk ? len - at : chunk;
        CHECK_RC(mllp_decoder_feed(dec, p + at, n), MLLP_OK);
        for (;;) {
            const uint8_t *frame = (const uint8_t *)"x";
            size_t flen = 99;
            mllp_result rc = mllp_decoder_next(dec, &frame, &flen);
            if (rc == MLLP_NEED_MORE) {
                CHECK(frame == NULL && flen == 0);
                break;
            }
            CHECK(ev->n < 64);
            CHECK(flen < 64);
            ev->rc[ev->n] = rc;
            if (flen) memcpy(ev->bytes[ev->n], frame, flen);
            ev->bytes[ev->n][flen] = 0;
            ev->n++;
        }
    }
}

static void table_cases(void) {
    static const size_t chunks[] = {1, 2, 3, 1000};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        size_t chunk = chunks[c];
        mllp_decoder *dec = NULL;
        mllp_framing *f = new_framing();
        CHECK_RC(mllp_framing_set_max_message_size(f, 8), MLLP_OK);
        CHECK_RC(mllp_decoder_new(f, &dec), MLLP_OK);
        mllp_framing_free(f); /* the decoder has its own copy */
        CHECK(dec != NULL);

        /* Junk, two frames, a partial frame restarted, an oversized frame, a frame, and a
         * truncated one. */
        static const char input[] = "junk\x0b" "A\x1c\r\x0b" "BB\x1c\r\r\n\x0b" "CC\x0b" "MSH\x1c\r"
                                    "\x0b" "0123456789abc\x1c\r\x0b" "E\x1c\r\x0b" "FFF";
        events ev = {0};
        feed_all(dec, input, sizeof input - 1, chunk, &ev);
        CHECK(ev.n == 5);
        CHECK(ev.rc[0] == MLLP_OK && strcmp(ev.bytes[0], "A") == 0);
        CHECK(ev.rc[1] == MLLP_OK && strcmp(ev.bytes[1], "BB") == 0);
        CHECK(ev.rc[2] == MLLP_OK && strcmp(ev.bytes[2], "MSH") == 0);
        /* The oversized frame shows its first bytes, for a NAK. */
        CHECK(ev.rc[3] == MLLP_FRAME_OVERSIZED && strcmp(ev.bytes[3], "0123456789abc") == 0);
        CHECK(ev.rc[4] == MLLP_OK && strcmp(ev.bytes[4], "E") == 0);

        CHECK(strstr(last_error(), "maximum message size of 8 bytes") != NULL);

        const uint8_t *frame = NULL;
        size_t flen = 0;
        CHECK_RC(mllp_decoder_finish(dec, &frame, &flen), MLLP_FRAME_TRUNCATED);
        CHECK(frame == NULL && flen == 0);
        CHECK(strstr(last_error(), "ended inside a frame after 3 payload bytes") != NULL);
        /* Finished: the decoder is empty and ready for a new stream. */
        CHECK_RC(mllp_decoder_finish(dec, &frame, &flen), MLLP_OK);
        CHECK(frame == NULL);

        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_FRAMES) == 4);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_SKIPPED_BYTES) == 6); /* "junk" and "\r\n" */
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_DISCARDED_FRAMES) == 1);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_OVERSIZED_FRAMES) == 1);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_TRUNCATED_FRAMES) == 1);
        mllp_decoder_free(dec);
    }
}

static void borrowed_frames(void) {
    mllp_decoder *dec = NULL;
    CHECK_RC(mllp_decoder_new(NULL, &dec), MLLP_OK);
    static const char two[] = "\x0bMSH|first\x1c\r\x0bMSH|second\x1c\r";
    CHECK_RC(mllp_decoder_feed(dec, (const uint8_t *)two, sizeof two - 1), MLLP_OK);
    const uint8_t *f1 = NULL, *f2 = NULL;
    size_t l1 = 0, l2 = 0;
    CHECK_RC(mllp_decoder_next(dec, &f1, &l1), MLLP_OK);
    CHECK(l1 == 9 && memcmp(f1, "MSH|first", 9) == 0);
    CHECK_RC(mllp_decoder_next(dec, &f2, &l2), MLLP_OK);
    CHECK(l2 == 10 && memcmp(f2, "MSH|second", 10) == 0);
    CHECK_RC(mllp_decoder_next(dec, &f2, &l2), MLLP_NEED_MORE);
    /* finish before the frames are taken is refused, and says why. */
    CHECK_RC(mllp_decoder_feed(dec, (const uint8_t *)two, sizeof two - 1), MLLP_OK);
    CHECK_RC(mllp_decoder_finish(dec, &f1, &l1), MLLP_INVALID_STATE);
    CHECK(strstr(last_error(), "MLLP_NEED_MORE") != NULL);
    CHECK_RC(mllp_decoder_next(dec, &f1, &l1), MLLP_OK);
    CHECK_RC(mllp_decoder_next(dec, &f1, &l1), MLLP_OK);
    CHECK_RC(mllp_decoder_next(dec, &f1, &l1), MLLP_NEED_MORE);
    CHECK_RC(mllp_decoder_finish(dec, &f1, &l1), MLLP_OK);
    mllp_decoder_free(dec);
}

static void custom_framing(void) {
    /* STX ... ETX, lenient end, start bytes inside a frame ignored. */
    mllp_framing *f = new_framing();
    static const uint8_t stx[] = {0x02}, etx_lf[] = {0x03, 0x0a};
    CHECK_RC(mllp_framing_set_sequences(f, stx, 1, etx_lf, 2), MLLP_OK);
    CHECK_RC(mllp_framing_set_lenient_end(f, 1), MLLP_OK);
    CHECK_RC(mllp_framing_set_start_in_frame(f, MLLP_START_IN_FRAME_IGNORE), MLLP_OK);
    mllp_decoder *dec = NULL;
    CHECK_RC(mllp_decoder_new(f, &dec), MLLP_OK);
    static const char in[] = "\x02" "A\x02" "B\x03\n\x02" "C\x03" "x\x02" "D\x03";
    events ev = {0};
    feed_all(dec, in, sizeof in - 1, 1, &ev);
    CHECK(ev.n == 2);
    CHECK(strcmp(ev.bytes[0], "A\x02" "B") == 0);
    CHECK(strcmp(ev.bytes[1], "C") == 0); /* lenient: ETX without LF ends the frame */
    const uint8_t *frame = NULL;
    size_t flen = 0;
    /* Lenient: an end sequence cut short by the end of the stream still ends the frame. */
    CHECK_RC(mllp_decoder_finish(dec, &frame, &flen), MLLP_OK);
    CHECK(flen == 1 && frame != NULL && frame[0] == 'D');

    /* The same bytes, encoded by mllp_encode_frame, decode back. */
    uint8_t out[16];
    size_t olen = 0;
    CHECK_RC(mllp_encode_frame(f, (const uint8_t *)"HL7", 3, out, sizeof out, &olen), MLLP_OK);
    CHECK(olen == 6 && memcmp(out, "\x02HL7\x03\n", 6) == 0);
    CHECK_RC(mllp_decoder_feed(dec, out, olen), MLLP_OK);
    CHECK_RC(mllp_decoder_next(dec, &frame, &flen), MLLP_OK);
    CHECK(flen == 3 && memcmp(frame, "HL7", 3) == 0);
    mllp_decoder_free(dec);
    mllp_framing_free(f);
}

static void bounded_buffer(void) {
    mllp_framing *f = new_framing();
    CHECK_RC(mllp_framing_set_max_message_size(f, 10), MLLP_OK);
    mllp_decoder *dec = NULL;
    CHECK_RC(mllp_decoder_new(f, &dec), MLLP_OK);
    mllp_framing_free(f);
    /* Frames fed without being taken: the decoder stops accepting at its bound. */
    static const uint8_t frame[] = "\x0bMSH|x\x1c\r";
    size_t fed = 0;
    mllp_result rc;
    while ((rc = mllp_decoder_feed(dec, frame, sizeof frame - 1)) == MLLP_OK) {
        fed++;
        CHECK(fed < 100000);
    }
    CHECK_RC(rc, MLLP_DECODER_FULL);
    CHECK(fed * (sizeof frame - 1) <= 10 + 16 + MLLP_DECODER_FEED_MAX);
    CHECK(fed * (sizeof frame - 1) + (sizeof frame - 1) > 10 + 16 + MLLP_DECODER_FEED_MAX);
    /* Taking every frame makes room again; nothing was lost or duplicated. */
    const uint8_t *p;
    size_t n, taken = 0;
    while ((rc = mllp_decoder_next(dec, &p, &n)) == MLLP_OK) {
        CHECK(n == 5 && memcmp(p, "MSH|x", 5) == 0);
        taken++;
    }
    CHECK_RC(rc, MLLP_NEED_MORE);
    CHECK(taken == fed);
    static uint8_t big[MLLP_DECODER_FEED_MAX];
    memset(big, 'j', sizeof big);
    CHECK_RC(mllp_decoder_feed(dec, big, sizeof big), MLLP_OK);
    mllp_decoder_free(dec);
}

typedef struct {
    sample *out;
    size_t cap, n;
} samples;

static void keep(const char *path, uint8_t *data, size_t len, void *ctx) {
    samples *all = ctx;
    CHECK(all->n < all->cap);
    sample *s = &all->out[all->n++];
    snprintf(s->name, sizeof s->name, "%s", path);
    s->data = data;
    s->len = len;
}

static void corpus(void) {
    const char *dir = corpus_dir();
    if (!dir) return;
    static sample files[512];
    samples all = {files, 512, 0};
    CHECK(for_each_hl7(dir, keep, &all) > 0);
    char malformed[600];
    snprintf(malformed, sizeof malformed, "%s/malformed", dir);
    size_t before = all.n;
    for_each_hl7(malformed, keep, &all);
    size_t n = all.n;
    printf("corpus: %zu files (%zu malformed)\n", n, n - before);
    CHECK(n > 0);

    /* Some samples contain a stray 0x0B: treat start bytes inside a frame as payload. */
    mllp_framing *f = new_framing();
    CHECK_RC(mllp_framing_set_start_in_frame(f, MLLP_START_IN_FRAME_IGNORE), MLLP_OK);

    /* One stream: every file framed, with a line of junk after every third frame. */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += files[i].len + 3 + 2;
    uint8_t *stream = malloc(total);
    CHECK(stream != NULL);
    size_t len = 0, junk = 0;
    for (size_t i = 0; i < n; i++) {
        size_t flen = 0;
        CHECK_RC(mllp_encode_frame(f, files[i].data, files[i].len, NULL, 0, &flen),
                 MLLP_BUFFER_TOO_SMALL);
        CHECK(flen == files[i].len + 3);
        CHECK_RC(mllp_encode_frame(f, files[i].data, files[i].len, stream + len, total - len,
                                   &flen),
                 MLLP_OK);
        len += flen;
        if (i % 3 == 2) {
            memcpy(stream + len, "\r\n", 2);
            len += 2;
            junk += 2;
        }
    }

    static const size_t chunks[] = {1, 7, 4093, MLLP_DECODER_FEED_MAX};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        size_t chunk = chunks[c];
        mllp_decoder *dec = NULL;
        CHECK_RC(mllp_decoder_new(f, &dec), MLLP_OK);
        size_t next = 0;
        for (size_t at = 0; at < len; at += chunk) {
            size_t k = len - at < chunk ? len - at : chunk;
            CHECK_RC(mllp_decoder_feed(dec, stream + at, k), MLLP_OK);
            const uint8_t *frame;
            size_t flen;
            mllp_result rc;
            while ((rc = mllp_decoder_next(dec, &frame, &flen)) == MLLP_OK) {
                CHECK(next < n);
                if (flen != files[next].len || memcmp(frame, files[next].data, flen) != 0) {
                    fprintf(stderr, "chunk %zu: frame %zu differs from %s (%zu vs %zu bytes)\n",
                            chunk, next, files[next].name, flen, files[next].len);
                    exit(1);
                }
                next++;
            }
            CHECK_RC(rc, MLLP_NEED_MORE);
        }
        CHECK(next == n);
        const uint8_t *frame;
        size_t flen;
        CHECK_RC(mllp_decoder_finish(dec, &frame, &flen), MLLP_OK);
        CHECK(frame == NULL && flen == 0);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_FRAMES) == n);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_SKIPPED_BYTES) == junk);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_DISCARDED_FRAMES) == 0);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_OVERSIZED_FRAMES) == 0);
        CHECK(decoder_stat(dec, MLLP_DECODER_STAT_TRUNCATED_FRAMES) == 0);
        mllp_decoder_free(dec);
    }
    printf("corpus: %zu frames decoded from a %zu-byte stream at 4 chunk sizes\n", n, len);
    free(stream);
    mllp_framing_free(f);
    for (size_t i = 0; i < n; i++) free(files[i].data);
}

int main(void) {
    table_cases();
    borrowed_frames();
    custom_framing();
    bounded_buffer();
    corpus();
    printf("decoder_test: ok\n");
    return 0;
}
