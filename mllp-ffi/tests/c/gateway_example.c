/* gateway: sends HL7 files to an MLLP listener.  usage: gateway host:port file... */
#include <stdio.h>
#include <stdlib.h>
#include "mllp.h"

static int fail(const char *what) {
    char err[256];
    size_t n;
    mllp_last_error(err, sizeof err, &n);  /* why the last call on this thread failed */
    fprintf(stderr, "%s: %s\n", what, err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s host:port file...\n", argv[0]); return 2; }
    mllp_sender_builder *b;
    mllp_sender *s;
    if (mllp_sender_builder_new(&b) != MLLP_OK) return fail("builder");
    mllp_result rc = mllp_sender_builder_set_ack_timeout_ms(b, 10000);
    if (rc == MLLP_OK) rc = mllp_sender_builder_build(b, argv[1], &s);
    mllp_sender_builder_free(b);
    if (rc != MLLP_OK) return fail(argv[1]);
    int failed = 0;
    static uint8_t msg[1 << 20], ack[1 << 16];
    for (int i = 2; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); failed = 1; continue; }
        size_t len = fread(msg, 1, sizeof msg, f), ack_len;
        fclose(f);
        mllp_ack_code code;
        rc = mllp_sender_send(s, msg, len, ack, sizeof ack, &ack_len, &code);
        if (rc == MLLP_OK) {  /* delivered: never send it again */
            printf("%s: %s\n", argv[i], mllp_ack_code_str(code));
            failed |= code != MLLP_ACK_AA && code != MLLP_ACK_CA;
        } else {
            fprintf(stderr, "%s: %s\n", argv[i], mllp_result_str(rc));
            failed |= fail(argv[i]);
        }
    }
    mllp_sender_free(s);
    return failed;
}
