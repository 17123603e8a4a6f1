/* fuzz_smtp.c - libFuzzer target for the ESMTP session state machine
 * (smtp_server.c): the input is the byte stream a client sends. Two
 * in-process servers listen on 127.0.0.1 (auth = none, and auth = passwd
 * with a hook that accepts user "rep" / "pw"); the first input byte picks
 * one. Per input: connect, write the rest, half-close, and run the loop
 * until the server closes the session (or a 5 s guard fires: a hang). The
 * hooks accept everything and answer DATA at once. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "untild/config.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/smtp_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct client {
    struct loop *l;
    const uint8_t *p;
    size_t left;
    int fd;
    int done;
};

static struct loop *lp;
static struct smtp_server *srv[2];
static struct config cfg[2];
static int port[2];

static void h_auth(void *arg, struct smtp_session *s, const char *user, const char *pass)
{
    (void)arg;
    smtp_auth_done(s, user && pass && !strcmp(user, "rep") && !strcmp(pass, "pw"));
}

static int h_mail(void *arg, struct smtp_session *s, const char *from, const char *params,
                  char *reply, size_t replysz)
{
    (void)arg; (void)s; (void)params;
    if (from && !strcmp(from, "refuse@example.com")) {
        snprintf(reply, replysz, "452 4.3.1 Insufficient system storage");
        return 452;
    }
    return 0;
}

static int h_rcpt(void *arg, struct smtp_session *s, const char *rcpt, const char *params,
                  char *reply, size_t replysz)
{
    (void)arg; (void)s; (void)params;
    if (rcpt && strstr(rcpt, "quiet")) {
        snprintf(reply, replysz, "550 5.7.1 Quiet until 2027-07-01");
        return 550;
    }
    return 0;
}

static void h_data(void *arg, struct smtp_session *s, const struct smtp_envelope *env,
                   const char *msg, size_t len)
{
    (void)arg;
    /* Touch everything the server hands over, so ASan sees bad bytes. */
    size_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += (unsigned char)msg[i];
    for (size_t i = 0; i < env->nrcpts; i++)
        sum += strlen(env->rcpts[i].addr);
    sum += strlen(env->mail_from);
    smtp_data_done(s, (sum & 1) ? "250 2.0.0 Ok: queued" : "250-2.0.0 Ok\n250 2.0.0 held");
}

static void init(void)
{
    struct smtp_hooks hooks = { NULL, h_auth, h_mail, h_rcpt, h_data };
    signal(SIGPIPE, SIG_IGN);
    log_set_level(ULOG_FATAL);
    if (!(lp = loop_new()))
        abort();
    for (int i = 0; i < 2; i++) {
        cfg[i].listen[0] = "127.0.0.1:0";
        cfg[i].nlisten = 1;
        cfg[i].auth = i ? AUTH_PASSWD : AUTH_NONE;
        cfg[i].passwd_file = "/nonexistent";
        cfg[i].max_message_size = 4096;
        cfg[i].max_sessions = 16;
        cfg[i].hostname = "fuzz.example";
        cfg[i].timeout_command = 5;
        cfg[i].timeout_data = 5;
        if (!(srv[i] = smtp_server_new(&cfg[i], lp, &hooks)) || smtp_server_listen(srv[i]) < 0)
            abort();
        port[i] = smtp_server_port(srv[i], 0);
        if (port[i] <= 0)
            abort();
    }
}

static void on_guard(struct loop *l, uint64_t id, void *arg)
{
    (void)l; (void)id; (void)arg;
    /* The session did not end within 5 s of the client's EOF: a hang. */
    fprintf(stderr, "fuzz_smtp: session did not close\n");
    abort();
}

static void on_tick(struct loop *l, uint64_t id, void *arg)
{
    (void)id; (void)arg;
    loop_stop(l);
}

static void on_client(struct loop *l, int fd, int ev, void *arg)
{
    struct client *c = arg;
    char buf[4096];
    if (ev & LOOP_WRITE) {
        while (c->left) {
            ssize_t n = write(fd, c->p, c->left);
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                c->left = 0;   /* the server closed: nothing more to send */
                break;
            }
            c->p += n;
            c->left -= (size_t)n;
        }
        if (!c->left) {
            shutdown(fd, SHUT_WR);
            loop_fd(l, fd, LOOP_READ, on_client, c);
        }
    }
    if (ev & LOOP_READ) {
        for (;;) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n > 0)
                continue;
            if (n < 0 && errno == EAGAIN)
                break;
            c->done = 1;     /* EOF or reset: the session is over */
            loop_stop(l);
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_in sa;
    struct client c;
    uint64_t guard;
    int which;
    struct linger lg = { 1, 0 };
    if (!lp)
        init();
    if (size == 0)
        return 0;
    which = data[0] & 1;
    memset(&c, 0, sizeof c);
    c.l = lp;
    c.p = data + 1;
    c.left = size - 1;
    if ((c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        abort();
    /* Reset on close: no TIME_WAIT pile-up over millions of runs. */
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port[which]);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        abort();
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    if (loop_fd(lp, c.fd, LOOP_READ | LOOP_WRITE, on_client, &c) < 0)
        abort();
    guard = loop_timer(lp, 5000, on_guard, NULL);
    loop_run(lp, NULL, NULL);
    loop_timer_del(lp, guard);
    loop_fd_del(lp, c.fd);
    close(c.fd);
    /* Let the server finish tearing the session down before the next run. */
    for (int i = 0; smtp_server_sessions(srv[which]) > 0; i++) {
        if (i == 500) {
            fprintf(stderr, "fuzz_smtp: session not freed\n");
            abort();
        }
        uint64_t t = loop_timer(lp, 10, on_tick, NULL);
        loop_run(lp, NULL, NULL);
        loop_timer_del(lp, t);
    }
    return 0;
}
