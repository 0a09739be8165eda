/* A C host that never touched SIGPIPE (its default disposition kills the process) sends a
 * 4 MiB message, several times, to a peer that accepts each connection and closes it at once.
 * Writes into a closed connection must come back as errors (MLLP_NOT_DELIVERED or
 * MLLP_UNCONFIRMED), never as a signal: the process must survive every send. The peer is a
 * plain socket on 127.0.0.1 served by a thread of this program. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

#define ROUNDS 8
#define BODY (4u << 20)

static int listen_fd = -1;

/* Accepts connections and closes each at once, until the socket is shut down. */
static void *close_at_once(void *arg) {
    (void)arg;
    for (;;) {
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0) return NULL;
        close(c);
    }
}

int main(void) {
    /* The normal case for a C program: SIGPIPE at its default action. */
    CHECK(signal(SIGPIPE, SIG_DFL) != SIG_ERR);

    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(listen_fd >= 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    CHECK(bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(listen(listen_fd, 16) == 0);
    socklen_t alen = sizeof addr;
    CHECK(getsockname(listen_fd, (struct sockaddr *)&addr, &alen) == 0);
    pthread_t peer;
    CHECK(pthread_create(&peer, NULL, close_at_once, NULL) == 0);

    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%u", (unsigned)ntohs(addr.sin_port));
    mllp_sender_builder *b = NULL;
    CHECK_RC(mllp_sender_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_retry(b, 3, 1, 5), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_connect_timeout_ms(b, 5000), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_write_timeout_ms(b, 5000), MLLP_OK);
    CHECK_RC(mllp_sender_builder_set_ack_timeout_ms(b, 2000), MLLP_OK);
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(b, address, &s), MLLP_OK);
    mllp_sender_builder_free(b);

    static const char head[] = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|BIG1|P|2.5\rOBX|1|ST|X||";
    size_t len = sizeof head - 1 + BODY + 1;
    uint8_t *msg = malloc(len);
    CHECK(msg != NULL);
    memcpy(msg, head, sizeof head - 1);
    memset(msg + sizeof head - 1, 'x', BODY);
    msg[len - 1] = '\r';

    unsigned not_delivered = 0, unconfirmed = 0;
    for (int i = 0; i < ROUNDS; i++) {
        size_t ack_len = 1;
        mllp_ack_code code = 99;
        mllp_result rc = mllp_sender_send(s, msg, len, NULL, 0, &ack_len, &code);
        CHECK(rc == MLLP_NOT_DELIVERED || rc == MLLP_UNCONFIRMED);
        CHECK(code == MLLP_ACK_NONE && ack_len == 0);
        if (rc == MLLP_NOT_DELIVERED) not_delivered++;
        else unconfirmed++;
    }
    CHECK(sender_stat(s, MLLP_SENDER_STAT_FAILURES) == ROUNDS);
    CHECK(sender_stat(s, MLLP_SENDER_STAT_ACKS) == 0);
    mllp_sender_free(s);
    free(msg);

    shutdown(listen_fd, SHUT_RDWR);
    CHECK(pthread_join(peer, NULL) == 0);
    close(listen_fd);
    printf("%d sends of %u bytes to a peer that closes at once: %u not delivered, %u "
           "unconfirmed, no SIGPIPE\n",
           ROUNDS, (unsigned)len, not_delivered, unconfirmed);
    return 0;
}
