/* smtp_dsn.c - an SMTP transaction with DSN parameters, spoken over a
 * connection libcurl opened, secured and authenticated (see smtp_dsn.h).
 *
 * Replies are read into a bounded buffer (one reply at a time: nothing is
 * pipelined); each wait is bounded by the upstream timeout. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "untild/smtp_dsn.h"
#include "untild/log.h"
#include "untild/relay_job.h"

#define REPLY_MAX 8192

struct conn {
    CURL *h;
    curl_socket_t fd;
    long timeout_ms;
    char buf[REPLY_MAX];
    size_t len;
    int dsn;                 /* the upstream's EHLO offered DSN */
};

static int ci_prefix(const char *s, const char *p)
{
    return !strncasecmp(s, p, strlen(p));
}

int smtp_dsn_wanted(const char *params)
{
    if (!params)
        return 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", params);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
        if (ci_prefix(t, "RET=") || ci_prefix(t, "ENVID=") || ci_prefix(t, "NOTIFY=") || ci_prefix(t, "ORCPT="))
            return 1;
    return 0;
}

void smtp_dsn_filter(const char *params, int rcpt, char *out, size_t outsz)
{
    static const char *const mail_keys[] = { "RET=", "ENVID=", NULL };
    static const char *const rcpt_keys[] = { "NOTIFY=", "ORCPT=", NULL };
    const char *const *keys = rcpt ? rcpt_keys : mail_keys;
    size_t n = 0;
    out[0] = '\0';
    if (!params)
        return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", params);
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        int keep = 0;
        for (size_t k = 0; keys[k]; k++)
            keep |= ci_prefix(t, keys[k]);
        /* xtext and the keywords are printable ASCII: anything else would
         * let a client smuggle bytes into our command line */
        for (const char *c = t; keep && *c; c++)
            if (*c < '!' || *c > '~')
                keep = 0;
        if (keep && n + strlen(t) + 2 < outsz)
            n += (size_t)snprintf(out + n, outsz - n, " %s", t);
    }
}

static int wait_fd(struct conn *c, short ev)
{
    struct pollfd p = { c->fd, ev, 0 };
    int r;
    do
        r = poll(&p, 1, (int)c->timeout_ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    while (n) {
        size_t sent = 0;
        CURLcode e = curl_easy_send(c->h, p, n, &sent);
        if (e == CURLE_AGAIN) {
            if (wait_fd(c, POLLOUT) < 0)
                return -1;
            continue;
        }
        if (e != CURLE_OK)
            return -1;
        p += sent;
        n -= sent;
    }
    return 0;
}

/* Is this line (ll octets, CRLF or LF included) the last line of a reply:
 * "NNN" then a space and text, or "NNN" alone (RFC 5321 4.2: the text is
 * optional)? Continuation lines are "NNN-text". */
int smtp_dsn_last_line(const char *line, size_t ll)
{
    if (ll < 4)
        return 0;
    for (int k = 0; k < 3; k++)
        if (line[k] < '0' || line[k] > '9')
            return 0;
    return line[3] == ' ' || line[3] == '\r' || line[3] == '\n';
}

/* Read one complete reply; return its code and its last line's text (after
 * the code; "" when the upstream sent none) in text. -1 on a broken or
 * silent connection. */
static int reply(struct conn *c, char *text, size_t textsz)
{
    for (;;) {
        size_t start = 0;
        for (size_t i = 0; i < c->len; i++) {
            if (c->buf[i] != '\n')
                continue;
            size_t ll = i + 1 - start;
            const char *line = c->buf + start;
            if (smtp_dsn_last_line(line, ll)) {
                int code = atoi(line);
                size_t tl = line[3] == ' ' ? ll - 4 : 0;
                while (tl && (line[4 + tl - 1] == '\n' || line[4 + tl - 1] == '\r'))
                    tl--;
                snprintf(text, textsz, "%.*s", (int)tl, line + 4);
                memmove(c->buf, c->buf + i + 1, c->len - i - 1);
                c->len -= i + 1;
                return code >= 200 && code < 600 ? code : -1;
            }
            if (ll >= 4 && line[3] == '-' && !strncmp(line, "250", 3)
                && ll >= 7 && !strncasecmp(line + 4, "DSN", 3) && (ll == 7 || line[7] == '\r' || line[7] == ' '))
                c->dsn = 1;
            start = i + 1;
        }
        if (c->len == sizeof c->buf)
            return -1;   /* a reply longer than we will ever take */
        size_t got = 0;
        CURLcode e = curl_easy_recv(c->h, c->buf + c->len, sizeof c->buf - c->len, &got);
        if (e == CURLE_AGAIN) {
            if (wait_fd(c, POLLIN) < 0)
                return -1;
            continue;
        }
        if (e != CURLE_OK || got == 0)
            return -1;
        c->len += got;
    }
}

static int cmd(struct conn *c, const char *line, char *text, size_t textsz)
{
    if (send_all(c, line, strlen(line)) < 0)
        return -1;
    return reply(c, text, textsz);
}

/* The message, dot-stuffed, in bounded chunks. */
static int send_data(struct conn *c, const char *prefix, const char *data, size_t len)
{
    char out[65536];
    size_t o = 0;
    int bol = 1;
    const char *seg[2] = { prefix ? prefix : "", data };
    size_t sl[2] = { prefix ? strlen(prefix) : 0, len };
    char last = '\n';
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < sl[s]; i++) {
            if (o + 2 > sizeof out) {
                if (send_all(c, out, o) < 0)
                    return -1;
                o = 0;
            }
            if (bol && seg[s][i] == '.')
                out[o++] = '.';
            out[o++] = seg[s][i];
            bol = seg[s][i] == '\n';
            last = seg[s][i];
        }
    if (send_all(c, out, o) < 0)
        return -1;
    return send_all(c, last == '\n' ? ".\r\n" : "\r\n.\r\n", last == '\n' ? 3 : 5);
}

static void fail(struct relay_result *res, int code, const char *text)
{
    res->ok = 0;
    res->code = code;
    snprintf(res->text, sizeof res->text, "%s", text);
}

static int capture_ehlo(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    struct conn *c = ud;
    (void)h;
    if (type == CURLINFO_HEADER_IN && size >= 7 && !strncmp(data, "250", 3)
        && (data[3] == '-' || data[3] == ' ') && !strncasecmp(data + 4, "DSN", 3)
        && (size == 7 || data[7] == '\r' || data[7] == '\n' || data[7] == ' '))
        c->dsn = 1;
    return 0;
}

void smtp_dsn_send(CURL *h, const struct relay_job *job, long timeout_s, struct relay_result *res)
{
    struct conn *c = calloc(1, sizeof *c);
    char line[2048], text[512], params[1024];
    if (!c) {
        fail(res, 451, "4.3.0 out of memory");
        return;
    }
    c->h = h;
    c->timeout_ms = timeout_s * 1000;
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, capture_ehlo);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, c);
    CURLcode e = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, (void *)NULL);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
    if (e != CURLE_OK || curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &c->fd) != CURLE_OK
        || c->fd == CURL_SOCKET_BAD) {
        snprintf(text, sizeof text, "4.4.1 upstream unavailable: %s", curl_easy_strerror(e));
        fail(res, 451, text);
        free(c);
        return;
    }
    if (!c->dsn)
        log_info("relay: upstream does not offer DSN; DSN parameters not passed on");

    smtp_dsn_filter(c->dsn ? job->mail_params : NULL, 0, params, sizeof params);
    snprintf(line, sizeof line, "MAIL FROM:<%s>%s\r\n", job->mail_from ? job->mail_from : "", params);
    int code = cmd(c, line, text, sizeof text);
    if (code < 200 || code >= 300) {
        if (code < 0)
            fail(res, 451, "4.4.1 upstream connection lost");
        else {
            snprintf(line, sizeof line, "%.500s", text);
            fail(res, code, line);
        }
        goto out;
    }
    size_t accepted = 0;
    int first_fail = 0;
    char first_text[512] = "";
    for (size_t i = 0; i < job->nrcpts; i++) {
        smtp_dsn_filter(c->dsn && job->rcpt_params ? job->rcpt_params[i] : NULL, 1, params, sizeof params);
        snprintf(line, sizeof line, "RCPT TO:<%s>%s\r\n", job->rcpts[i], params);
        code = cmd(c, line, text, sizeof text);
        if (code < 0) {
            fail(res, 451, "4.4.1 upstream connection lost");
            goto out;
        }
        res->rcpt_codes[i] = code;
        if (code >= 200 && code < 300)
            accepted++;
        else if (!first_fail) {
            first_fail = code;
            snprintf(first_text, sizeof first_text, "%s", text);
        }
    }
    if (!accepted) {
        fail(res, first_fail, first_text);
        cmd(c, "QUIT\r\n", text, sizeof text);
        goto out;
    }
    code = cmd(c, "DATA\r\n", text, sizeof text);
    if (code != 354) {
        snprintf(line, sizeof line, "%.500s", text);
        fail(res, code < 0 ? 451 : code, code < 0 ? "4.4.1 upstream connection lost" : line);
        goto out;
    }
    if (send_data(c, job->prefix, job->data, job->len) < 0 || (code = reply(c, text, sizeof text)) < 0) {
        fail(res, 451, "4.4.1 upstream connection lost during DATA");
        goto out;
    }
    if (code >= 200 && code < 300) {
        res->ok = 1;
        res->code = code;
        snprintf(res->text, sizeof res->text, "%s", text);
    } else {
        fail(res, code, text);
        for (size_t i = 0; i < job->nrcpts; i++)
            if (res->rcpt_codes[i] >= 200 && res->rcpt_codes[i] < 300)
                res->rcpt_codes[i] = code;
    }
    cmd(c, "QUIT\r\n", text, sizeof text);
out:
    free(c);
}
