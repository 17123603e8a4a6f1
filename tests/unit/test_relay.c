/* test_relay.c - relay against a real upstream on 127.0.0.1.
 *
 * The upstream is aiosmtpd under /usr/bin/python3 (the script is embedded
 * below): it stores each message's bytes and envelope in a directory,
 * counts TCP connections, refuses recipients starting with "bad" (550),
 * answers 451 to DATA when the sender starts with "tempfail", and accepts
 * AUTH alice/secret. Each test starts its own server on a free port and
 * kills it by PID. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "untild/config.h"
#include "untild/loop.h"
#include "untild/relay.h"

static const char PEER_PY[] =
    "import asyncio, os, sys\n"
    "from aiosmtpd.smtp import SMTP, AuthResult\n"
    "port = int(sys.argv[1]); out = sys.argv[2]\n"
    "class H:\n"
    "    n = 0\n"
    "    async def handle_RCPT(self, server, session, envelope, address, opts):\n"
    "        if address.startswith('bad'):\n"
    "            return '550 5.1.1 <%s>: no such user here' % address\n"
    "        envelope.rcpt_tos.append(address)\n"
    "        return '250 2.1.5 Ok'\n"
    "    async def handle_DATA(self, server, session, envelope):\n"
    "        if envelope.mail_from.startswith('tempfail'):\n"
    "            return '451 4.3.0 try again later, please'\n"
    "        H.n += 1\n"
    "        base = os.path.join(out, 'msg%d' % H.n)\n"
    "        with open(base + '.env', 'w') as f:\n"
    "            f.write(envelope.mail_from + '\\n' + '\\n'.join(envelope.rcpt_tos) + '\\n')\n"
    "        with open(base + '.tmp', 'wb') as f:\n"
    "            f.write(envelope.original_content)\n"
    "        os.rename(base + '.tmp', base + '.eml')\n"
    "        return '250 2.0.0 Ok: queued as Q%d' % H.n\n"
    "def auth(server, session, envelope, mechanism, data):\n"
    "    ok = data.login == b'alice' and data.password == b'secret'\n"
    "    return AuthResult(success=ok, handled=False)\n"
    "class S(SMTP):\n"
    "    def connection_made(self, transport):\n"
    "        with open(os.path.join(out, 'conns'), 'a') as f:\n"
    "            f.write('c\\n')\n"
    "        super().connection_made(transport)\n"
    "async def main():\n"
    "    loop = asyncio.get_running_loop()\n"
    "    srv = await loop.create_server(lambda: S(H(), authenticator=auth,\n"
    "        auth_require_tls=False, decode_data=False), '127.0.0.1', port)\n"
    "    open(os.path.join(out, 'ready'), 'w').close()\n"
    "    await srv.serve_forever()\n"
    "asyncio.run(main())\n";

struct peer {
    pid_t pid;
    int port;
    char dir[64];
};

/* The peer of the running test case: started and stopped in the parent
 * (unchecked fixture), so it is killed even when a test fails. */
static struct peer P;

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &al), 0);
    close(s);
    return ntohs(a.sin_port);
}

static void make_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/test_relay.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void peer_start(struct peer *p)
{
    char port[16], ready[128], err[128];
    make_dir(p->dir, sizeof p->dir);
    p->port = free_port();
    snprintf(port, sizeof port, "%d", p->port);
    snprintf(ready, sizeof ready, "%s/ready", p->dir);
    snprintf(err, sizeof err, "%s/py.err", p->dir);
    p->pid = fork();
    ck_assert_int_ge(p->pid, 0);
    if (p->pid == 0) {
        int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        execl("/usr/bin/python3", "python3", "-c", PEER_PY, port, p->dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (access(ready, F_OK) == 0)
            return;
        int st;
        ck_assert_msg(waitpid(p->pid, &st, WNOHANG) == 0, "python peer died, see %s", err);
        usleep(20000);
    }
    ck_abort_msg("python peer did not start");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st; (void)flag; (void)f;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void peer_stop(struct peer *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
    rm_tree(p->dir);
}

static void peer_setup(void) { peer_start(&P); }
static void peer_teardown(void) { peer_stop(&P); }

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    size_t k;
    while ((k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap);
            ck_assert_ptr_nonnull(b);
        }
    }
    fclose(f);
    b[n] = '\0';
    *len = n;
    return b;
}

static int count_lines(const char *path)
{
    size_t n;
    char *b = slurp(path, &n);
    if (!b)
        return 0;
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += b[i] == '\n';
    free(b);
    return c;
}

static int count_entries(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (e->d_name[0] == '.' || l < sl || strcmp(e->d_name + l - sl, suffix) != 0)
            continue;
        n++;
    }
    closedir(d);
    return n;
}

/* ---------- collecting results on the loop ---------- */

#define MAXR 128
struct outcome;
struct tag { struct outcome *o; size_t nrc; };  /* one per submitted job */
struct outcome {
    struct loop *l;
    int n, want, timed_out, nsub;
    struct tag tags[MAXR];
    struct { int ok, code, nrc; char text[512]; int rc[4]; } r[MAXR];
    int verdicts[8], nv;
};

static void done_cb(void *arg, struct relay_result *res)
{
    struct tag *tg = arg;
    struct outcome *o = tg->o;
    ck_assert_int_lt(o->n, MAXR);
    ck_assert_ptr_nonnull(res->rcpt_codes);
    o->r[o->n].ok = res->ok;
    o->r[o->n].code = res->code;
    snprintf(o->r[o->n].text, sizeof o->r[o->n].text, "%s", res->text);
    for (size_t i = 0; i < 4; i++)
        o->r[o->n].rc[i] = i < tg->nrc ? res->rcpt_codes[i] : -1;
    if (++o->n == o->want)
        loop_stop(o->l);
}

static int submit(struct relay *r, struct outcome *o, const struct relay_job *j)
{
    ck_assert_int_lt(o->nsub, MAXR);
    struct tag *tg = &o->tags[o->nsub++];
    tg->o = o;
    tg->nrc = j->nrcpts;
    return relay_submit(r, j, done_cb, tg);
}

static void auth_cb(void *arg, int verdict)
{
    struct outcome *o = arg;
    o->verdicts[o->nv++] = verdict;
    if (++o->n == o->want)
        loop_stop(o->l);
}

static void timeout_cb(struct loop *l, uint64_t id, void *arg)
{
    (void)id;
    struct outcome *o = arg;
    o->timed_out = 1;
    loop_stop(l);
}

static void run(struct outcome *o)
{
    uint64_t t = loop_timer(o->l, 30000, timeout_cb, o);
    loop_run(o->l, NULL, NULL);
    loop_timer_del(o->l, t);
    ck_assert_msg(!o->timed_out, "timed out with %d of %d results", o->n, o->want);
}

static void smtp_cfg(struct config *c, char *url, size_t cap, int port)
{
    memset(c, 0, sizeof *c);
    snprintf(url, cap, "smtp://127.0.0.1:%d", port);
    c->upstream_url = url;
    c->upstream_tls = TLS_NONE;
    c->upstream_timeout = 10;
    c->upstream_connections = 2;
    c->hostname = "relay-test.example";
}

static const char PREFIX[] = "X-Untild-Test: yes\r\n";
static const char DATA[] =
    "From: a@example.org\r\n"
    "Subject: dots and bytes\r\n"
    "\r\n"
    ".leading dot\r\n"
    "..two dots\r\n"
    ".\r\n"
    "middle\r\n"
    "8-bit: \xc3\xa4\xff\x80 done\r\n"
    " .not at start\r\n";

/* ---------- tests ---------- */

START_TEST(test_byte_exact)
{
    struct config c;
    char url[64];
    smtp_cfg(&c, url, sizeof url, P.port);
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 1;
    struct relay *r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    const char *rc[] = { "x@example.net", "y@example.net" };
    struct relay_job j = { .mail_from = "a@example.org", .rcpts = rc, .nrcpts = 2,
                           .data = DATA, .len = sizeof DATA - 1, .prefix = PREFIX };
    ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 1);
    ck_assert_int_eq(o->r[0].code, 250);
    ck_assert_str_eq(o->r[0].text, "2.0.0 Ok: queued as Q1");
    ck_assert_int_eq(o->r[0].rc[0], 250);
    ck_assert_int_eq(o->r[0].rc[1], 250);

    char path[128];
    size_t n;
    snprintf(path, sizeof path, "%s/msg1.eml", P.dir);
    char *got = slurp(path, &n);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(n, strlen(PREFIX) + strlen(DATA));
    ck_assert(memcmp(got, PREFIX, strlen(PREFIX)) == 0);
    ck_assert(memcmp(got + strlen(PREFIX), DATA, strlen(DATA)) == 0);
    free(got);
    snprintf(path, sizeof path, "%s/msg1.env", P.dir);
    got = slurp(path, &n);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, "a@example.org\nx@example.net\ny@example.net\n");
    free(got);

    relay_free(r);
    loop_free(o->l);
    free(o);
}
END_TEST

START_TEST(test_connection_reuse)
{
    struct config c;
    char url[64];
    smtp_cfg(&c, url, sizeof url, P.port);
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 100;
    struct relay *r = relay_new(&c, o->l, 2);
    ck_assert_ptr_nonnull(r);
    const char *rc[] = { "x@example.net" };
    struct relay_job j = { .mail_from = "a@example.org", .rcpts = rc, .nrcpts = 1,
                           .data = DATA, .len = sizeof DATA - 1 };
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(o->r[i].ok, 1);
        ck_assert_int_eq(o->r[i].code, 250);
    }
    ck_assert_int_eq(count_entries(P.dir, ".eml"), 100);
    char path[128];
    snprintf(path, sizeof path, "%s/conns", P.dir);
    int conns = count_lines(path);
    ck_assert_int_ge(conns, 1);
    ck_assert_int_le(conns, 2);
    relay_free(r);
    loop_free(o->l);
    free(o);
}
END_TEST

START_TEST(test_one_rcpt_refused)
{
    struct config c;
    char url[64];
    smtp_cfg(&c, url, sizeof url, P.port);
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 1;
    struct relay *r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    const char *rc[] = { "good@example.net", "bad@example.net" };
    struct relay_job j = { .mail_from = "a@example.org", .rcpts = rc, .nrcpts = 2,
                           .data = DATA, .len = sizeof DATA - 1 };
    ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 1);
    ck_assert_int_eq(o->r[0].code, 250);
    ck_assert_int_eq(o->r[0].rc[0], 250);
    ck_assert_int_eq(o->r[0].rc[1], 550);
    char path[128];
    size_t n;
    snprintf(path, sizeof path, "%s/msg1.env", P.dir);
    char *got = slurp(path, &n);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, "a@example.org\ngood@example.net\n");
    free(got);
    relay_free(r);
    loop_free(o->l);
    free(o);
}
END_TEST

/* All recipients refused (libcurl drops the connection), then the same
 * worker must reconnect for the next message. */
START_TEST(test_all_refused_then_reconnect)
{
    struct config c;
    char url[64];
    smtp_cfg(&c, url, sizeof url, P.port);
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 2;
    struct relay *r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    const char *bad[] = { "bad1@example.net", "bad2@example.net" };
    const char *good[] = { "good@example.net" };
    struct relay_job j1 = { .mail_from = "a@example.org", .rcpts = bad, .nrcpts = 2,
                            .data = DATA, .len = sizeof DATA - 1 };
    struct relay_job j2 = { .mail_from = "a@example.org", .rcpts = good, .nrcpts = 1,
                            .data = DATA, .len = sizeof DATA - 1 };
    ck_assert_int_eq(submit(r, o, &j1), 0);
    ck_assert_int_eq(submit(r, o, &j2), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 0);
    ck_assert_int_eq(o->r[0].code, 550);
    ck_assert_str_eq(o->r[0].text, "5.1.1 <bad1@example.net>: no such user here");
    ck_assert_int_eq(o->r[0].rc[0], 550);
    ck_assert_int_eq(o->r[0].rc[1], 550);
    ck_assert_int_eq(o->r[1].ok, 1);
    ck_assert_int_eq(o->r[1].code, 250);
    ck_assert_int_eq(count_entries(P.dir, ".eml"), 1);
    relay_free(r);
    loop_free(o->l);
    free(o);
}
END_TEST

START_TEST(test_data_451)
{
    struct config c;
    char url[64];
    smtp_cfg(&c, url, sizeof url, P.port);
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 1;
    struct relay *r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    const char *rc[] = { "x@example.net" };
    struct relay_job j = { .mail_from = "tempfail@example.org", .rcpts = rc, .nrcpts = 1,
                           .data = DATA, .len = sizeof DATA - 1 };
    ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 0);
    ck_assert_int_eq(o->r[0].code, 451);
    ck_assert_str_eq(o->r[0].text, "4.3.0 try again later, please");
    /* accepted at RCPT, but the message did not go: the rcpt hears 451 */
    ck_assert_int_eq(o->r[0].rc[0], 451);
    ck_assert_int_eq(count_entries(P.dir, ".eml"), 0);
    relay_free(r);
    loop_free(o->l);
    free(o);
}
END_TEST

START_TEST(test_upstream_down)
{
    struct config c;
    char url[64];
    smtp_cfg(&c, url, sizeof url, free_port());   /* nobody listens there */
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 1;
    struct relay *r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    const char *rc[] = { "x@example.net", "y@example.net" };
    struct relay_job j = { .mail_from = "a@example.org", .rcpts = rc, .nrcpts = 2,
                           .data = DATA, .len = sizeof DATA - 1 };
    ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 0);
    ck_assert_int_eq(o->r[0].code, 451);
    ck_assert_msg(strncmp(o->r[0].text, "4.4.1 upstream unavailable: ", 28) == 0,
                  "text: %s", o->r[0].text);
    ck_assert_int_eq(o->r[0].rc[0], 451);
    ck_assert_int_eq(o->r[0].rc[1], 451);
    relay_free(r);
    loop_free(o->l);
    free(o);
}
END_TEST

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Config credentials from password_file; a job's own credentials win. */
START_TEST(test_credentials)
{
    struct config c;
    char url[64], pwbad[128], pwgood[128];
    snprintf(pwbad, sizeof pwbad, "%s/pw-bad", P.dir);
    snprintf(pwgood, sizeof pwgood, "%s/pw-good", P.dir);
    write_file(pwbad, "wrong\n");
    write_file(pwgood, "secret\n");
    const char *rc[] = { "x@example.net" };
    struct relay_job j = { .mail_from = "a@example.org", .rcpts = rc, .nrcpts = 1,
                           .data = DATA, .len = sizeof DATA - 1 };

    smtp_cfg(&c, url, sizeof url, P.port);
    c.upstream_username = "alice";
    c.upstream_password_file = pwbad;
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 2;
    struct relay *r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(submit(r, o, &j), 0);
    struct relay_job jo = j;
    jo.username = "alice";
    jo.password = "secret";
    ck_assert_int_eq(submit(r, o, &jo), 0);
    run(o);
    /* a refused login is about the connection, not the message: 4xx */
    ck_assert_int_eq(o->r[0].ok, 0);
    ck_assert_int_eq(o->r[0].code, 451);
    ck_assert_msg(strstr(o->r[0].text, "535 5.7.8") != NULL, "text: %s", o->r[0].text);
    ck_assert_int_eq(o->r[1].ok, 1);
    relay_free(r);

    c.upstream_password_file = pwgood;
    o->n = o->nsub = 0;
    o->want = 1;
    r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 1);
    relay_free(r);

    /* password_command, run once at start */
    c.upstream_password_file = NULL;
    c.upstream_password_command = "printf 'secret\\n'";
    o->n = o->nsub = 0;
    r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 1);
    relay_free(r);
    ck_assert_int_eq(count_entries(P.dir, ".eml"), 3);

    /* a missing password file is a start-up error */
    c.upstream_password_command = NULL;
    c.upstream_password_file = "/nonexistent/pw";
    ck_assert_ptr_null(relay_new(&c, o->l, 1));

    loop_free(o->l);
    free(o);
}
END_TEST

START_TEST(test_verify)
{
    struct config c;
    char url[64], url2[64];
    smtp_cfg(&c, url, sizeof url, P.port);
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 2;
    struct relay *r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(relay_verify_async(r, "alice", "secret", auth_cb, o), 0);
    ck_assert_int_eq(relay_verify_async(r, "alice", "wrong", auth_cb, o), 0);
    run(o);
    ck_assert_int_eq(o->verdicts[0], 1);
    ck_assert_int_eq(o->verdicts[1], 0);
    relay_free(r);

    smtp_cfg(&c, url2, sizeof url2, free_port());
    o->n = 0;
    o->nv = 0;
    o->want = 1;
    r = relay_new(&c, o->l, 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(relay_verify_async(r, "alice", "secret", auth_cb, o), 0);
    run(o);
    ck_assert_int_eq(o->verdicts[0], -1);
    relay_free(r);
    loop_free(o->l);
    free(o);
}
END_TEST

START_TEST(test_maildir)
{
    char dir[64], md[128], sub[160];
    make_dir(dir, sizeof dir);
    snprintf(md, sizeof md, "%s/out/box", dir);   /* parents get created */
    struct config c;
    memset(&c, 0, sizeof c);
    c.maildir = md;
    c.hostname = "host/with:odd";
    struct outcome *o = calloc(1, sizeof *o);
    o->l = loop_new();
    o->want = 1;
    struct relay *r = relay_new(&c, o->l, 2);
    ck_assert_ptr_nonnull(r);
    const char *rc[] = { "x@example.net", "y@example.net" };
    struct relay_job j = { .mail_from = "a@example.org", .rcpts = rc, .nrcpts = 2,
                           .data = DATA, .len = sizeof DATA - 1, .prefix = PREFIX };
    ck_assert_int_eq(submit(r, o, &j), 0);
    run(o);
    ck_assert_int_eq(o->r[0].ok, 1);
    ck_assert_int_eq(o->r[0].code, 250);
    ck_assert_str_eq(o->r[0].text, "2.0.0 Delivered to maildir");
    ck_assert_int_eq(o->r[0].rc[0], 250);
    ck_assert_int_eq(o->r[0].rc[1], 250);
    relay_free(r);

    snprintf(sub, sizeof sub, "%s/tmp", md);
    ck_assert_int_eq(count_entries(sub, ""), 0);
    snprintf(sub, sizeof sub, "%s/cur", md);
    ck_assert_int_eq(count_entries(sub, ""), 0);
    snprintf(sub, sizeof sub, "%s/new", md);
    ck_assert_int_eq(count_entries(sub, ""), 1);

    DIR *d = opendir(sub);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    char path[512] = "";
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            snprintf(path, sizeof path, "%s/%s", sub, e->d_name);
    closedir(d);
    ck_assert_ptr_null(strchr(strrchr(path, '/') + 1, ':'));
    ck_assert(strstr(path, "host_with_odd") != NULL);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    char want[1024];
    int wn = snprintf(want, sizeof want,
                      "X-Untild-Envelope-From: <a@example.org>\r\n"
                      "X-Untild-Envelope-To: <x@example.net>\r\n"
                      "X-Untild-Envelope-To: <y@example.net>\r\n"
                      "%s%s", PREFIX, DATA);
    size_t n;
    char *got = slurp(path, &n);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(n, (size_t)wn);
    ck_assert(memcmp(got, want, n) == 0);
    free(got);

    loop_free(o->l);
    free(o);
    rm_tree(dir);
}
END_TEST

static Suite *relay_suite(void)
{
    Suite *s = suite_create("relay");
    /* one test case per test: each gets a fresh peer (unchecked fixtures
     * run once per test case) */
    const struct { const char *name; const TTest *t; int peer; } tests[] = {
        { "byte_exact", test_byte_exact, 1 },
        { "connection_reuse", test_connection_reuse, 1 },
        { "one_rcpt_refused", test_one_rcpt_refused, 1 },
        { "all_refused_then_reconnect", test_all_refused_then_reconnect, 1 },
        { "data_451", test_data_451, 1 },
        { "upstream_down", test_upstream_down, 0 },
        { "credentials", test_credentials, 1 },
        { "verify", test_verify, 1 },
        { "maildir", test_maildir, 0 },
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        TCase *tc = tcase_create(tests[i].name);
        tcase_set_timeout(tc, 60);
        if (tests[i].peer)
            tcase_add_unchecked_fixture(tc, peer_setup, peer_teardown);
        tcase_add_test(tc, tests[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(relay_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
