/* smtp_server_auth.c - the SMTP listener's STARTTLS and AUTH (RFC 3207,
 * 4954; the sessions are smtp_server.c).
 *
 * Thread: loop thread only, like the rest of the listener. TLS is GnuTLS,
 * non-blocking: smtp_tls_start sets a session up, smtp_tls_handshake steps
 * it; the credentials are loaded once and reference-counted, so a reload
 * with new ones leaves open sessions on the old. AUTH PLAIN and LOGIN are
 * offered and accepted only over TLS or from loopback; the decoded user and
 * password go to the gate's auth hook, whose answer (smtp_auth_done) may be
 * delayed after a refusal. Payloads are never logged and are wiped after
 * use. */
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
#include "untild/smtp_server_int.h"


/* ---- TLS credentials ---- */

struct tls_cred *smtp_tls_cred_load(const char *cert, const char *key)
{
    struct tls_cred *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int r = gnutls_certificate_allocate_credentials(&c->x);
    if (r < 0) {
        free(c);
        log_error("smtp: gnutls: %s", gnutls_strerror(r));
        return NULL;
    }
    r = gnutls_certificate_set_x509_key_file(c->x, cert, key, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        log_error("smtp: cannot load tls_cert %s / tls_key %s: %s", cert, key,
                  gnutls_strerror(r));
        gnutls_certificate_free_credentials(c->x);
        free(c);
        return NULL;
    }
    c->refs = 1;
    return c;
}

void smtp_tls_cred_unref(struct tls_cred *c)
{
    if (c && --c->refs == 0) {
        gnutls_certificate_free_credentials(c->x);
        free(c);
    }
}

int smtp_tls_start(struct smtp_session *s)
{
    struct smtp_server *srv = s->srv;
    int r = gnutls_init(&s->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (r < 0) {
        s->tls = NULL;
        goto fail;
    }
    s->cred = srv->cred;
    s->cred->refs++;
    if ((r = gnutls_set_default_priority(s->tls)) < 0 ||
        (r = gnutls_credentials_set(s->tls, GNUTLS_CRD_CERTIFICATE, s->cred->x)) < 0)
        goto fail;
    gnutls_certificate_server_set_request(s->tls, GNUTLS_CERT_IGNORE);
    gnutls_transport_set_int(s->tls, s->fd);
    s->state = S_TLS;
    return 0;
fail:
    log_error("smtp[%lu]: TLS setup: %s", s->id, gnutls_strerror(r));
    s->io_error = 1;
    return -1;
}

/* One handshake step: 1 done, 0 in progress, -1 failed. */
int smtp_tls_handshake(struct smtp_session *s)
{
    int r = gnutls_handshake(s->tls);
    if (r == GNUTLS_E_SUCCESS) {
        s->tls_on = 1;
        /* RFC 3207 4.2: forget everything learnt before TLS. */
        s->helo_seen = 0;
        s->state = S_READY;
        smtp_txn_reset(s);
        free(s->env.helo);
        s->env.helo = NULL;
        wipe_free(s->user);
        wipe_free(s->pass);
        s->user = s->pass = NULL;
        if (log_get_level() <= ULOG_DEBUG) {
            char *desc = gnutls_session_get_desc(s->tls);
            log_debug("smtp[%lu]: TLS established: %s", s->id, desc ? desc : "?");
            gnutls_free(desc);
        }
        if (s->implicit_tls)
            reply(s, "220 %s ESMTP untild", s->srv->hostname);
        return 1;
    }
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
        return 0;
    log_warn("smtp[%lu]: TLS handshake with %s failed: %s", s->id, s->peer,
             gnutls_strerror(r));
    s->io_error = 1;
    return -1;
}

/* ---- SASL ---- */

#define B64_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

/* Strict base64 decode into a fresh NUL-terminated buffer; -1 on error.
 * GnuTLS decodes; SASL (RFC 4954) allows no white space, which nettle's
 * decoder would skip, and '=' only as the last one or two: checked first. */
static int b64decode(const char *in, char **out, size_t *outlen)
{
    size_t n = strlen(in), body = strspn(in, B64_ALPHABET);
    if (n % 4 || n - body > 2 || strspn(in + body, "=") != n - body)
        return -1;
    char *o;
    if (n == 0) {
        if (!(o = strdup("")))
            return -1;
        *out = o;
        *outlen = 0;
        return 0;
    }
    gnutls_datum_t d = { (unsigned char *)(uintptr_t)in, (unsigned)n }, r = { NULL, 0 };
    if (gnutls_base64_decode2(&d, &r) < 0)
        return -1;
    if (!(o = malloc(r.size + 1))) {
        gnutls_free(r.data);
        return -1;
    }
    memcpy(o, r.data, r.size);
    o[r.size] = '\0';
    *out = o;
    *outlen = r.size;
    gnutls_free(r.data);
    return 0;
}

/* SASLprep (RFC 4013 2.3) prohibits control characters in a name; a CR
 * or LF in the user would reach notice headers (To: <rep>) and the spool. */
static int has_ctl(const char *p)
{
    for (; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

int smtp_auth_allowed(const struct smtp_session *s)
{
    return s->srv->auth != AUTH_NONE && s->srv->hooks.auth &&
           (s->tls_on || s->loopback);
}

static void auth_call(struct smtp_session *s)
{
    s->state = s->after_auth;
    s->waiting = W_AUTH;
    s->srv->hooks.auth(s->srv->hooks.arg, s, s->auth_user, s->auth_pass);
}

/* PLAIN: [authzid] NUL authcid NUL passwd (RFC 4616). */
static void auth_plain(struct smtp_session *s, const char *b64)
{
    char *raw = NULL;
    size_t n = 0;
    /* "=" is an empty initial response (RFC 4954 4). */
    if (b64decode(strcmp(b64, "=") == 0 ? "" : b64, &raw, &n) < 0) {
        s->state = s->after_auth;
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    char *u = memchr(raw, '\0', n);
    char *p = u ? memchr(u + 1, '\0', n - (size_t)(u + 1 - raw)) : NULL;
    if (!u || !p || p == u + 1 || memchr(p + 1, '\0', n - (size_t)(p + 1 - raw)) ||
        has_ctl(u + 1)) {
        explicit_bzero(raw, n);
        free(raw);
        s->state = s->after_auth;
        reply(s, "501 5.5.2 Malformed PLAIN response");
        return;
    }
    wipe_free(s->auth_user);
    wipe_free(s->auth_pass);
    s->auth_user = strdup(u + 1);
    s->auth_pass = strdup(p + 1);
    explicit_bzero(raw, n);
    free(raw);
    if (!s->auth_user || !s->auth_pass) {
        s->state = s->after_auth;
        reply(s, "454 4.3.0 Temporary failure");
        return;
    }
    auth_call(s);
}

/* A continuation line in S_AUTH (never logged). */
void smtp_auth_continue(struct smtp_session *s, const char *line)
{
    if (strcmp(line, "*") == 0) {
        s->state = s->after_auth;
        reply(s, "501 5.7.0 Authentication aborted");
        return;
    }
    if (s->mech == M_PLAIN) {
        auth_plain(s, line);
        return;
    }
    char *raw = NULL;
    size_t n = 0;
    if (b64decode(line, &raw, &n) < 0 || memchr(raw, '\0', n) ||
        (s->mech == M_LOGIN_USER && has_ctl(raw))) {
        wipe_free(raw);
        s->state = s->after_auth;
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    if (s->mech == M_LOGIN_USER) {
        wipe_free(s->auth_user);
        s->auth_user = raw;
        s->mech = M_LOGIN_PASS;
        reply(s, "334 UGFzc3dvcmQ6");
        return;
    }
    wipe_free(s->auth_pass);
    s->auth_pass = raw;
    auth_call(s);
}

void smtp_cmd_starttls(struct smtp_session *s, char *args)
{
    if (*args) {
        reply(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    if (!s->srv->cred) {
        reply(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    if (s->tls_on) {
        reply(s, "503 5.5.1 Error: TLS already active");
        return;
    }
    if (in_txn(s)) {
        reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* Anything pipelined after STARTTLS was sent in the clear: drop it
     * (CVE-2011-0411 style command injection). */
    s->inlen = 0;
    s->discarding = 0;
    s->state = S_STARTTLS;
}

void smtp_cmd_auth(struct smtp_session *s, char *args)
{
    struct smtp_server *srv = s->srv;
    if (srv->auth == AUTH_NONE || !srv->hooks.auth) {
        reply(s, "503 5.5.1 Error: authentication not enabled");
        return;
    }
    if (s->state == S_READY) {
        reply(s, "503 5.5.1 Error: send EHLO first");
        return;
    }
    if (s->user) {
        reply(s, "503 5.5.1 Error: already authenticated");
        return;
    }
    if (in_txn(s)) {
        reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    if (!smtp_auth_allowed(s)) {
        reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    char *sp = strchr(args, ' ');
    char *initial = NULL;
    if (sp) {
        *sp = '\0';
        initial = sp + 1;
        while (*initial == ' ')
            initial++;
        if (!*initial)
            initial = NULL;
    }
    s->after_auth = s->state;
    if (strcasecmp(args, "PLAIN") == 0) {
        s->mech = M_PLAIN;
        if (initial) {
            auth_plain(s, initial);
        } else {
            s->state = S_AUTH;
            reply(s, "334 ");
        }
    } else if (strcasecmp(args, "LOGIN") == 0) {
        s->mech = M_LOGIN_USER;
        s->state = S_AUTH;
        if (initial)
            smtp_auth_continue(s, initial);
        else
            reply(s, "334 VXNlcm5hbWU6");
    } else {
        reply(s, "504 5.5.4 Unrecognized authentication type");
    }
}
/* ---- hooks reporting back ---- */

static void auth_answer(struct smtp_session *s, int ok);

static void auth_delayed(struct loop *l, uint64_t id, void *arg)
{
    struct smtp_session *s = arg;
    (void)l;
    if (id != s->auth_timer)
        return;
    s->auth_timer = 0;
    s->waiting = W_NONE;
    auth_answer(s, s->auth_result);
}

void smtp_auth_done(struct smtp_session *s, int ok)
{
    if (s->waiting != W_AUTH)
        return;
    s->waiting = W_NONE;
    /* A refusal waits (the session reads nothing meanwhile): guessing
     * costs the guesser time, and us only a timer. */
    if (ok != SMTP_AUTH_OK && ok != SMTP_AUTH_TEMPFAIL && s->srv->auth_delay_ms > 0 && !s->dead) {
        s->waiting = W_AUTH_DELAY;
        s->auth_result = ok;
        s->auth_timer = loop_timer(s->srv->loop, s->srv->auth_delay_ms, auth_delayed, s);
        return;
    }
    auth_answer(s, ok);
}

static void auth_answer(struct smtp_session *s, int ok)
{
    if (ok == SMTP_AUTH_LIMITED) {
        log_info("smtp[%lu]: too many authentication failures from %s: closing", s->id, s->peer);
        wipe_free(s->auth_user);
        wipe_free(s->auth_pass);
        s->auth_user = s->auth_pass = NULL;
        reply(s, "421 4.7.0 %s Too many authentication failures, try again later", s->srv->hostname);
        s->state = S_CLOSING;
        s->inlen = 0;
    } else if (ok > 0) {
        wipe_free(s->user);
        wipe_free(s->pass);
        s->user = s->auth_user;
        s->pass = s->auth_pass;
        s->auth_user = s->auth_pass = NULL;
        log_info("smtp[%lu]: authenticated as %s", s->id, s->user);
        reply(s, "235 2.7.0 Authentication successful");
    } else {
        log_info("smtp[%lu]: authentication %s from %s", s->id,
                 ok < 0 ? "could not be checked" : "failed", s->peer);
        wipe_free(s->auth_user);
        wipe_free(s->auth_pass);
        s->auth_user = s->auth_pass = NULL;
        /* ok < 0: the check itself failed (upstream unreachable): a
         * temporary answer, so clients retry instead of asking the user
         * for a new password (RFC 4954 454). */
        reply(s, ok < 0 ? "454 4.7.0 Temporary authentication failure"
                        : "535 5.7.8 Authentication credentials invalid");
    }
    if (s->dead) {
        smtp_session_free(s);
        return;
    }
    smtp_session_pump(s);
}
