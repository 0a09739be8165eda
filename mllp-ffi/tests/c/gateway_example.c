/* gateway: sends HL7 files to an MLLP listener.  usage: gateway host:port file... */
#include <stdio.h>
#include <stdlib.h>
#include "mllp.h"

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s host:port file...\n", argv[0]); return 2; }
    mllp_sender_options opts;
    mllp_sender_options_init(&opts);
    opts.ack_timeout_ms = 10000;
    mllp_sender *s;
    char err[256];
    size_t n;
    if (mllp_sender_new(argv[1], &opts, &s) != MLLP_OK) {
        mllp_new_error(err, sizeof err, &n);
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int failed = 0;
    static uint8_t msg[1 << 20], ack[1 << 16];
    for (int i = 2; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); failed = 1; continue; }
        size_t len = fread(msg, 1, sizeof msg, f), ack_len;
        fclose(f);
        mllp_ack_code code;
        mllp_result rc = mllp_sender_send(s, msg, len, ack, sizeof ack, &ack_len, &code);
        if (rc == MLLP_OK) {  /* delivered: never send it again */
            printf("%s: %s\n", argv[i], mllp_ack_code_str(code));
            failed |= code != MLLP_ACK_AA && code != MLLP_ACK_CA;
        } else {
            mllp_sender_last_error(s, err, sizeof err, &n);
            fprintf(stderr, "%s: %s: %s\n", argv[i], mllp_result_str(rc), err);
            failed = 1;
        }
    }
    mllp_sender_free(s);
    return failed;
}
