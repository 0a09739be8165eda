/* Cutting a file into messages from C: batches whole or split, endings fixed, an early stop,
 * and the argument checks. */
#include "check.h"

struct seen {
    size_t n;
    char msgs[8][64];
    size_t stop_after;
};

static int collect(void *userdata, size_t index, const uint8_t *msg, size_t len) {
    struct seen *s = userdata;
    CHECK(index == s->n);
    CHECK(len < sizeof s->msgs[0]);
    memcpy(s->msgs[s->n], msg, len);
    s->msgs[s->n][len] = '\0';
    s->n++;
    return s->stop_after != 0 && s->n >= s->stop_after;
}

int main(void) {
    static const char file[] = "\xEF\xBB\xBF" "MSH|1\nPID|1\n\n\x0bMSH|2\r\nPID|2\r\n\x1c\r";
    struct seen s = {0};
    size_t count = 99;
    CHECK_RC(mllp_split_messages((const uint8_t *)file, strlen(file),
                                 MLLP_SPLIT_NORMALISE_ENDINGS, collect, &s, &count),
             MLLP_OK);
    CHECK(count == 2 && s.n == 2);
    CHECK(strcmp(s.msgs[0], "MSH|1\rPID|1\r") == 0);
    CHECK(strcmp(s.msgs[1], "MSH|2\rPID|2\r") == 0);

    static const char batch[] = "FHS|^~\\&\rBHS|^~\\&\rMSH|1\rMSH|2\rBTS|2\rFTS|1\r";
    struct seen whole = {0};
    CHECK_RC(mllp_split_messages((const uint8_t *)batch, strlen(batch), 0, collect, &whole, NULL),
             MLLP_OK);
    CHECK(whole.n == 1 && strcmp(whole.msgs[0], batch) == 0);
    struct seen split = {.stop_after = 1};
    CHECK_RC(mllp_split_messages((const uint8_t *)batch, strlen(batch), MLLP_SPLIT_BATCH, collect,
                                 &split, &count),
             MLLP_OK);
    CHECK(split.n == 1 && count == 1 && strcmp(split.msgs[0], "MSH|1\r") == 0);

    CHECK_RC(mllp_split_messages(NULL, 0, 0, collect, &s, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_split_messages((const uint8_t *)file, 1, 0, NULL, &s, NULL), MLLP_NULL_ARGUMENT);
    CHECK_RC(mllp_split_messages((const uint8_t *)file, 1, 0x80, collect, &s, NULL),
             MLLP_INVALID_ARGUMENT);
    printf("split_test: ok\n");
    return 0;
}
