/* smtp_server.c - the ESMTP submission listener (RFC 5321, 6409, 3207,
 * 4954, 1870, 2034, 4865).
 *
 * Synopsis: smtp_server_new() with the gate's hooks, smtp_server_listen()
 * binds every [smtp] listen / listen_tls address on the event loop; each
 * accepted connection becomes a session driven by an explicit state
 * machine (enum sstate) and a command table, as in OpenSMTPD and Postfix.
 *
 * Input is read in 16 KiB chunks into a fixed input buffer and cut into
 * bounded lines (512 octets for commands, 1000 for DATA text lines); an
 * over-long line is discarded up to its LF and answered, and the session
 * goes on. Pipelined commands are processed in order; processing pauses
 * while an asynchronous hook (auth, data) runs and resumes when the hook
 * calls smtp_auth_done / smtp_data_done. A session whose peer goes away
 * during a hook is kept ("dead") until the hook reports back, so the hook's
 * pointer stays valid.
 *
 * STARTTLS (and implicit TLS listeners) use GnuTLS (smtp_server_auth.c,
 * with AUTH); whatever plaintext was
 * pipelined after STARTTLS is thrown away (command injection defence) and
 * the session starts over, EHLO required. AUTH is only offered and accepted
 * over TLS or from loopback. Mail is accepted only from authenticated
 * clients, or from loopback when auth = none: never an open relay.
 *
 * Diagnostics: one info line per session open and close, debug lines for
 * commands (AUTH payloads are never logged), warnings for TLS failures. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include "untild/config.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/smtp_server.h"
#include "untild/tls_self.h"
#include "untild/smtp_server_int.h"
#include "untild/sysutil.h"


static void session_event(struct loop *l, int fd, int events, void *arg);
int smtp_session_pump(struct smtp_session *s);
static void session_expired(struct loop *l, uint64_t id, void *arg);

/* ---- small helpers ---- */

int smtp_out_add(struct smtp_session *s, const char *p, size_t n)
{
    if (s->outlen + n > s->outcap) {
        size_t cap = s->outcap ? s->outcap : 1024;
        while (cap < s->outlen + n)
            cap *= 2;
        char *q = realloc(s->out, cap);
        if (!q) {
            s->io_error = 1;
            return -1;
        }
        s->out = q;
        s->outcap = cap;
    }
    memcpy(s->out + s->outlen, p, n);
    s->outlen += n;
    return 0;
}

/* A reply from a hook: "CODE TEXT", lines separated by '\n'. Each line is
 * re-emitted as "CODE-TEXT" / "CODE TEXT" with CRLF; control characters are
 * replaced so a hook can never inject protocol lines. */
static void reply_hook(struct smtp_session *s, const char *r)
{
    char code[4];
    if (!r || strlen(r) < 3 || !isdigit((unsigned char)r[0]) ||
        !isdigit((unsigned char)r[1]) || !isdigit((unsigned char)r[2]) ||
        (r[0] != '2' && r[0] != '4' && r[0] != '5')) {
        log_error("smtp[%lu]: bad reply from hook", s->id);
        reply(s, "451 4.3.0 Internal error");
        return;
    }
    memcpy(code, r, 3);
    code[3] = '\0';
    const char *p = r;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *text = p;
        size_t tn = n;
        if (n >= 3 && !memcmp(p, code, 3) && (n == 3 || p[3] == ' ' || p[3] == '-')) {
            text = p + (n > 3 ? 4 : 3);
            tn = n - (n > 3 ? 4 : 3);
        }
        int last = !e || !e[1];
        char line[1024];
        if (tn > sizeof line - 8)
            tn = sizeof line - 8;
        memcpy(line, code, 3);
        line[3] = last ? ' ' : '-';
        for (size_t i = 0; i < tn; i++) {
            unsigned char c = (unsigned char)text[i];
            line[4 + i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
        }
        line[4 + tn] = '\r';
        line[5 + tn] = '\n';
        smtp_out_add(s, line, 6 + tn);
        if (!e)
            break;
        p = e + 1;
    }
}

/* The address alone ("192.0.2.1", "2001:db8::1"), for per-address limits. */
static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof host);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof host);
    snprintf(buf, n, "%s", host);
}

static void format_peer(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(buf, n, "%s:%d", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(buf, n, "[%s]:%d", host, port);
    } else {
        snprintf(buf, n, "?");
    }
}

/* No tls_cert/tls_key: the self-signed loopback certificate in state_dir
 * (tls_self.h), so clients that insist on STARTTLS work on a personal
 * install. NULL (STARTTLS not offered) when it is off or cannot be made:
 * the plain listener still serves. */
static struct tls_cred *cred_self_signed(const struct config *c)
{
    static const char *const made[] = { "reused", "made now", "made again" };
    struct tls_self ts;
    if (!c->tls_self_signed || !c->state_dir)
        return NULL;
    if (tls_self_ensure(c->state_dir, time(NULL), &ts) < 0) {
        log_error("smtp: cannot make the self-signed certificate in %s: %s; "
                  "STARTTLS is not offered (set tls_cert and tls_key)", c->state_dir,
                  strerror(errno));
        return NULL;
    }
    if (ts.made == TLS_SELF_RENEWED)
        log_warn("smtp: the old self-signed certificate was replaced (%s): clients "
                 "that trusted it must be given the new one (untilctl onboard)", ts.why);
    struct tls_cred *cred = smtp_tls_cred_load(ts.cert, ts.key);
    if (cred)
        log_info("smtp: STARTTLS with the self-signed certificate %s (%s, for localhost, "
                 "127.0.0.1, ::1) SHA-256 %s", ts.cert, made[ts.made], ts.sha256);
    return cred;
}

/* ---- transaction and session lifetime ---- */

void smtp_txn_reset(struct smtp_session *s)
{
    free(s->env.mail_from);
    free(s->env.mail_params);
    s->env.mail_from = s->env.mail_params = NULL;
    for (size_t i = 0; i < s->env.nrcpts; i++) {
        free(s->env.rcpts[i].addr);
        free(s->env.rcpts[i].params);
    }
    s->env.nrcpts = 0;
    free(s->msg);
    s->msg = NULL;
    s->msglen = s->msgcap = s->staged = 0;
    if (s->map && munmap(s->map, s->maplen) < 0)
        log_warn("smtp[%lu]: munmap: %s", s->id, strerror(errno));
    s->map = NULL;
    s->maplen = 0;
    if (s->spill_fd >= 0)
        close(s->spill_fd);     /* unlinked already: the space goes with it */
    s->spill_fd = -1;
    s->data_toobig = s->data_toolong = s->data_barecr = s->data_ioerr = 0;
    if (s->state == S_MAIL || s->state == S_RCPT || s->state == S_DATA)
        s->state = s->helo_seen ? S_EHLO : S_READY;
}

static void session_close_fd(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;
    if (s->timer) {
        loop_timer_del(srv->loop, s->timer);
        s->timer = 0;
    }
    if (s->life_timer) {
        loop_timer_del(srv->loop, s->life_timer);
        s->life_timer = 0;
    }
    if (s->auth_timer) {
        loop_timer_del(srv->loop, s->auth_timer);
        s->auth_timer = 0;
    }
    if (s->fd >= 0) {
        loop_fd_del(srv->loop, s->fd);
        if (close(s->fd) < 0)
            log_warn("smtp[%lu]: close: %s", s->id, strerror(errno));
        s->fd = -1;
    }
}

void smtp_session_free(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;
    log_info("smtp[%lu]: disconnect from %s commands=%u messages=%u rcpts=%u%s",
             s->id, s->peer, s->ncmds, s->nmsgs, s->nrcpts,
             s->dead ? " (lost during hook)" : "");
    session_close_fd(s);
    if (s->tls)
        gnutls_deinit(s->tls);
    smtp_tls_cred_unref(s->cred);
    s->state = S_CLOSING;
    smtp_txn_reset(s);
    free(s->env.rcpts);
    free(s->env.helo);
    free(s->out);
    wipe_free(s->auth_user);
    wipe_free(s->auth_pass);
    wipe_free(s->user);
    wipe_free(s->pass);
    explicit_bzero(s->in, sizeof s->in);
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    srv->nsessions--;
    free(s);
}

/* The peer is gone or the connection broke. While a hook holds the session
 * it must stay allocated: close the socket and wait for the hook. */
static int session_fail(struct smtp_session *s)
{
    if (s->waiting != W_NONE && s->waiting != W_AUTH_DELAY) {
        s->dead = 1;
        session_close_fd(s);
        return 0;
    }
    smtp_session_free(s);
    return -1;
}

static void session_timeout(struct loop *l, uint64_t id, void *arg);

/* Every pump restarts the timeout. Re-adding a loop timer each time left
 * one dead heap entry per command until its due time (loop_timer_del only
 * marks it), so a busy server scanned thousands of them per command: the
 * bench showed loop_timer_del at 12% of the daemon's CPU. Instead move a
 * deadline, keep the pending timer while it fires no later than the
 * deadline, and let session_timeout re-arm for the remainder. */
static void arm_timer(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;
    int secs = s->state == S_DATA ? srv->timeout_data : srv->timeout_command;
    int64_t now = loop_now_ms();
    s->deadline = now + (int64_t)secs * 1000;
    if (s->timer && s->timer_due <= s->deadline)
        return;
    if (s->timer)
        loop_timer_del(srv->loop, s->timer);
    s->timer_due = s->deadline;
    s->timer = loop_timer(srv->loop, s->deadline - now, session_timeout, s);
}

static void session_timeout(struct loop *l, uint64_t id, void *arg)
{
    struct smtp_session *s = arg;
    (void)l;
    if (id != s->timer)
        return;
    s->timer = 0;
    int64_t now = loop_now_ms();
    if (now < s->deadline) {    /* there was activity since it was set */
        s->timer_due = s->deadline;
        s->timer = loop_timer(s->srv->loop, s->deadline - now, session_timeout, s);
        return;
    }
    if (s->waiting != W_NONE || s->state == S_CLOSING) {
        /* A hook is deciding (its own timeouts apply), or we are only
         * flushing: give the socket another period, then give up. */
        if (s->state == S_CLOSING) {
            session_fail(s);
            return;
        }
        arm_timer(s);
        return;
    }
    log_info("smtp[%lu]: timeout from %s", s->id, s->peer);
    if (s->state != S_TLS && s->state != S_STARTTLS)
        reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->hostname);
    s->state = S_CLOSING;
    s->inlen = 0;
    smtp_session_pump(s);
}

/* ---- low-level I/O ---- */

/* Returns bytes read, 0 for "nothing now", -1 on EOF or error (flags set). */
static ssize_t sock_read(struct smtp_session *s)
{
    size_t room = sizeof s->in - s->inlen;
    if (room > READ_CHUNK)
        room = READ_CHUNK;
    if (room == 0 || s->fd < 0 || s->eof)
        return 0;
    if (s->tls_on) {
        ssize_t n = gnutls_record_recv(s->tls, s->in + s->inlen, room);
        if (n > 0) {
            s->inlen += (size_t)n;
            return n;
        }
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            return 0;
        if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
            s->eof = 1;
        } else {
            log_info("smtp[%lu]: TLS read: %s", s->id, gnutls_strerror((int)n));
            s->io_error = 1;
        }
        return -1;
    }
    ssize_t n = recv(s->fd, s->in + s->inlen, room, 0);
    if (n > 0) {
        s->inlen += (size_t)n;
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n == 0)
        s->eof = 1;
    else
        s->io_error = 1;
    return -1;
}

/* Write as much output as the socket takes. 0 ok (maybe partial), -1 error. */
static int sock_flush(struct smtp_session *s)
{
    while (s->outlen > 0 && s->fd >= 0) {
        ssize_t n;
        if (s->tls_on) {
            n = gnutls_record_send(s->tls, s->out, s->outlen);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                return 0;
            if (n < 0) {
                log_info("smtp[%lu]: TLS write: %s", s->id, gnutls_strerror((int)n));
                s->io_error = 1;
                return -1;
            }
        } else {
            n = send(s->fd, s->out, s->outlen, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return 0;
                s->io_error = 1;
                return -1;
            }
        }
        memmove(s->out, s->out + n, s->outlen - (size_t)n);
        s->outlen -= (size_t)n;
    }
    return 0;
}

/* ---- commands ---- */

struct cmd {
    const char *name;
    void (*fn)(struct smtp_session *s, char *args);
};

static void cmd_ehlo_helo(struct smtp_session *s, char *args, int esmtp)
{
    struct smtp_server *srv = s->srv;
    if (!*args || strchr(args, ' ')) {
        reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
        return;
    }
    smtp_txn_reset(s);
    free(s->env.helo);
    s->env.helo = strdup(args);
    s->helo_seen = 1;
    s->state = S_EHLO;
    if (!esmtp) {
        reply(s, "250 %s", srv->hostname);
        return;
    }
    reply(s, "250-%s", srv->hostname);
    reply(s, "250-PIPELINING");
    if (srv->max_message_size)
        reply(s, "250-SIZE %zu", srv->max_message_size);
    else
        reply(s, "250-SIZE");
    reply(s, "250-8BITMIME");
    reply(s, "250-ENHANCEDSTATUSCODES");
    reply(s, "250-SMTPUTF8");
    reply(s, "250-DSN");
    if (srv->cred && !s->tls_on)
        reply(s, "250-STARTTLS");
    if (smtp_auth_allowed(s))
        reply(s, "250-AUTH PLAIN LOGIN");
    /* RFC 4865: the latest release time we accept, which is now plus the
     * interval (the gate refuses anything later). */
    char until[32];
    time_t lim = time(NULL) + FUTURE_INTERVAL;
    struct tm tm;
    gmtime_r(&lim, &tm);
    strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
    reply(s, "250 FUTURERELEASE %d %s", FUTURE_INTERVAL, until);
}

static void cmd_ehlo(struct smtp_session *s, char *args) { cmd_ehlo_helo(s, args, 1); }
static void cmd_helo(struct smtp_session *s, char *args) { cmd_ehlo_helo(s, args, 0); }

/* Parse "<path> [params]" after "FROM:"/"TO:" (leniently with spaces
 * before '<'). Returns the path (without <>) and params in place, or -1. */
static int parse_path(char *p, char **path, char **params)
{
    while (*p == ' ')
        p++;
    if (*p != '<')
        return -1;
    char *start = ++p;
    int quoted = 0;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f)
            return -1;
        if (quoted && c == '\\' && p[1]) {
            /* the escaped character must pass the same check: a quoted
             * pair must not smuggle a bare CR into the upstream's MAIL/RCPT */
            unsigned char q = (unsigned char)p[1];
            if (q < 0x20 || q == 0x7f)
                return -1;
            p++;
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && (c == '<' || c == ' '))
            return -1;
        else if (!quoted && c == '>')
            break;
    }
    if (*p != '>')
        return -1;
    *p++ = '\0';
    *path = start;
    if (*p && *p != ' ')
        return -1;
    while (*p == ' ')
        p++;
    char *e = p + strlen(p);
    while (e > p && e[-1] == ' ')
        *--e = '\0';
    for (char *q = p; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            return -1;
    *params = *p ? p : NULL;
    return 0;
}

/* SIZE=n among the MAIL parameters: -1 bad syntax, else 0 (*size set or 0). */
static int param_size(const char *params, uintmax_t *size)
{
    *size = 0;
    for (const char *p = params; p && *p;) {
        while (*p == ' ')
            p++;
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 5 && strncasecmp(p, "SIZE=", 5) == 0) {
            uintmax_t v = 0;
            for (size_t i = 5; i < n; i++) {
                if (!isdigit((unsigned char)p[i]) || v > UINTMAX_MAX / 10 - 10)
                    return -1;
                v = v * 10 + (uintmax_t)(p[i] - '0');
            }
            *size = v;
        }
        p += n;
    }
    return 0;
}

static void cmd_mail(struct smtp_session *s, char *args)
{
    struct smtp_server *srv = s->srv;
    char *path, *params;
    if (s->state == S_READY) {
        reply(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (in_txn(s)) {
        reply(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (srv->auth != AUTH_NONE ? !s->user : !s->loopback) {
        reply(s, "530 5.7.0 Authentication required");
        return;
    }
    if (strncasecmp(args, "FROM:", 5) != 0 || parse_path(args + 5, &path, &params) < 0) {
        reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    uintmax_t size;
    if (param_size(params, &size) < 0) {
        reply(s, "501 5.5.4 Bad SIZE parameter");
        return;
    }
    if (srv->max_message_size && size > srv->max_message_size) {
        reply(s, "552 5.3.4 Message size exceeds fixed limit");
        return;
    }
    if (srv->hooks.mail) {
        char r[512] = "";
        int code = srv->hooks.mail(srv->hooks.arg, s, path, params, r, sizeof r);
        if (code) {
            reply_hook(s, r);
            return;
        }
    }
    s->env.mail_from = strdup(path);
    s->env.mail_params = params ? strdup(params) : NULL;
    if (!s->env.mail_from || (params && !s->env.mail_params)) {
        smtp_txn_reset(s);
        reply(s, "451 4.3.0 Out of memory");
        return;
    }
    s->state = S_MAIL;
    reply(s, "250 2.1.0 Ok");
}

static void cmd_rcpt(struct smtp_session *s, char *args)
{
    struct smtp_server *srv = s->srv;
    char *path, *params;
    if (!in_txn(s)) {
        reply(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (strncasecmp(args, "TO:", 3) != 0 || parse_path(args + 3, &path, &params) < 0 ||
        !*path) {
        reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    if (s->env.nrcpts >= MAX_RCPTS) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (srv->hooks.rcpt) {
        char r[512] = "";
        int code = srv->hooks.rcpt(srv->hooks.arg, s, path, params, r, sizeof r);
        if (code) {
            reply_hook(s, r);
            return;
        }
    }
    if (s->env.nrcpts == s->rcptcap) {
        size_t cap = s->rcptcap ? s->rcptcap * 2 : 8;
        struct smtp_rcpt *p = realloc(s->env.rcpts, cap * sizeof *p);
        if (!p) {
            reply(s, "452 4.3.0 Out of memory");
            return;
        }
        s->env.rcpts = p;
        s->rcptcap = cap;
    }
    struct smtp_rcpt *r = &s->env.rcpts[s->env.nrcpts];
    r->addr = strdup(path);
    r->params = params ? strdup(params) : NULL;
    if (!r->addr || (params && !r->params)) {
        free(r->addr);
        free(r->params);
        reply(s, "452 4.3.0 Out of memory");
        return;
    }
    s->env.nrcpts++;
    s->nrcpts++;
    s->state = S_RCPT;
    reply(s, "250 2.1.5 Ok");
}

static void cmd_data(struct smtp_session *s, char *args)
{
    if (*args) {
        reply(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (s->state != S_RCPT) {
        reply(s, s->state == S_MAIL ? "503 5.5.1 Error: need RCPT command"
                                    : "503 5.5.1 Error: need MAIL command");
        return;
    }
    s->state = S_DATA;
    s->msglen = 0;
    s->data_toobig = s->data_toolong = s->data_barecr = s->data_ioerr = 0;
    s->data_prev_crlf = 1;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(struct smtp_session *s, char *args)
{
    (void)args;
    smtp_txn_reset(s);
    reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct smtp_session *s, char *args)
{
    (void)args;
    reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, char *args)
{
    (void)args;
    reply(s, "221 2.0.0 Bye");
    s->state = S_CLOSING;
}

static void cmd_vrfy(struct smtp_session *s, char *args)
{
    if (!*args)
        reply(s, "501 5.5.4 Syntax: VRFY address");
    else
        reply(s, "252 2.1.5 Cannot VRFY user, but will accept message");
}

static void cmd_help(struct smtp_session *s, char *args)
{
    (void)args;
    reply(s, "214 2.0.0 See RFC 5321 (commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH)");
}

static const struct cmd commands[] = {
    { "EHLO", cmd_ehlo }, { "HELO", cmd_helo }, { "MAIL", cmd_mail },
    { "RCPT", cmd_rcpt }, { "DATA", cmd_data }, { "RSET", cmd_rset },
    { "NOOP", cmd_noop }, { "QUIT", cmd_quit }, { "VRFY", cmd_vrfy },
    { "HELP", cmd_help }, { "STARTTLS", smtp_cmd_starttls }, { "AUTH", smtp_cmd_auth },
};

static void command(struct smtp_session *s, char *line)
{
    s->ncmds++;
    if (s->state == S_AUTH) {
        smtp_auth_continue(s, line);
        return;
    }
    char *args = line + strcspn(line, " ");
    size_t n = (size_t)(args - line);
    if (*args)
        *args++ = '\0';
    if (strcasecmp(line, "AUTH") == 0) {
        /* Never log credentials, only the mechanism. */
        log_debug("smtp[%lu]: < AUTH %.*s", s->id, (int)strcspn(args, " "), args);
    } else {
        log_debug("smtp[%lu]: < %s%s%s", s->id, line, *args ? " " : "", args);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strlen(commands[i].name) == n && strcasecmp(commands[i].name, line) == 0) {
            commands[i].fn(s, args);
            return;
        }
    }
    reply(s, "500 5.5.1 Error: command not recognized");
}

/* ---- DATA ---- */

/* Bodies above spill_threshold go to an unlinked temp file under
 * state_dir while they arrive (a thousand sessions of 50 MB must not sit
 * in memory); msg then stages SPILL_CHUNK bytes between writes. */
static int spill_open(struct smtp_session *s)
{
    const char *dir = s->srv->spill_dir;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        char path[4096];
        snprintf(path, sizeof path, "%s/.smtp-body.XXXXXX", dir);
        if ((fd = mkostemp(path, O_CLOEXEC)) >= 0 && unlink(path) < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        log_error("smtp[%lu]: cannot create a temp file in %s for a large message: %s", s->id, dir,
                  strerror(errno));
        return -1;
    }
    log_debug("smtp[%lu]: message above spill_threshold (%zu bytes): receiving to disk", s->id,
              s->srv->spill_threshold);
    s->spill_fd = fd;
    s->staged = s->msglen;
    return 0;
}

static int spill_flush(struct smtp_session *s)
{
    size_t off = 0;
    while (off < s->staged) {
        ssize_t w = write(s->spill_fd, s->msg + off, s->staged - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            log_error("smtp[%lu]: writing a large message to disk: %s", s->id, strerror(errno));
            s->data_ioerr = 1;
            return -1;
        }
        off += (size_t)w;
    }
    s->staged = 0;
    return 0;
}

static void data_add(struct smtp_session *s, const char *p, size_t n)
{
    struct smtp_server *srv = s->srv;
    size_t max = srv->max_message_size;
    if (s->data_toobig || s->data_toolong || s->data_ioerr)
        return;
    if (max && s->msglen + n > max) {
        s->data_toobig = 1;
        free(s->msg);
        s->msg = NULL;
        s->msglen = s->msgcap = s->staged = 0;
        return;
    }
    if (s->spill_fd < 0 && srv->spill_threshold && srv->spill_dir &&
        s->msglen + n > srv->spill_threshold && spill_open(s) < 0)
        s->data_ioerr = 1;
    if (s->spill_fd >= 0) {
        if (s->staged + n > SPILL_CHUNK && spill_flush(s) < 0)
            return;
        if (n > SPILL_CHUNK) {          /* cannot happen with bounded lines; be safe */
            s->data_ioerr = 1;
            return;
        }
    }
    size_t used = s->spill_fd >= 0 ? s->staged : s->msglen;
    if (used + n + 1 > s->msgcap) {
        size_t cap = s->msgcap ? s->msgcap : 8192;
        while (cap < used + n + 1)
            cap *= 2;
        char *q = realloc(s->msg, cap);
        if (!q) {
            s->data_toobig = 1;  /* treated as "too big for us right now" */
            return;
        }
        s->msg = q;
        s->msgcap = cap;
    }
    memcpy(s->msg + used, p, n);
    s->msg[used + n] = '\0';
    s->msglen += n;
    if (s->spill_fd >= 0)
        s->staged += n;
}

/* End of a spilled message: the rest written, a NUL after it (readers
 * may rely on one), and the file mapped read-only for the hook. */
static int spill_map(struct smtp_session *s)
{
    if (spill_flush(s) < 0 || write(s->spill_fd, "", 1) != 1) {
        s->data_ioerr = 1;
        return -1;
    }
    void *m = mmap(NULL, s->msglen + 1, PROT_READ, MAP_PRIVATE, s->spill_fd, 0);
    if (m == MAP_FAILED) {
        log_error("smtp[%lu]: cannot map a large message: %s", s->id, strerror(errno));
        s->data_ioerr = 1;
        return -1;
    }
    s->map = m;
    s->maplen = s->msglen + 1;
    free(s->msg);
    s->msg = NULL;
    s->msgcap = 0;
    return 0;
}

static void data_end(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;
    if (s->data_toolong) {
        reply(s, "500 5.5.2 Line too long");
        smtp_txn_reset(s);
        return;
    }
    if (s->data_toobig) {
        reply(s, "552 5.3.4 Message too big");
        smtp_txn_reset(s);
        return;
    }
    if (s->data_barecr) {
        /* RFC 5321 2.3.8: CR only as part of CRLF. Passed on, a bare CR
         * may end a line for one server and not for the next (smuggling);
         * rewritten, the message is no longer what was signed. */
        log_info("smtp[%lu]: message with a bare CR from %s refused", s->id, s->peer);
        reply(s, "550 5.6.0 Message contains a bare CR (RFC 5321 2.3.8): not accepted");
        smtp_txn_reset(s);
        return;
    }
    if (!srv->hooks.data) {
        reply(s, "554 5.3.0 No delivery configured");
        smtp_txn_reset(s);
        return;
    }
    if (s->spill_fd >= 0)
        spill_map(s);
    if (s->data_ioerr) {
        reply(s, "452 4.3.1 Insufficient system storage, try again later");
        smtp_txn_reset(s);
        return;
    }
    if (!s->msg && !s->map)
        data_add(s, "", 0);
    if (!s->msg && !s->map) {
        reply(s, "451 4.3.0 Out of memory");
        smtp_txn_reset(s);
        return;
    }
    s->waiting = W_DATA;
    s->nmsgs++;
    srv->hooks.data(srv->hooks.arg, s, &s->env, s->map ? s->map : s->msg, s->msglen);
}

/* One line of message text, with its terminator (CRLF or bare LF). */
static void data_line(struct smtp_session *s, const char *p, size_t n, int crlf)
{
    size_t body = n - (crlf ? 2 : 1);
    int prev_crlf = s->data_prev_crlf;
    s->data_prev_crlf = crlf;
    if (crlf && prev_crlf && body == 1 && p[0] == '.') {
        data_end(s);
        return;
    }
    if (body > 0 && p[0] == '.') {
        p++;
        body--;
    }
    if (memchr(p, '\r', body))
        s->data_barecr = 1;
    data_add(s, p, body);
    data_add(s, "\r\n", 2);
}

/* ---- the input pump ---- */

static size_t line_max(const struct smtp_session *s)
{
    if (s->state == S_DATA)
        return DATA_LINE_MAX;
    return s->state == S_AUTH ? AUTH_LINE_MAX : CMD_LINE_MAX;
}

static void too_long(struct smtp_session *s)
{
    if (s->state == S_DATA) {
        s->data_toolong = 1;
    } else if (s->state == S_AUTH) {
        s->state = s->after_auth;
        reply(s, "500 5.5.2 Line too long");
    } else {
        reply(s, "500 5.5.2 Line too long");
    }
}

/* Handle one complete line from the input buffer, if any. 1 if handled. */
static int next_line(struct smtp_session *s)
{
    char *lf = memchr(s->in, '\n', s->inlen);
    if (!lf) {
        if (s->inlen > line_max(s)) {
            s->discarding = 1;
            s->inlen = 0;
        }
        return 0;
    }
    size_t n = (size_t)(lf - s->in) + 1;
    int crlf = n >= 2 && lf[-1] == '\r';
    if (s->discarding || n > line_max(s)) {
        s->discarding = 0;
        too_long(s);
        /* the over-long line still ended here: a "." right after it ends
         * DATA (else the client waits for a reply that never comes) */
        if (s->state == S_DATA)
            s->data_prev_crlf = crlf;
    } else if (s->state == S_DATA) {
        data_line(s, s->in, n, crlf);
    } else {
        char line[AUTH_LINE_MAX + 1];
        size_t len = n - (crlf ? 2 : 1);
        memcpy(line, s->in, len);
        line[len] = '\0';
        if (memchr(line, '\0', len))
            reply(s, "500 5.5.2 Error: NUL in command");
        else
            command(s, line);
        explicit_bzero(line, len);
    }
    /* STARTTLS may have emptied the buffer already. */
    if (s->inlen >= n) {
        memmove(s->in, s->in + n, s->inlen - n);
        s->inlen -= n;
    }
    return 1;
}

static int can_process(const struct smtp_session *s)
{
    if (s->waiting != W_NONE || s->dead)
        return 0;
    switch (s->state) {
    case S_TLS: case S_STARTTLS: case S_CLOSING:
        return 0;
    case S_DATA:
        return 1;
    default:
        return s->outlen < OUT_HIGH;
    }
}

static void set_interest(struct smtp_session *s)
{
    int mask = 0;
    if (s->fd < 0)
        return;
    if (s->state == S_TLS) {
        mask = gnutls_record_get_direction(s->tls) ? LOOP_WRITE : LOOP_READ;
    } else if (s->state == S_STARTTLS) {
        mask = LOOP_WRITE;   /* only the 220 may move until TLS starts */
    } else {
        if (!s->eof && s->inlen < sizeof s->in && s->state != S_CLOSING)
            mask |= LOOP_READ;
        if (s->outlen)
            mask |= LOOP_WRITE;
    }
    if (loop_fd(s->srv->loop, s->fd, mask, session_event, s) < 0) {
        log_error("smtp[%lu]: loop_fd: %s", s->id, strerror(errno));
        s->io_error = 1;
    }
}

/* Read, process and write until nothing moves. Returns -1 if the session
 * was freed (the caller must not touch it), else 0. */
#define PUMP_SLICE (256 * 1024)   /* bytes read per session per loop turn */

int smtp_session_pump(struct smtp_session *s)
{
    if (s->in_pump)
        return 0;    /* a hook finished synchronously: the outer pump goes on */
    s->in_pump = 1;
    size_t got = 0;
    for (;;) {
        int progress = 0;
        if (s->fd < 0 || s->io_error)
            break;
        if (s->state == S_STARTTLS) {
            if (sock_flush(s) < 0)
                break;
            if (s->outlen)
                break;          /* the 220 must go out in the clear first */
            s->inlen = 0;
            if (smtp_tls_start(s) < 0)
                break;
        }
        if (s->state == S_TLS) {
            int r = smtp_tls_handshake(s);
            if (r < 0)
                break;
            if (r == 0)
                break;
            progress = 1;
        }
        ssize_t n = s->state != S_CLOSING ? sock_read(s) : 0;
        if (n > 0) {
            progress = 1;
            got += (size_t)n;
        }
        while (can_process(s) && next_line(s))
            progress = 1;
        if (sock_flush(s) < 0)
            break;
        if (!progress)
            break;
        /* A fast client sending a big message: take a slice per loop turn
         * and let the others have theirs; the rest waits in the socket,
         * which wakes the loop again (level-triggered). Data GnuTLS has
         * already decrypted would not wake it: read that now. */
        if (got >= PUMP_SLICE && (!s->tls_on || gnutls_record_check_pending(s->tls) == 0))
            break;
    }
    s->in_pump = 0;
    if (s->io_error || s->fd < 0)
        return session_fail(s);
    if (s->state == S_CLOSING && s->outlen == 0)
        return session_fail(s);
    if (s->eof && s->waiting == W_NONE && s->state != S_CLOSING)
        return session_fail(s);
    /* Any activity restarts the state's timeout (monotonic loop timer). */
    arm_timer(s);
    set_interest(s);
    if (s->io_error)
        return session_fail(s);
    return 0;
}

static void session_event(struct loop *l, int fd, int events, void *arg)
{
    struct smtp_session *s = arg;
    (void)l; (void)fd;
    if (s->eof && (events & LOOP_READ)) {
        /* Reading stopped at EOF, so LOOP_READ here means a hang-up or an
         * error: the connection is gone. */
        session_fail(s);
        return;
    }
    smtp_session_pump(s);
}

void smtp_data_done(struct smtp_session *s, const char *r)
{
    if (s->waiting != W_DATA)
        return;
    s->waiting = W_NONE;
    reply_hook(s, r);
    smtp_txn_reset(s);
    if (s->dead) {
        smtp_session_free(s);
        return;
    }
    smtp_session_pump(s);
}

/* ---- listeners ---- */

static void session_new(struct smtp_server *srv, int fd, const struct sockaddr_storage *ss,
                        int tls)
{
    struct smtp_session *s = calloc(1, sizeof *s);
    if (!s) {
        log_error("smtp: out of memory for a session");
        close(fd);
        return;
    }
    s->srv = srv;
    s->fd = fd;
    s->id = ++srv->next_id;
    s->loopback = sysutil_loopback_addr(ss);
    s->implicit_tls = tls;
    s->spill_fd = -1;
    format_peer(ss, s->peer, sizeof s->peer);
    format_addr(ss, s->addr, sizeof s->addr);
    if (srv->session_deadline > 0)
        s->life_timer = loop_timer(srv->loop, (int64_t)srv->session_deadline * 1000, session_expired, s);
    s->next = srv->sessions;
    if (s->next)
        s->next->prev = s;
    srv->sessions = s;
    srv->nsessions++;
    log_info("smtp[%lu]: connect from %s%s", s->id, s->peer, tls ? " (implicit TLS)" : "");
    if (tls) {
        if (smtp_tls_start(s) < 0) {
            smtp_session_free(s);
            return;
        }
    } else {
        reply(s, "220 %s ESMTP untild", srv->hostname);
    }
    smtp_session_pump(s);
}

/* [smtp] session_deadline: however active, a session ends then. A hook
 * deciding (DATA, AUTH) is let finish: checked again a second later. */
static void session_expired(struct loop *l, uint64_t id, void *arg)
{
    struct smtp_session *s = arg;
    (void)l;
    if (id != s->life_timer)
        return;
    s->life_timer = 0;
    if (s->waiting == W_AUTH || s->waiting == W_DATA) {
        s->life_timer = loop_timer(s->srv->loop, 1000, session_expired, s);
        return;
    }
    log_info("smtp[%lu]: session from %s reached session_deadline (%d s): closing", s->id, s->peer,
             s->srv->session_deadline);
    if (s->auth_timer) {
        loop_timer_del(s->srv->loop, s->auth_timer);
        s->auth_timer = 0;
        s->waiting = W_NONE;
    }
    if (s->state != S_TLS && s->state != S_STARTTLS)
        reply(s, "421 4.4.2 %s Error: session deadline exceeded", s->srv->hostname);
    s->state = S_CLOSING;
    s->inlen = 0;
    smtp_session_pump(s);
}

/* Sessions open from this address now. */
static int sessions_from(const struct smtp_server *srv, const char *addr)
{
    int n = 0;
    for (const struct smtp_session *s = srv->sessions; s; s = s->next)
        n += !s->dead && !strcmp(s->addr, addr);
    return n;
}

/* Refuse a connection with a 421 line (best effort: the socket is fresh,
 * so the short line fits) and close it. */
static void refuse(struct listener *li, int c, const char *why)
{
    struct smtp_server *srv = li->srv;
    char msg[320];
    int n = snprintf(msg, sizeof msg, "421 4.7.0 %s Error: %s\r\n", srv->hostname, why);
    if (!li->tls && n > 0 && send(c, msg, (size_t)n, MSG_NOSIGNAL) < 0)
        log_debug("smtp: send to a refused client: %s", strerror(errno));
    close(c);
}

static void listener_event(struct loop *l, int fd, int events, void *arg)
{
    struct listener *li = arg;
    struct smtp_server *srv = li->srv;
    (void)l; (void)events;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int c = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                log_warn("smtp: accept: %s", strerror(errno));
            return;
        }
        char peer[64], addr[64];
        if (srv->max_sessions > 0 && srv->nsessions >= (size_t)srv->max_sessions) {
            format_peer(&ss, peer, sizeof peer);
            log_warn("smtp: too many sessions (max_sessions %d), refusing %s", srv->max_sessions, peer);
            refuse(li, c, "too many connections");
            continue;
        }
        format_addr(&ss, addr, sizeof addr);
        if (srv->max_per_addr > 0 && sessions_from(srv, addr) >= srv->max_per_addr) {
            log_warn("smtp: %d sessions from %s already (max_sessions_per_address), refusing another",
                     srv->max_per_addr, addr);
            refuse(li, c, "too many connections from your address");
            continue;
        }
        session_new(srv, c, &ss, li->tls);
    }
}

/* "host:port", "[v6]:port", "*:port" or ":port" (all addresses). */
static int listen_one(struct smtp_server *srv, const char *addr, int tls)
{
    char host[256], port[16];
    const char *colon;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - addr - 1) >= sizeof host)
            goto bad;
        memcpy(host, addr + 1, (size_t)(rb - addr - 1));
        host[rb - addr - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host)
            goto bad;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    if (strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof port)
        goto bad;
    strcpy(port, colon + 1);
    if (srv->nls >= MAX_LISTENERS)
        goto bad;
    struct addrinfo hints = { 0 }, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int any = !host[0] || strcmp(host, "*") == 0;
    int r = getaddrinfo(any ? NULL : host, port, &hints, &ai);
    if (r != 0) {
        log_error("smtp: listen %s: %s", addr, gai_strerror(r));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        goto fail;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        goto fail;
    if (ai->ai_family == AF_INET6 && !any &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        goto fail;
    struct listener *li = &srv->ls[srv->nls];
    li->fd = fd;
    li->tls = tls;
    li->srv = srv;
    li->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    if (loop_fd(srv->loop, fd, LOOP_READ, listener_event, li) < 0)
        goto fail;
    srv->nls++;
    freeaddrinfo(ai);
    log_debug("smtp: bound %s%s (port %d)", addr, tls ? " (implicit TLS)" : "", li->port);
    return 0;
fail:
    log_error("smtp: listen %s: %s", addr, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
bad:
    log_error("smtp: bad listen address \"%s\" (want host:port or [v6]:port)", addr);
    return -1;
}

/* ---- public ---- */

static int server_config(struct smtp_server *srv, const struct config *c)
{
    srv->cfg = c;
    srv->max_message_size = c->max_message_size;
    srv->max_sessions = c->max_sessions;
    srv->max_per_addr = c->max_sessions_per_address;
    srv->session_deadline = c->session_deadline;
    srv->auth_delay_ms = c->auth_failure_delay * 1000;
    srv->spill_threshold = c->spill_threshold;
    srv->spill_dir = c->state_dir;
    srv->timeout_command = c->timeout_command > 0 ? c->timeout_command : 300;
    srv->timeout_data = c->timeout_data > 0 ? c->timeout_data : 600;
    srv->auth = c->auth;
    if (c->hostname && *c->hostname) {
        snprintf(srv->hostname, sizeof srv->hostname, "%s", c->hostname);
    } else if (gethostname(srv->hostname, sizeof srv->hostname - 1) < 0 || !srv->hostname[0]) {
        strcpy(srv->hostname, "localhost");
    }
    srv->hostname[sizeof srv->hostname - 1] = '\0';
    /* Reload the certificate only when it is configured; sessions keep a
     * reference to the credentials they started with. */
    if (c->tls_cert && c->tls_key) {
        struct tls_cred *n = smtp_tls_cred_load(c->tls_cert, c->tls_key);
        if (!n)
            return -1;
        smtp_tls_cred_unref(srv->cred);
        srv->cred = n;
    } else if (c->tls_cert || c->tls_key) {
        log_error("smtp: tls_cert and tls_key must be set together");
        return -1;
    } else {
        struct tls_cred *n = cred_self_signed(c);
        smtp_tls_cred_unref(srv->cred);
        srv->cred = n;
    }
    return 0;
}

struct smtp_server *smtp_server_new(const struct config *c, struct loop *l,
                                    const struct smtp_hooks *hooks)
{
    struct smtp_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->loop = l;
    if (hooks)
        srv->hooks = *hooks;
    if (server_config(srv, c) < 0) {
        free(srv);
        return NULL;
    }
    return srv;
}

int smtp_server_bind(struct smtp_server *srv)
{
    const struct config *c = srv->cfg;
    if (c->nlisten_tls && !srv->cred) {
        log_error("smtp: listen_tls needs tls_cert and tls_key");
        return -1;
    }
    for (size_t i = 0; i < c->nlisten && i < CONFIG_MAX_LISTEN; i++)
        if (listen_one(srv, c->listen[i], 0) < 0)
            return -1;
    for (size_t i = 0; i < c->nlisten_tls && i < CONFIG_MAX_LISTEN; i++)
        if (listen_one(srv, c->listen_tls[i], 1) < 0)
            return -1;
    return 0;
}

int smtp_server_listen(struct smtp_server *srv)
{
    if (!srv->nls && smtp_server_bind(srv) < 0)
        return -1;
    for (size_t i = 0; i < srv->nls; i++) {
        struct listener *li = &srv->ls[i];
        if (li->listening)
            continue;
        if (listen(li->fd, 128) < 0) {
            log_error("smtp: listen on port %d: %s", li->port, strerror(errno));
            return -1;
        }
        li->listening = 1;
        log_info("smtp: listening on port %d%s", li->port, li->tls ? " (implicit TLS)" : "");
    }
    return 0;
}

int smtp_server_reconfigure(struct smtp_server *srv, const struct config *c)
{
    return server_config(srv, c);
}

int smtp_server_port(const struct smtp_server *srv, size_t i)
{
    return i < srv->nls ? srv->ls[i].port : -1;
}

void smtp_server_free(struct smtp_server *srv)
{
    if (!srv)
        return;
    /* Sessions still held by a hook are freed too: the caller stops the
     * hooks (and the loop) first. */
    while (srv->sessions) {
        srv->sessions->waiting = W_NONE;
        smtp_session_free(srv->sessions);
    }
    for (size_t i = 0; i < srv->nls; i++) {
        loop_fd_del(srv->loop, srv->ls[i].fd);
        if (close(srv->ls[i].fd) < 0)
            log_warn("smtp: close listener: %s", strerror(errno));
    }
    smtp_tls_cred_unref(srv->cred);
    free(srv);
}

size_t smtp_server_sessions(const struct smtp_server *srv)
{
    return srv->nsessions;
}

const char *smtp_session_user(const struct smtp_session *s) { return s->user; }
const char *smtp_session_pass(const struct smtp_session *s) { return s->pass; }
int smtp_session_loopback(const struct smtp_session *s) { return s->loopback; }
int smtp_session_tls(const struct smtp_session *s) { return s->tls_on; }
const char *smtp_session_peer(const struct smtp_session *s) { return s->peer; }
const char *smtp_session_addr(const struct smtp_session *s) { return s->addr; }
unsigned long smtp_session_id(const struct smtp_session *s) { return s->id; }
void smtp_session_set_data(struct smtp_session *s, void *p) { s->data = p; }
void *smtp_session_get_data(const struct smtp_session *s) { return s->data; }
