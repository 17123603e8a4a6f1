/* test_smtp_server.c - the ESMTP listener against scripted transcripts.
 *
 * Each test runs a loop with the server in a second thread, listening on
 * 127.0.0.1 port 0, with small hooks: RCPT rejects "reject@x" with
 * "550 5.7.1 quiet"; DATA records the envelope and message and answers
 * "250 2.0.0 Ok: queued" a few milliseconds later from a loop timer (the
 * asynchronous path); AUTH accepts password "secret". The client side is a
 * raw socket (optionally GnuTLS) that says this and expects exactly that,
 * in the style of curl's test900. A self-signed certificate is made with
 * the GnuTLS API at start-up (no certtool or openssl needed). */
#include <check.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "untild/config.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/smtp_server.h"

static char certdir[64], certfile[128], keyfile[128];

/* ---- the server side ---- */

struct rec {
    pthread_mutex_t mu;
    int nmsgs;
    char *msg;
    size_t msglen;
    char from[256];
    char rcpts[1024];        /* "addr[ params]" joined with ',' */
    char mail_params[256];
    char user[128], pass[128];
    int nauth;
    int data_delay_ms;
    int ndone;
};

struct fixture {
    struct config cfg;
    struct loop *loop;
    struct smtp_server *srv;
    pthread_t th;
    struct rec rec;
    int port, tls_port;
};

static struct fixture fx;

static int h_rcpt(void *arg, struct smtp_session *s, const char *rcpt,
                  const char *params, char *reply, size_t replysz)
{
    (void)arg; (void)s; (void)params;
    if (strcmp(rcpt, "reject@x") == 0) {
        snprintf(reply, replysz, "550 5.7.1 quiet");
        return 550;
    }
    return 0;
}

struct pending {
    struct smtp_session *s;
};

static void data_finish(struct loop *l, uint64_t id, void *arg)
{
    struct pending *p = arg;
    (void)l; (void)id;
    pthread_mutex_lock(&fx.rec.mu);
    fx.rec.ndone++;
    pthread_mutex_unlock(&fx.rec.mu);
    smtp_data_done(p->s, "250 2.0.0 Ok: queued");
    free(p);
}

static void h_data(void *arg, struct smtp_session *s, const struct smtp_envelope *env,
                   const char *msg, size_t len)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->nmsgs++;
    free(r->msg);
    r->msg = malloc(len + 1);
    memcpy(r->msg, msg, len);
    r->msg[len] = '\0';
    r->msglen = len;
    snprintf(r->from, sizeof r->from, "%s", env->mail_from);
    snprintf(r->mail_params, sizeof r->mail_params, "%s",
             env->mail_params ? env->mail_params : "(null)");
    r->rcpts[0] = '\0';
    for (size_t i = 0; i < env->nrcpts; i++) {
        size_t n = strlen(r->rcpts);
        snprintf(r->rcpts + n, sizeof r->rcpts - n, "%s%s%s%s", i ? "," : "",
                 env->rcpts[i].addr, env->rcpts[i].params ? " " : "",
                 env->rcpts[i].params ? env->rcpts[i].params : "");
    }
    int delay = r->data_delay_ms;
    pthread_mutex_unlock(&r->mu);
    struct pending *p = malloc(sizeof *p);
    p->s = s;
    ck_assert(loop_timer(fx.loop, delay, data_finish, p) > 0);
}

static void h_auth(void *arg, struct smtp_session *s, const char *user, const char *pass)
{
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->nauth++;
    snprintf(r->user, sizeof r->user, "%s", user);
    snprintf(r->pass, sizeof r->pass, "%s", pass);
    pthread_mutex_unlock(&r->mu);
    smtp_auth_done(s, !strcmp(pass, "limited") ? SMTP_AUTH_LIMITED : strcmp(pass, "secret") == 0);
}

static void *loop_thread(void *arg)
{
    loop_run(arg, NULL, NULL);
    return NULL;
}

static void stop_cb(void *arg) { loop_stop(arg); }

/* Defaults for every test; tests change fx.cfg before server_start(). */
static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    pthread_mutex_init(&fx.rec.mu, NULL);
    fx.rec.data_delay_ms = 10;
    static char l0[] = "127.0.0.1:0", host[] = "mx.test";
    fx.cfg.listen[0] = l0;
    fx.cfg.nlisten = 1;
    fx.cfg.max_message_size = 100000;
    fx.cfg.max_sessions = 50;
    fx.cfg.timeout_command = 30;
    fx.cfg.timeout_data = 30;
    fx.cfg.hostname = host;
    fx.cfg.auth = AUTH_NONE;
}

static void server_start(void)
{
    struct smtp_hooks h = { .arg = &fx.rec, .auth = h_auth, .rcpt = h_rcpt, .data = h_data };
    fx.loop = loop_new();
    ck_assert_ptr_nonnull(fx.loop);
    fx.srv = smtp_server_new(&fx.cfg, fx.loop, &h);
    ck_assert_ptr_nonnull(fx.srv);
    ck_assert_int_eq(smtp_server_listen(fx.srv), 0);
    fx.port = smtp_server_port(fx.srv, 0);
    ck_assert_int_gt(fx.port, 0);
    fx.tls_port = smtp_server_port(fx.srv, 1);
    ck_assert_int_eq(pthread_create(&fx.th, NULL, loop_thread, fx.loop), 0);
}

struct count_req {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    size_t n;
};

static void count_cb(void *arg)
{
    struct count_req *c = arg;
    pthread_mutex_lock(&c->mu);
    c->n = smtp_server_sessions(fx.srv);
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* smtp_server_sessions, asked on the loop thread. */
static size_t server_sessions(void)
{
    struct count_req c = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
    ck_assert_int_eq(loop_post(fx.loop, count_cb, &c), 0);
    pthread_mutex_lock(&c.mu);
    while (!c.done)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    return c.n;
}

static void teardown(void)
{
    if (fx.loop) {
        loop_post(fx.loop, stop_cb, fx.loop);
        pthread_join(fx.th, NULL);
        smtp_server_free(fx.srv);
        loop_free(fx.loop);
    }
    free(fx.rec.msg);
    pthread_mutex_destroy(&fx.rec.mu);
    memset(&fx, 0, sizeof fx);
}

/* ---- the client side ---- */

struct client {
    int fd;
    gnutls_session_t tls;
    gnutls_certificate_credentials_t cred;
    char buf[65536];
    size_t len;
};

static void c_open(struct client *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c->fd, 0);
    struct timeval tv = { 5, 0 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
}

static void c_close(struct client *c)
{
    if (c->tls) {
        gnutls_deinit(c->tls);
        gnutls_certificate_free_credentials(c->cred);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void c_sendn(struct client *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = c->tls ? gnutls_record_send(c->tls, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
        ck_assert_msg(w > 0, "send failed");
        p += w;
        n -= (size_t)w;
    }
}

static void c_send(struct client *c, const char *s) { c_sendn(c, s, strlen(s)); }

/* Fill the buffer; 0 on EOF or timeout. */
static int c_fill(struct client *c)
{
    ssize_t n;
    if (c->len >= sizeof c->buf - 1)
        return 0;
    if (c->tls) {
        do
            n = gnutls_record_recv(c->tls, c->buf + c->len, sizeof c->buf - 1 - c->len);
        while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
    } else {
        n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
    }
    if (n <= 0)
        return 0;
    c->len += (size_t)n;
    return 1;
}

/* One complete reply, its lines joined by '\n' without CRLF; NULL on EOF. */
static char *c_reply(struct client *c)
{
    static char out[8192];
    size_t o = 0;
    out[0] = '\0';
    for (;;) {
        char *lf = memchr(c->buf, '\n', c->len);
        if (!lf) {
            if (!c_fill(c))
                return NULL;
            continue;
        }
        size_t n = (size_t)(lf - c->buf) + 1;
        ck_assert_msg(n >= 2 && lf[-1] == '\r', "reply line without CRLF");
        size_t body = n - 2;
        ck_assert_msg(body >= 3, "short reply line");
        ck_assert(o + body + 2 < sizeof out);
        if (o)
            out[o++] = '\n';
        memcpy(out + o, c->buf, body);
        o += body;
        out[o] = '\0';
        int last = body == 3 || c->buf[3] == ' ';
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
        if (last)
            return out;
    }
}

/* FUTURERELEASE advertises now + 30 days: check that date, then compare
 * the rest of the reply with "<DATE>" in its place. */
static void mask_future_date(char *got)
{
    char *p = strstr(got, "FUTURERELEASE 2592000 ");
    if (!p)
        return;
    p += strlen("FUTURERELEASE 2592000 ");
    struct tm tm = { 0 };
    char *end = strptime(p, "%Y-%m-%dT%H:%M:%SZ", &tm);
    ck_assert_msg(end != NULL, "bad FUTURERELEASE date in \"%s\"", got);
    time_t adv = timegm(&tm), want = time(NULL) + 2592000;
    ck_assert_msg(adv > want - 120 && adv <= want + 1, "FUTURERELEASE date not now + 30 days");
    memmove(p + 6, end, strlen(end) + 1);
    memcpy(p, "<DATE>", 6);
}

static void c_expect(struct client *c, const char *want)
{
    char *got = c_reply(c);
    ck_assert_msg(got != NULL, "connection closed, wanted \"%s\"", want);
    mask_future_date(got);
    ck_assert_str_eq(got, want);
}

/* Transcript: NULL-terminated pairs { client says, server answers }; a
 * NULL "says" only reads; a "" answer expects nothing (pipelining). */
struct step {
    const char *say, *answer;
};

static void c_script(struct client *c, const struct step *st)
{
    for (; st->say || st->answer; st++) {
        if (st->say)
            c_send(c, st->say);
        if (st->answer && *st->answer)
            c_expect(c, st->answer);
    }
}

static void c_expect_eof(struct client *c)
{
    ck_assert_msg(c_reply(c) == NULL, "expected the server to close");
}

static void c_starttls(struct client *c)
{
    ck_assert_int_eq(gnutls_certificate_allocate_credentials(&c->cred), 0);
    ck_assert_int_eq(gnutls_init(&c->tls, GNUTLS_CLIENT), 0);
    ck_assert_int_eq(gnutls_set_default_priority(c->tls), 0);
    ck_assert_int_eq(gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred), 0);
    gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, "localhost", 9);
    gnutls_transport_set_int(c->tls, c->fd);
    int r;
    do
        r = gnutls_handshake(c->tls);
    while (r < 0 && !gnutls_error_is_fatal(r));
    ck_assert_msg(r == 0, "client handshake: %s", gnutls_strerror(r));
}

static const char *ehlo_reply =
    "250-mx.test\n250-PIPELINING\n250-SIZE 100000\n250-8BITMIME\n"
    "250-ENHANCEDSTATUSCODES\n250-SMTPUTF8\n250-DSN\n"
    "250 FUTURERELEASE 2592000 <DATE>";

static void hello(struct client *c)
{
    c_open(c, fx.port);
    c_expect(c, "220 mx.test ESMTP untild");
    c_send(c, "EHLO client.test\r\n");
    ck_assert_ptr_nonnull(c_reply(c));
}

static int rec_nmsgs(void)
{
    pthread_mutex_lock(&fx.rec.mu);
    int n = fx.rec.nmsgs;
    pthread_mutex_unlock(&fx.rec.mu);
    return n;
}

/* ---- tests ---- */

START_TEST(test_ehlo_keywords)
{
    struct client c;
    server_start();
    c_open(&c, fx.port);
    const struct step st[] = {
        { NULL, "220 mx.test ESMTP untild" },
        { "EHLO client.test\r\n", ehlo_reply },
        { "HELO client.test\r\n", "250 mx.test" },
        { "EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname" },
        { "NOOP\r\n", "250 2.0.0 Ok" },
        { "VRFY bob\r\n", "252 2.1.5 Cannot VRFY user, but will accept message" },
        { "STARTTLS\r\n", "502 5.5.1 Error: command not implemented" },
        { "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", "503 5.5.1 Error: authentication not enabled" },
        { "QUIT\r\n", "221 2.0.0 Bye" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_expect_eof(&c);
    c_close(&c);
    c_open(&c, fx.port);
    c_expect(&c, "220 mx.test ESMTP untild");
    c_send(&c, "HELP\r\n");
    char *r = c_reply(&c);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(strncmp(r, "214 2.0.0 ", 10) == 0, "%s", r);
    c_close(&c);
}
END_TEST

START_TEST(test_transaction)
{
    struct client c;
    server_start();
    hello(&c);
    const struct step st[] = {
        { "MAIL FROM:<c@d> BODY=8BITMIME\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<a@b> NOTIFY=NEVER\r\n", "250 2.1.5 Ok" },
        { "RCPT TO:<j\xc3\xbcrgen@b\xc3\xbc" "cher.example>\r\n", "250 2.1.5 Ok" },
        { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>" },
        { "Subject: t\r\n\r\n..leading dot\r\nbare\nlf\r\n"
          "caf\xc3\xa9\r\n..\r\n.\r\n", "250 2.0.0 Ok: queued" },
        { "QUIT\r\n", "221 2.0.0 Bye" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_expect_eof(&c);
    c_close(&c);
    ck_assert_int_eq(fx.rec.nmsgs, 1);
    ck_assert_str_eq(fx.rec.msg, "Subject: t\r\n\r\n.leading dot\r\nbare\r\nlf\r\n"
                                 "caf\xc3\xa9\r\n.\r\n");
    ck_assert_str_eq(fx.rec.from, "c@d");
    ck_assert_str_eq(fx.rec.mail_params, "BODY=8BITMIME");
    ck_assert_str_eq(fx.rec.rcpts, "a@b NOTIFY=NEVER,j\xc3\xbcrgen@b\xc3\xbc" "cher.example");
}
END_TEST

/* RFC 5321 2.3.8: a CR not part of CRLF is refused (550 5.6.0), never
 * passed on (it may end a line for the next server) nor rewritten; the
 * session goes on. */
START_TEST(test_bare_cr_refused)
{
    struct client c;
    server_start();
    hello(&c);
    const struct step st[] = {
        { "MAIL FROM:<c@d>\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<a@b>\r\n", "250 2.1.5 Ok" },
        { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>" },
        { "Subject: t\r\n\r\ncr\rin the middle\r\n.\r\n",
          "550 5.6.0 Message contains a bare CR (RFC 5321 2.3.8): not accepted" },
        { "MAIL FROM:<c@d>\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<a@b>\r\n", "250 2.1.5 Ok" },
        { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>" },
        { "ends in CR\r\r\n.\r\n", "550 5.6.0 Message contains a bare CR (RFC 5321 2.3.8): not accepted" },
        { "MAIL FROM:<c@d>\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<a@b>\r\n", "250 2.1.5 Ok" },
        { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>" },
        { "clean\r\n.\r\n", "250 2.0.0 Ok: queued" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_close(&c);
    ck_assert_int_eq(rec_nmsgs(), 1);
    ck_assert_str_eq(fx.rec.msg, "clean\r\n");
}
END_TEST

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A refused AUTH is answered after auth_failure_delay; pipelined guesses
 * wait their turn; other clients are served meanwhile; LIMITED closes. */
START_TEST(test_auth_failure_delay)
{
    struct client c, d;
    fx.cfg.auth = AUTH_PASSWD;
    fx.cfg.auth_failure_delay = 1;
    server_start();
    c_open(&c, fx.port);
    c_expect(&c, "220 mx.test ESMTP untild");
    c_send(&c, "EHLO x\r\n");
    ck_assert_ptr_nonnull(c_reply(&c));
    double t0 = now_s();
    /* \0bob\0wrong, twice, pipelined */
    c_send(&c, "AUTH PLAIN AGJvYgB3cm9uZw==\r\nAUTH PLAIN AGJvYgB3cm9uZw==\r\n");
    c_open(&d, fx.port);
    c_expect(&d, "220 mx.test ESMTP untild");
    ck_assert_msg(now_s() - t0 < 0.5, "greeting waited for the delayed AUTH");
    c_close(&d);
    c_expect(&c, "535 5.7.8 Authentication credentials invalid");
    ck_assert_msg(now_s() - t0 >= 0.9, "refusal not delayed");
    c_expect(&c, "535 5.7.8 Authentication credentials invalid");
    ck_assert_msg(now_s() - t0 >= 1.9, "second refusal not delayed");
    c_send(&c, "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
    c_expect(&c, "235 2.7.0 Authentication successful");     /* success: no delay */
    c_close(&c);

    c_open(&c, fx.port);
    c_expect(&c, "220 mx.test ESMTP untild");
    c_send(&c, "EHLO x\r\n");
    ck_assert_ptr_nonnull(c_reply(&c));
    /* \0bob\0limited: the gate says too many failures */
    c_send(&c, "AUTH PLAIN AGJvYgBsaW1pdGVk\r\nNOOP\r\n");
    c_expect(&c, "421 4.7.0 mx.test Too many authentication failures, try again later");
    c_expect_eof(&c);
    c_close(&c);
}
END_TEST

START_TEST(test_max_sessions_per_address)
{
    struct client a, b, c;
    fx.cfg.max_sessions_per_address = 2;
    server_start();
    c_open(&a, fx.port);
    c_expect(&a, "220 mx.test ESMTP untild");
    c_open(&b, fx.port);
    c_expect(&b, "220 mx.test ESMTP untild");
    c_open(&c, fx.port);
    c_expect(&c, "421 4.7.0 mx.test Error: too many connections from your address");
    c_expect_eof(&c);
    c_close(&c);
    c_send(&a, "QUIT\r\n");
    c_expect(&a, "221 2.0.0 Bye");
    c_expect_eof(&a);
    c_close(&a);
    while (server_sessions() > 1)
        usleep(10000);
    c_open(&c, fx.port);
    c_expect(&c, "220 mx.test ESMTP untild");
    c_close(&c);
    c_close(&b);
}
END_TEST

/* Activity does not keep a session open past session_deadline. */
START_TEST(test_session_deadline)
{
    struct client c;
    fx.cfg.session_deadline = 1;
    server_start();
    hello(&c);
    double t0 = now_s();
    for (;;) {
        c_send(&c, "NOOP\r\n");
        char *r = c_reply(&c);
        ck_assert_ptr_nonnull(r);
        if (!strcmp(r, "421 4.4.2 mx.test Error: session deadline exceeded"))
            break;
        ck_assert_str_eq(r, "250 2.0.0 Ok");
        ck_assert_msg(now_s() - t0 < 5, "no deadline");
        usleep(100000);
    }
    ck_assert_msg(now_s() - t0 >= 0.9, "closed too early");
    c_expect_eof(&c);
    c_close(&c);
    ck_assert_uint_eq(server_sessions(), 0);
}
END_TEST

/* Is one of our descriptors a file under dir (unlinked or not)? */
static int fd_under(const char *dir)
{
    char path[64], target[512];
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (!strncmp(target, dir, strlen(dir)))
            return 1;
    }
    return 0;
}

static int count_entries(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

/* Above spill_threshold the body goes to an unlinked temp file under
 * state_dir and reaches the hook mapped: the same bytes, nothing left. */
START_TEST(test_large_body_spills)
{
    struct client c;
    char dir[] = "/tmp/test_smtp_spill.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    fx.cfg.state_dir = dir;
    fx.cfg.spill_threshold = 4096;
    fx.cfg.max_message_size = 400000;
    fx.rec.data_delay_ms = 300;
    server_start();
    hello(&c);
    c_send(&c, "MAIL FROM:<c@d>\r\nRCPT TO:<a@b>\r\nDATA\r\n");
    c_expect(&c, "250 2.1.0 Ok");
    c_expect(&c, "250 2.1.5 Ok");
    c_expect(&c, "354 End data with <CR><LF>.<CR><LF>");
    size_t n = 300000, k = 0;
    char *want = malloc(n + 1), line[80];
    while (k + 80 < n) {
        int l = snprintf(line, sizeof line, "%s line %06zu of a large body\r\n", k % 7 ? "" : ".", k);
        c_sendn(&c, line, (size_t)l);
        memcpy(want + k, line + (line[0] == '.'), (size_t)l - (line[0] == '.'));
        k += (size_t)l - (line[0] == '.');
    }
    want[k] = '\0';
    c_send(&c, ".\r\n");
    while (rec_nmsgs() == 0)
        usleep(5000);
    /* the hook has it (and answers 300 ms later): still the temp file */
    ck_assert_msg(fd_under(dir), "the body is not on disk");
    c_expect(&c, "250 2.0.0 Ok: queued");
    ck_assert_msg(!fd_under(dir), "the temp file outlived the transaction");
    ck_assert_uint_eq(fx.rec.msglen, k);
    ck_assert_msg(!memcmp(fx.rec.msg, want, k), "spilled body differs");
    c_send(&c, "QUIT\r\n");
    c_expect(&c, "221 2.0.0 Bye");
    c_close(&c);
    ck_assert_int_eq(count_entries(dir), 0);
    free(want);
    rmdir(dir);
}
END_TEST

START_TEST(test_data_end_needs_crlf)
{
    /* "\n.\n" and "\n.\r\n" must not end DATA (SMTP smuggling). */
    struct client c;
    server_start();
    hello(&c);
    const struct step st[] = {
        { "MAIL FROM:<c@d>\r\nRCPT TO:<a@b>\r\nDATA\r\n", "250 2.1.0 Ok" },
        { NULL, "250 2.1.5 Ok" },
        { NULL, "354 End data with <CR><LF>.<CR><LF>" },
        { "one\n.\ntwo\n.\r\nthree\r\n.\r\n", "250 2.0.0 Ok: queued" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_close(&c);
    ck_assert_str_eq(fx.rec.msg, "one\r\n\r\ntwo\r\n\r\nthree\r\n");
}
END_TEST

START_TEST(test_pipelining)
{
    struct client c;
    server_start();
    hello(&c);
    /* Everything in one write, including the message and QUIT: the server
     * must pause while the data hook runs and go on afterwards. */
    c_send(&c, "MAIL FROM:<> SIZE=100\r\nRCPT TO:<a@b>\r\nRCPT TO:<reject@x>\r\n"
               "RCPT TO:<e@f>\r\nDATA\r\nhello\r\n.\r\nNOOP\r\nQUIT\r\n");
    const struct step st[] = {
        { NULL, "250 2.1.0 Ok" },
        { NULL, "250 2.1.5 Ok" },
        { NULL, "550 5.7.1 quiet" },
        { NULL, "250 2.1.5 Ok" },
        { NULL, "354 End data with <CR><LF>.<CR><LF>" },
        { NULL, "250 2.0.0 Ok: queued" },
        { NULL, "250 2.0.0 Ok" },
        { NULL, "221 2.0.0 Bye" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_expect_eof(&c);
    c_close(&c);
    ck_assert_str_eq(fx.rec.from, "");     /* the null sender */
    ck_assert_str_eq(fx.rec.mail_params, "SIZE=100");
    ck_assert_str_eq(fx.rec.rcpts, "a@b,e@f");
    ck_assert_str_eq(fx.rec.msg, "hello\r\n");
}
END_TEST

START_TEST(test_long_command_line)
{
    struct client c;
    char line[2100];
    server_start();
    hello(&c);
    memset(line, 'A', sizeof line);
    memcpy(line, "NOOP ", 5);
    strcpy(line + 2000, "\r\n");
    c_send(&c, line);
    c_expect(&c, "500 5.5.2 Line too long");
    /* exactly 512 octets with CRLF is fine */
    memset(line, 'x', 510);
    memcpy(line, "NOOP ", 5);
    strcpy(line + 510, "\r\n");
    const struct step st[] = {
        { line, "250 2.0.0 Ok" },
        { "NOOP\r\n", "250 2.0.0 Ok" },
        { "MAIL FROM:<c@d>\r\n", "250 2.1.0 Ok" },
        { NULL, NULL },
    };
    c_script(&c, st);
    /* 513 octets is not */
    memset(line, 'x', 511);
    memcpy(line, "NOOP ", 5);
    strcpy(line + 511, "\r\n");
    c_send(&c, line);
    c_expect(&c, "500 5.5.2 Line too long");
    c_send(&c, "RCPT TO:<a@b>\r\n");
    c_expect(&c, "250 2.1.5 Ok");
    c_close(&c);
}
END_TEST

START_TEST(test_message_too_big)
{
    struct client c;
    char big[3000];
    fx.cfg.max_message_size = 1000;
    server_start();
    c_open(&c, fx.port);
    c_expect(&c, "220 mx.test ESMTP untild");
    c_send(&c, "EHLO x\r\n");
    char *r = c_reply(&c);
    ck_assert_ptr_nonnull(strstr(r, "250-SIZE 1000\n"));
    const struct step st[] = {
        { "MAIL FROM:<c@d> SIZE=1001\r\n", "552 5.3.4 Message size exceeds fixed limit" },
        { "MAIL FROM:<c@d> SIZE=x\r\n", "501 5.5.4 Bad SIZE parameter" },
        { "MAIL FROM:<c@d> SIZE=1000\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<a@b>\r\n", "250 2.1.5 Ok" },
        { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>" },
        { NULL, NULL },
    };
    c_script(&c, st);
    for (int i = 0; i < 30; i++) {
        memset(big, 'b', 98);
        strcpy(big + 98, "\r\n");
        c_send(&c, big);
    }
    c_send(&c, ".\r\n");
    c_expect(&c, "552 5.3.4 Message too big");
    ck_assert_int_eq(rec_nmsgs(), 0);
    /* the session goes on; the transaction is gone */
    const struct step st2[] = {
        { "RCPT TO:<a@b>\r\n", "503 5.5.1 Error: need MAIL command" },
        { "MAIL FROM:<c@d>\r\nRCPT TO:<a@b>\r\nDATA\r\nsmall\r\n.\r\n", "250 2.1.0 Ok" },
        { NULL, "250 2.1.5 Ok" },
        { NULL, "354 End data with <CR><LF>.<CR><LF>" },
        { NULL, "250 2.0.0 Ok: queued" },
        { NULL, NULL },
    };
    c_script(&c, st2);
    c_close(&c);
    ck_assert_int_eq(fx.rec.nmsgs, 1);
}
END_TEST

START_TEST(test_long_data_line)
{
    struct client c;
    char line[1600];
    server_start();
    hello(&c);
    const struct step st[] = {
        { "MAIL FROM:<c@d>\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<a@b>\r\n", "250 2.1.5 Ok" },
        { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_send(&c, "ok line\r\n");
    memset(line, 'L', 1500);
    strcpy(line + 1500, "\r\n");
    c_send(&c, line);
    c_send(&c, "after\r\n.\r\n");
    c_expect(&c, "500 5.5.2 Line too long");
    ck_assert_int_eq(rec_nmsgs(), 0);
    /* a 1000-octet line (998 + CRLF) is fine */
    memset(line, 'L', 998);
    strcpy(line + 998, "\r\n");
    const struct step st2[] = {
        { "MAIL FROM:<c@d>\r\nRCPT TO:<a@b>\r\nDATA\r\n", "250 2.1.0 Ok" },
        { NULL, "250 2.1.5 Ok" },
        { NULL, "354 End data with <CR><LF>.<CR><LF>" },
        { line, "" },
        { ".\r\n", "250 2.0.0 Ok: queued" },
        { NULL, NULL },
    };
    c_script(&c, st2);
    c_close(&c);
    ck_assert_uint_eq(fx.rec.msglen, 1000);
}
END_TEST

/* Review: a "." right after an over-long DATA line must end the message
 * (it used to be ignored, so the client waited for the timeout). */
START_TEST(test_long_data_line_then_dot)
{
    struct client c;
    char line[1600];
    server_start();
    hello(&c);
    const struct step st[] = {
        { "MAIL FROM:<c@d>\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<a@b>\r\n", "250 2.1.5 Ok" },
        { "DATA\r\n", "354 End data with <CR><LF>.<CR><LF>" },
        { NULL, NULL },
    };
    c_script(&c, st);
    memset(line, 'L', 1500);
    strcpy(line + 1500, "\r\n");
    c_send(&c, line);
    c_send(&c, ".\r\n");
    c_expect(&c, "500 5.5.2 Line too long");
    /* the session goes on */
    c_send(&c, "NOOP\r\n");
    c_expect(&c, "250 2.0.0 Ok");
    c_close(&c);
    ck_assert_int_eq(rec_nmsgs(), 0);
}
END_TEST

/* Review: a quoted pair must not carry a control character (a bare CR in
 * the path would reach the upstream's MAIL/RCPT line). */
START_TEST(test_path_quoted_pair_ctl)
{
    struct client c;
    server_start();
    hello(&c);
    const struct step st[] = {
        { "MAIL FROM:<\"a\\\rb\"@d>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>" },
        { "MAIL FROM:<\"a\\ b\"@d>\r\n", "250 2.1.0 Ok" },
        { "RCPT TO:<\"x\\\ty\"@b>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>" },
        { "RCPT TO:<\"x\\\"y\"@b>\r\n", "250 2.1.5 Ok" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_close(&c);
}
END_TEST

/* Review: SASLprep forbids control characters in the user name; a CR/LF
 * there would reach notice headers. */
START_TEST(test_auth_user_ctl)
{
    struct client c;
    fx.cfg.auth = AUTH_PASSWD;
    server_start();
    c_open(&c, fx.port);
    const struct step st[] = {
        { NULL, "220 mx.test ESMTP untild" },
        { "EHLO x\r\n", "" },
        { NULL, NULL },
    };
    c_script(&c, st);
    ck_assert_ptr_nonnull(c_reply(&c));
    const struct step st2[] = {
        /* \0bo\r\nb\0secret */
        { "AUTH PLAIN AGJvDQpiAHNlY3JldA==\r\n", "501 5.5.2 Malformed PLAIN response" },
        /* LOGIN user "a\nb" */
        { "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6" },
        { "YQpi\r\n", "501 5.5.2 Cannot decode response" },
        { "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", "235 2.7.0 Authentication successful" },
        { NULL, NULL },
    };
    c_script(&c, st2);
    c_close(&c);
    ck_assert_int_eq(fx.rec.nauth, 1);
    ck_assert_str_eq(fx.rec.user, "bob");
}
END_TEST

START_TEST(test_sequence_and_syntax)
{
    struct client c;
    server_start();
    c_open(&c, fx.port);
    const struct step st[] = {
        { NULL, "220 mx.test ESMTP untild" },
        { "MAIL FROM:<c@d>\r\n", "503 5.5.1 Error: send HELO/EHLO first" },
        { "EHLO x\r\n", ehlo_reply },
        { "RCPT TO:<a@b>\r\n", "503 5.5.1 Error: need MAIL command" },
        { "DATA\r\n", "503 5.5.1 Error: need MAIL command" },
        { "MAIL FROM:c@d\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>" },
        { "MAIL TO:<c@d>\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>" },
        { "MAIL FROM: <c@d>\r\n", "250 2.1.0 Ok" },          /* lenient */
        { "MAIL FROM:<c@d>\r\n", "503 5.5.1 Error: nested MAIL command" },
        { "DATA\r\n", "503 5.5.1 Error: need RCPT command" },
        { "RCPT TO:<>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>" },
        { "RCPT TO:<a b@c>\r\n", "501 5.5.4 Syntax: RCPT TO:<address>" },
        { "RCPT TO:<\"a b\"@c>\r\n", "250 2.1.5 Ok" },
        { "RSET\r\n", "250 2.0.0 Ok" },
        { "RCPT TO:<a@b>\r\n", "503 5.5.1 Error: need MAIL command" },
        { "FOO bar\r\n", "500 5.5.1 Error: command not recognized" },
        { "mail from:<x@y>\r\n", "250 2.1.0 Ok" },           /* case-insensitive */
        { "rcpt to:<reject@x>\r\n", "550 5.7.1 quiet" },
        { "DATA\r\n", "503 5.5.1 Error: need RCPT command" },
        { "QUIT\r\n", "221 2.0.0 Bye" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_expect_eof(&c);
    c_close(&c);
    ck_assert_int_eq(fx.rec.nmsgs, 0);
}
END_TEST

START_TEST(test_rcpt_limit)
{
    struct client c;
    static char buf[1001 * 24];
    server_start();
    hello(&c);
    c_send(&c, "MAIL FROM:<c@d>\r\n");
    c_expect(&c, "250 2.1.0 Ok");
    size_t n = 0;
    for (int i = 0; i < 1001; i++)
        n += (size_t)sprintf(buf + n, "RCPT TO:<r%d@x>\r\n", i);
    c_sendn(&c, buf, n);
    for (int i = 0; i < 1000; i++)
        c_expect(&c, "250 2.1.5 Ok");
    c_expect(&c, "452 4.5.3 Error: too many recipients");
    c_close(&c);
}
END_TEST

START_TEST(test_auth_required)
{
    struct client c;
    fx.cfg.auth = AUTH_PASSWD;
    server_start();
    c_open(&c, fx.port);
    const struct step st[] = {
        { NULL, "220 mx.test ESMTP untild" },
        { "EHLO x\r\n",
          "250-mx.test\n250-PIPELINING\n250-SIZE 100000\n250-8BITMIME\n"
          "250-ENHANCEDSTATUSCODES\n250-SMTPUTF8\n250-DSN\n250-AUTH PLAIN LOGIN\n"
          "250 FUTURERELEASE 2592000 <DATE>" },
        { "MAIL FROM:<c@d>\r\n", "530 5.7.0 Authentication required" },
        /* \0bob\0wrong */
        { "AUTH PLAIN AGJvYgB3cm9uZw==\r\n", "535 5.7.8 Authentication credentials invalid" },
        { "AUTH PLAIN !!!!\r\n", "501 5.5.2 Cannot decode response" },
        { "AUTH CRAM-MD5\r\n", "504 5.5.4 Unrecognized authentication type" },
        { "AUTH PLAIN\r\n", "334 " },
        { "*\r\n", "501 5.7.0 Authentication aborted" },
        { "AUTH PLAIN\r\n", "334 " },
        { "AGJvYgBzZWNyZXQ=\r\n", "235 2.7.0 Authentication successful" },
        { "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", "503 5.5.1 Error: already authenticated" },
        { "MAIL FROM:<c@d>\r\n", "250 2.1.0 Ok" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_close(&c);
    ck_assert_int_eq(fx.rec.nauth, 2);
    ck_assert_str_eq(fx.rec.user, "bob");
    ck_assert_str_eq(fx.rec.pass, "secret");

    /* AUTH LOGIN, user and password in continuations */
    c_open(&c, fx.port);
    const struct step st2[] = {
        { NULL, "220 mx.test ESMTP untild" },
        { "EHLO x\r\n", "" },
        { NULL, NULL },
    };
    c_script(&c, st2);
    ck_assert_ptr_nonnull(c_reply(&c));
    const struct step st3[] = {
        { "AUTH LOGIN\r\n", "334 VXNlcm5hbWU6" },
        { "YWxpY2U=\r\n", "334 UGFzc3dvcmQ6" },
        { "c2VjcmV0\r\n", "235 2.7.0 Authentication successful" },
        { "MAIL FROM:<alice@d>\r\n", "250 2.1.0 Ok" },
        { NULL, NULL },
    };
    c_script(&c, st3);
    c_close(&c);
    ck_assert_int_eq(fx.rec.nauth, 3);
    ck_assert_str_eq(fx.rec.user, "alice");
}
END_TEST

START_TEST(test_timeout)
{
    struct client c;
    fx.cfg.timeout_command = 1;
    server_start();
    c_open(&c, fx.port);
    c_expect(&c, "220 mx.test ESMTP untild");
    c_send(&c, "EHLO x\r\n");
    ck_assert_ptr_nonnull(c_reply(&c));
    c_expect(&c, "421 4.4.2 mx.test Error: timeout exceeded");
    c_expect_eof(&c);
    c_close(&c);
    ck_assert_uint_eq(server_sessions(), 0);
}
END_TEST

START_TEST(test_max_sessions)
{
    struct client a, b;
    fx.cfg.max_sessions = 1;
    server_start();
    c_open(&a, fx.port);
    c_expect(&a, "220 mx.test ESMTP untild");
    c_open(&b, fx.port);
    c_expect(&b, "421 4.7.0 mx.test Error: too many connections");
    c_expect_eof(&b);
    c_close(&b);
    c_send(&a, "NOOP\r\n");
    c_expect(&a, "250 2.0.0 Ok");
    c_close(&a);
}
END_TEST

START_TEST(test_peer_gone_during_hook)
{
    struct client c;
    fx.rec.data_delay_ms = 300;
    server_start();
    hello(&c);
    c_send(&c, "MAIL FROM:<c@d>\r\nRCPT TO:<a@b>\r\nDATA\r\nx\r\n.\r\n");
    c_expect(&c, "250 2.1.0 Ok");
    c_expect(&c, "250 2.1.5 Ok");
    c_expect(&c, "354 End data with <CR><LF>.<CR><LF>");
    usleep(50 * 1000);
    ck_assert_int_eq(rec_nmsgs(), 1);
    c_close(&c);           /* while the hook still holds the session */
    usleep(100 * 1000);
    ck_assert_uint_eq(server_sessions(), 1);
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&fx.rec.mu);
        int done = fx.rec.ndone;
        pthread_mutex_unlock(&fx.rec.mu);
        if (done)
            break;
        usleep(20 * 1000);
    }
    ck_assert_uint_eq(server_sessions(), 0);
}
END_TEST

static void tls_config(void)
{
    fx.cfg.tls_cert = certfile;
    fx.cfg.tls_key = keyfile;
}

START_TEST(test_starttls)
{
    struct client c;
    tls_config();
    fx.cfg.auth = AUTH_PASSWD;
    server_start();
    c_open(&c, fx.port);
    c_expect(&c, "220 mx.test ESMTP untild");
    c_send(&c, "EHLO x\r\n");
    char *r = c_reply(&c);
    ck_assert_ptr_nonnull(strstr(r, "\n250-STARTTLS\n"));
    const struct step st[] = {
        { "MAIL FROM:<c@d>\r\n", "530 5.7.0 Authentication required" },
        /* the NOOP pipelined in the clear must be thrown away */
        { "STARTTLS\r\nNOOP\r\n", "220 2.0.0 Ready to start TLS" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_starttls(&c);
    const struct step st2[] = {
        { "MAIL FROM:<c@d>\r\n", "503 5.5.1 Error: send HELO/EHLO first" },
        { "EHLO x\r\n",
          "250-mx.test\n250-PIPELINING\n250-SIZE 100000\n250-8BITMIME\n"
          "250-ENHANCEDSTATUSCODES\n250-SMTPUTF8\n250-DSN\n250-AUTH PLAIN LOGIN\n"
          "250 FUTURERELEASE 2592000 <DATE>" },
        { "STARTTLS\r\n", "503 5.5.1 Error: TLS already active" },
        { "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", "235 2.7.0 Authentication successful" },
        { "MAIL FROM:<c@d>\r\nRCPT TO:<a@b>\r\nDATA\r\n", "250 2.1.0 Ok" },
        { NULL, "250 2.1.5 Ok" },
        { NULL, "354 End data with <CR><LF>.<CR><LF>" },
        { "secret stuff\r\n.\r\n", "250 2.0.0 Ok: queued" },
        { "QUIT\r\n", "221 2.0.0 Bye" },
        { NULL, NULL },
    };
    c_script(&c, st2);
    c_close(&c);
    ck_assert_str_eq(fx.rec.msg, "secret stuff\r\n");
}
END_TEST

START_TEST(test_implicit_tls)
{
    struct client c;
    static char l1[] = "127.0.0.1:0";
    tls_config();
    fx.cfg.listen_tls[0] = l1;
    fx.cfg.nlisten_tls = 1;
    server_start();
    ck_assert_int_gt(fx.tls_port, 0);
    ck_assert_int_ne(fx.tls_port, fx.port);
    c_open(&c, fx.tls_port);
    c_starttls(&c);
    const struct step st[] = {
        { NULL, "220 mx.test ESMTP untild" },
        { "EHLO x\r\n", ehlo_reply },     /* no STARTTLS once in TLS */
        { "MAIL FROM:<c@d>\r\nRCPT TO:<a@b>\r\nDATA\r\nimplicit\r\n.\r\nQUIT\r\n",
          "250 2.1.0 Ok" },
        { NULL, "250 2.1.5 Ok" },
        { NULL, "354 End data with <CR><LF>.<CR><LF>" },
        { NULL, "250 2.0.0 Ok: queued" },
        { NULL, "221 2.0.0 Bye" },
        { NULL, NULL },
    };
    c_script(&c, st);
    c_close(&c);
    ck_assert_str_eq(fx.rec.msg, "implicit\r\n");
}
END_TEST

START_TEST(test_tls_garbage_handshake)
{
    /* A plaintext client on the TLS port: the handshake fails, the session
     * is closed and freed. */
    struct client c;
    static char l1[] = "127.0.0.1:0";
    tls_config();
    fx.cfg.listen_tls[0] = l1;
    fx.cfg.nlisten_tls = 1;
    server_start();
    c_open(&c, fx.tls_port);
    c_send(&c, "EHLO x\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n");
    char tmp[256];
    ssize_t n;
    while ((n = recv(c.fd, tmp, sizeof tmp, 0)) > 0)
        ;
    /* closed (FIN, or RST for our unread bytes), not timed out */
    ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
    c_close(&c);
    usleep(50 * 1000);
    ck_assert_uint_eq(server_sessions(), 0);
}
END_TEST

START_TEST(test_swaks)
{
    char cmd[256];
    if (system("command -v swaks >/dev/null 2>&1") != 0) {
        fprintf(stderr, "swaks not installed: skipped\n");
        return;
    }
    server_start();
    snprintf(cmd, sizeof cmd,
             "swaks --server 127.0.0.1:%d --to a@b --from c@d --helo t.test "
             "--timeout 10 >/dev/null 2>&1", fx.port);
    int st = system(cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "swaks failed: %d", st);
    ck_assert_int_eq(rec_nmsgs(), 1);
    ck_assert_str_eq(fx.rec.rcpts, "a@b");
    ck_assert_ptr_nonnull(strstr(fx.rec.msg, "\r\nSubject: test "));
}
END_TEST

START_TEST(test_listen_errors)
{
    static char bad[] = "127.0.0.1", bad6[] = "[::1:25", ok[] = "127.0.0.1:0";
    struct smtp_hooks h = { 0 };
    struct loop *l = loop_new();
    ck_assert_ptr_nonnull(l);
    const char *addrs[] = { bad, bad6 };
    for (size_t i = 0; i < 2; i++) {
        fx.cfg.listen[0] = (char *)addrs[i];
        struct smtp_server *srv = smtp_server_new(&fx.cfg, l, &h);
        ck_assert_ptr_nonnull(srv);
        ck_assert_int_eq(smtp_server_listen(srv), -1);
        smtp_server_free(srv);
    }
    /* listen_tls without a certificate */
    fx.cfg.listen[0] = ok;
    fx.cfg.listen_tls[0] = ok;
    fx.cfg.nlisten_tls = 1;
    struct smtp_server *srv = smtp_server_new(&fx.cfg, l, &h);
    ck_assert_ptr_nonnull(srv);
    ck_assert_int_eq(smtp_server_listen(srv), -1);
    smtp_server_free(srv);
    /* a certificate file that does not exist */
    static char nofile[] = "/nonexistent/cert.pem";
    fx.cfg.tls_cert = fx.cfg.tls_key = nofile;
    ck_assert_ptr_null(smtp_server_new(&fx.cfg, l, &h));
    loop_free(l);
}
END_TEST

/* ---- a self-signed certificate, made with GnuTLS ---- */

static int write_file(const char *path, const gnutls_datum_t *d)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t w = fwrite(d->data, 1, d->size, f);
    return (fclose(f) == 0 && w == d->size) ? 0 : -1;
}

static int make_cert(void)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    gnutls_datum_t out;
    unsigned char serial[1] = { 1 };
    time_t now = time(NULL);
    int ok = -1;

    snprintf(certdir, sizeof certdir, "/tmp/test_smtp_server.XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    snprintf(certfile, sizeof certfile, "%s/cert.pem", certdir);
    snprintf(keyfile, sizeof keyfile, "%s/key.pem", certdir);
    if (gnutls_x509_privkey_init(&key) < 0)
        return -1;
    if (gnutls_x509_crt_init(&crt) < 0) {
        gnutls_x509_privkey_deinit(key);
        return -1;
    }
    if (gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0 ||
        gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, serial, sizeof serial) < 0 ||
        gnutls_x509_crt_set_activation_time(crt, now - 86400) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, now + 86400 * 30) < 0 ||
        gnutls_x509_crt_set_dn(crt, "CN=localhost", NULL) < 0 ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                             GNUTLS_FSAN_SET) < 0 ||
        gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0)
        goto out;
    if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out) < 0)
        goto out;
    int r = write_file(certfile, &out);
    gnutls_free(out.data);
    if (r < 0 || gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &out) < 0)
        goto out;
    r = write_file(keyfile, &out);
    gnutls_free(out.data);
    ok = r;
out:
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    return ok;
}

static Suite *smtp_suite(void)
{
    Suite *s = suite_create("smtp_server");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ehlo_keywords);
    tcase_add_test(tc, test_transaction);
    tcase_add_test(tc, test_data_end_needs_crlf);
    tcase_add_test(tc, test_bare_cr_refused);
    tcase_add_test(tc, test_auth_failure_delay);
    tcase_add_test(tc, test_max_sessions_per_address);
    tcase_add_test(tc, test_session_deadline);
    tcase_add_test(tc, test_large_body_spills);
    tcase_add_test(tc, test_pipelining);
    tcase_add_test(tc, test_long_command_line);
    tcase_add_test(tc, test_message_too_big);
    tcase_add_test(tc, test_long_data_line);
    tcase_add_test(tc, test_long_data_line_then_dot);
    tcase_add_test(tc, test_path_quoted_pair_ctl);
    tcase_add_test(tc, test_auth_user_ctl);
    tcase_add_test(tc, test_sequence_and_syntax);
    tcase_add_test(tc, test_rcpt_limit);
    tcase_add_test(tc, test_auth_required);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_max_sessions);
    tcase_add_test(tc, test_peer_gone_during_hook);
    tcase_add_test(tc, test_starttls);
    tcase_add_test(tc, test_implicit_tls);
    tcase_add_test(tc, test_tls_garbage_handshake);
    tcase_add_test(tc, test_swaks);
    tcase_add_test(tc, test_listen_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    setenv("TZ", "UTC", 1);
    log_set_level(getenv("UNTILD_TEST_VERBOSE") ? ULOG_DEBUG : ULOG_WARN);
    if (make_cert() < 0) {
        fprintf(stderr, "cannot make a test certificate\n");
        return 1;
    }
    SRunner *sr = srunner_create(smtp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unlink(certfile);
    unlink(keyfile);
    rmdir(certdir);
    return failed ? 1 : 0;
}
