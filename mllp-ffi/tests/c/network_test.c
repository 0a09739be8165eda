/* Keepalive, allow lists and the PROXY protocol from C.
 *
 * The setters refuse bad values; a C listener and a C sender in this process talk to each
 * other, and both ends of their connection are found among this process's descriptors and read
 * back with getsockopt: the keepalive timers set by mllp_listener_builder_set_keepalive and
 * mllp_sender_builder_set_keepalive, on by default, off when asked. A listener that allows
 * only 127.0.0.5 closes a connection from 127.0.0.1 and counts it; one that takes PROXY
 * headers from 127.0.0.1 hands the callback the client the header names. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char msg[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|K1|P|2.5\rPID|1\r";

typedef struct {
    atomic_int calls;
    char peer[64];
} app;

static mllp_disposition on_message(void *userdata, const mllp_message_info *info,
                                   mllp_response *response) {
    (void)response;
    app *a = userdata;
    snprintf(a->peer, sizeof a->peer, "%s", info->peer);
    atomic_fetch_add(&a->calls, 1);
    return MLLP_DISPOSITION_ACCEPT;
}

static void refusals(void) {
    mllp_sender_builder *s = NULL;
    CHECK_RC(mllp_sender_builder_new(&s), MLLP_OK);
    REFUSES(mllp_sender_builder_set_keepalive(s, 40000, 60, 5), MLLP_CONFIG, "idle time");
    REFUSES(mllp_sender_builder_set_keepalive(s, 300, 0, 5), MLLP_CONFIG, "interval");
    REFUSES(mllp_sender_builder_set_keepalive(s, 300, 60, 0), MLLP_CONFIG, "count");
    REFUSES(mllp_sender_builder_set_keepalive(NULL, 300, 60, 5), MLLP_NULL_ARGUMENT,
            "mllp_sender_builder_set_keepalive");
    mllp_sender_builder_free(s);
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    REFUSES(mllp_listener_builder_set_keepalive(b, 300, 60, 128), MLLP_CONFIG, "count");
    REFUSES(mllp_listener_builder_add_allow(b, "10.0.0.1/8"), MLLP_CONFIG, "10.0.0.0/8");
    REFUSES(mllp_listener_builder_add_allow(b, "example.org"), MLLP_CONFIG, "address block");
    REFUSES(mllp_listener_builder_add_allow(b, NULL), MLLP_NULL_ARGUMENT, "address block");
    REFUSES(mllp_listener_builder_add_allow(b, "\xff"), MLLP_INVALID_ARGUMENT, "UTF-8");
    REFUSES(mllp_listener_builder_add_proxy_protocol_from(b, "::1/129"), MLLP_CONFIG, "128");
    REFUSES(mllp_listener_builder_add_proxy_protocol_from(NULL, "::1"), MLLP_NULL_ARGUMENT,
            "mllp_listener_builder_add_proxy_protocol_from");
    REFUSES(mllp_listener_builder_set_keepalive(NULL, 1, 1, 1), MLLP_NULL_ARGUMENT, "");
    mllp_listener_builder_free(b);
    printf("refusals\n");
}

static uint16_t port_of(const struct sockaddr_in *a) { return ntohs(a->sin_port); }

/* The descriptor of this process's TCP socket whose local port is `local` and peer port is
 * `peer`, or -1. */
static int find_socket(uint16_t local, uint16_t peer) {
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in me, them;
        socklen_t l1 = sizeof me, l2 = sizeof them;
        if (getsockname(fd, (struct sockaddr *)&me, &l1) != 0 || me.sin_family != AF_INET) continue;
        if (getpeername(fd, (struct sockaddr *)&them, &l2) != 0) continue;
        if (port_of(&me) == local && port_of(&them) == peer) return fd;
    }
    return -1;
}

static int opt(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    CHECK(getsockopt(fd, level, name, &v, &len) == 0);
    return v;
}

/* Checks fd's keepalive: off when idle is 0, else on with these timers. */
static void check_keepalive(int fd, int idle, int interval, int count) {
    CHECK(fd >= 0);
    if (idle == 0) {
        CHECK(opt(fd, SOL_SOCKET, SO_KEEPALIVE) == 0);
        return;
    }
    CHECK(opt(fd, SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(opt(fd, IPPROTO_TCP, TCP_KEEPIDLE) == idle);
    CHECK(opt(fd, IPPROTO_TCP, TCP_KEEPINTVL) == interval);
    CHECK(opt(fd, IPPROTO_TCP, TCP_KEEPCNT) == count);
}

/* A listener and a sender with these keepalive settings (idle -1: the default), one message
 * between them, then both ends checked. */
static void keepalive_round(int l_idle, int l_intvl, int l_cnt, int s_idle, int s_intvl,
                            int s_cnt) {
    app a = {0};
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    if (l_idle >= 0) CHECK_RC(mllp_listener_builder_set_keepalive(b, l_idle, l_intvl, l_cnt), MLLP_OK);
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_OK);
    mllp_listener_builder_free(b);
    CHECK_RC(mllp_listener_start(l), MLLP_OK);
    uint16_t port = 0;
    CHECK_RC(mllp_listener_local_port(l, &port), MLLP_OK);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)port);
    mllp_sender_builder *sb = NULL;
    CHECK_RC(mllp_sender_builder_new(&sb), MLLP_OK);
    if (s_idle >= 0) CHECK_RC(mllp_sender_builder_set_keepalive(sb, s_idle, s_intvl, s_cnt), MLLP_OK);
    mllp_sender *s = NULL;
    CHECK_RC(mllp_sender_builder_build(sb, addr, &s), MLLP_OK);
    mllp_sender_builder_free(sb);
    uint8_t ack[512];
    size_t ack_len = 0;
    mllp_ack_code code = 0;
    CHECK_RC(mllp_sender_send(s, (const uint8_t *)msg, sizeof msg - 1, ack, sizeof ack, &ack_len,
                              &code),
             MLLP_OK);
    CHECK(code == MLLP_ACK_AA);
    /* The sender's end: its peer is the listener's port. */
    int sender_fd = -1;
    uint16_t sender_port = 0;
    for (int fd = 3; fd < 1024 && sender_fd < 0; fd++) {
        struct sockaddr_in me, them;
        socklen_t l1 = sizeof me, l2 = sizeof them;
        if (getsockname(fd, (struct sockaddr *)&me, &l1) != 0 || me.sin_family != AF_INET) continue;
        if (getpeername(fd, (struct sockaddr *)&them, &l2) != 0) continue;
        if (port_of(&them) == port && port_of(&me) != port) {
            sender_fd = fd;
            sender_port = port_of(&me);
        }
    }
    int listener_fd = find_socket(port, sender_port);
    if (s_idle < 0) s_idle = 300, s_intvl = 60, s_cnt = 5;
    if (l_idle < 0) l_idle = 300, l_intvl = 60, l_cnt = 5;
    check_keepalive(sender_fd, s_idle, s_intvl, s_cnt);
    check_keepalive(listener_fd, l_idle, l_intvl, l_cnt);
    mllp_sender_free(s);
    CHECK_RC(mllp_listener_stop(l), MLLP_OK);
    mllp_listener_free(l);
    printf("keepalive listener %d,%d,%d sender %d,%d,%d\n", l_idle, l_intvl, l_cnt, s_idle,
           s_intvl, s_cnt);
}

/* A plain connection to 127.0.0.1:port, having written `bytes`. */
static int connect_local(uint16_t port, const char *bytes, size_t len) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&to, sizeof to) == 0);
    struct timeval tv = {5, 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0);
    if (len > 0) CHECK(write(fd, bytes, len) == (ssize_t)len);
    return fd;
}

/* Polls a listener counter until it reaches `want` (5 s at most). */
static void wait_stat(mllp_listener *l, mllp_listener_stat which, uint64_t want) {
    for (int i = 0; i < 500 && listener_stat(l, which) != want; i++) {
        struct timespec t = {0, 10 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    CHECK(listener_stat(l, which) == want);
}

static void allow_and_proxy(void) {
    app a = {0};
    mllp_listener_builder *b = NULL;
    CHECK_RC(mllp_listener_builder_new(&b), MLLP_OK);
    CHECK_RC(mllp_listener_builder_add_allow(b, "127.0.0.5,10.0.0.0/8"), MLLP_OK);
    CHECK_RC(mllp_listener_builder_add_proxy_protocol_from(b, "127.0.0.1"), MLLP_OK);
    mllp_listener *l = NULL;
    CHECK_RC(mllp_listener_builder_build(b, "127.0.0.1:0", on_message, &a, &l), MLLP_OK);
    mllp_listener_builder_free(b);
    CHECK_RC(mllp_listener_start(l), MLLP_OK);
    uint16_t port = 0;
    CHECK_RC(mllp_listener_local_port(l, &port), MLLP_OK);
    char buf[512];
    /* The proxy speaks for 127.0.0.6, not allowed: closed at once, counted. */
    static const char denied[] = "PROXY TCP4 127.0.0.6 127.0.0.1 4000 2575\r\n";
    int fd = connect_local(port, denied, sizeof denied - 1);
    CHECK(read(fd, buf, sizeof buf) <= 0);
    close(fd);
    wait_stat(l, MLLP_LISTENER_STAT_CONNECTIONS_DENIED, 1);
    /* A malformed header: refused, counted. */
    static const char bad[] = "PROXY TCP4 127.0.0.5 127.0.0.1 99999 2575\r\n";
    fd = connect_local(port, bad, sizeof bad - 1);
    CHECK(read(fd, buf, sizeof buf) <= 0);
    close(fd);
    wait_stat(l, MLLP_LISTENER_STAT_PROXY_REFUSED, 1);
    /* For 127.0.0.5: served, and the callback sees the client. */
    char frame[256];
    int n = snprintf(frame, sizeof frame, "PROXY TCP4 127.0.0.5 127.0.0.1 4001 2575\r\n\x0b%s\x1c\r",
                     msg);
    fd = connect_local(port, frame, (size_t)n);
    ssize_t got = read(fd, buf, sizeof buf);
    CHECK(got > 0 && contains(buf, (size_t)got, "MSA|AA|K1"));
    close(fd);
    CHECK(atomic_load(&a.calls) == 1 && strcmp(a.peer, "127.0.0.5:4001") == 0);
    CHECK(listener_stat(l, MLLP_LISTENER_STAT_CONNECTIONS_DENIED) == 1);
    CHECK_RC(mllp_listener_stop(l), MLLP_OK);
    mllp_listener_free(l);
    printf("allow list and PROXY protocol\n");
}

int main(void) {
    refusals();
    keepalive_round(-1, 0, 0, -1, 0, 0);
    keepalive_round(120, 10, 3, 90, 5, 2);
    keepalive_round(0, 0, 0, 0, 0, 0);
    allow_and_proxy();
    return 0;
}
