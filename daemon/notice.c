/* notice.c - notices to the rep: RFC 5322 messages (UTF-8 text, the
 * command addresses as mailto: links, optionally the affected message
 * attached) handed to the relay like any other mail, but never gated:
 * they go to the rep, not to a customer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "untild/notice.h"
#include "untild/release.h"
#include "untild/daemon.h"
#include "untild/imap_watch.h"
#include "untild/log.h"
#include "untild/relay.h"
#include "untild/strbuf.h"

/* Append text with every line ending as CRLF. */
static void add_crlf(struct strbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
            sb_add(b, "\r\n", 2);
        else
            sb_add(b, &s[i], 1);
    }
    if (n && s[n - 1] != '\n')
        sb_add(b, "\r\n", 2);
}

/* RFC 2047 B-encode a subject when it is not plain ASCII. */
static void add_subject(struct strbuf *b, const char *s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int ascii = 1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p >= 0x80 || *p == '\r' || *p == '\n')
            ascii = 0;
    if (ascii) {
        sb_printf(b, "Subject: %s\r\n", s);
        return;
    }
    sb_puts(b, "Subject: =?UTF-8?B?");
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n) v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)s[i + 2];
        char o[4] = { tbl[(v >> 18) & 63], tbl[(v >> 12) & 63],
                      i + 1 < n ? tbl[(v >> 6) & 63] : '=', i + 2 < n ? tbl[v & 63] : '=' };
        sb_add(b, o, 4);
    }
    sb_puts(b, "?=\r\n");
}

char *notice_build(const char *from, const char *to, const char *subject,
                   const char *body, const char *attach, size_t attach_len,
                   time_t now, size_t *len)
{
    struct strbuf b = { 0 };
    char date[64];
    struct tm tm;
    static unsigned long counter;   /* uniqueness within one second only */

    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    sb_printf(&b, "From: untild <%s>\r\nTo: <%s>\r\n", from, to);
    add_subject(&b, subject);
    sb_printf(&b, "Date: %s\r\nMessage-ID: <untild.%lld.%ld.%lu@%s>\r\n", date, (long long)now,
              (long)getpid(), __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED),
              strchr(from, '@') ? strchr(from, '@') + 1 : "localhost");
    sb_puts(&b, "Auto-Submitted: auto-generated\r\nX-Untild: notice\r\nMIME-Version: 1.0\r\n");
    if (!attach) {
        sb_puts(&b, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
        add_crlf(&b, body, strlen(body));
    } else {
        /* A boundary the attached message cannot contain by accident (or
         * design): pick one and check. */
        char bd[64];
        unsigned long salt = (unsigned long)now ^ (unsigned long)getpid();
        do
            snprintf(bd, sizeof bd, "untild-%lx-%lx", salt++, (unsigned long)attach_len);
        while (memmem(attach, attach_len, bd, strlen(bd)));
        sb_printf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", bd);
        sb_printf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", bd);
        add_crlf(&b, body, strlen(body));
        sb_printf(&b, "--%s\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n", bd);
        add_crlf(&b, attach, attach_len);
        sb_printf(&b, "--%s--\r\n", bd);
    }
    return sb_take(&b, len);
}

struct pending { char *msg; char *to; };

static void notice_done(void *arg, struct relay_result *r)
{
    struct pending *p = arg;
    if (!r->ok)
        log_warn("notice: could not deliver notice to %s: %d %s", p->to, r->code, r->text);
    free(p->msg);
    free(p->to);
    free(p);
}

/* Is this kind of notice wanted by [notify] events? */
static int wanted(const struct untild *u, enum notice_kind kind)
{
    static const char *const names[] = { "held", "flagged", "released", "failed", "stale", "status" };
    const char *ev = u->cfg->notify_events;
    if (kind == NOTICE_OTHER || !ev)
        return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ev);
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (!strcmp(t, "all") || !strcmp(t, names[kind]))
            return 1;
    return 0;
}

int notice_send_kind(struct untild *u, enum notice_kind kind, const char *rep,
                     const char *subject, const char *body, const char *attach,
                     size_t attach_len)
{
    if (!wanted(u, kind)) {
        log_debug("notice: \"%s\" not sent ([notify] events)", subject);
        return 0;
    }
    return notice_send(u, rep, subject, body, attach, attach_len);
}

const char *notice_address(const struct untild *u, const char *rep)
{
    const char *to = u->cfg->notify_to ? u->cfg->notify_to : rep;
    return to && strchr(to, '@') ? to : NULL;
}

int notice_send(struct untild *u, const char *rep, const char *subject,
                const char *body, const char *attach, size_t attach_len)
{
    const char *to = u->cfg->notify_to ? u->cfg->notify_to : rep;
    int mailable = notice_address(u, rep) != NULL;
    if (!mailable && !u->imap) {
        log_warn("notice: no address for rep %s; notice \"%s\" not sent", rep ? rep : "-", subject);
        return -1;
    }
    if (!to)
        to = "rep";
    struct pending *p = calloc(1, sizeof *p);
    size_t len;
    if (!p || !(p->to = strdup(to))
        || !(p->msg = notice_build(u->cfg->notify_from ? u->cfg->notify_from : "untild@localhost",
                                   to, subject, body, attach, attach_len, untild_now(u), &len))) {
        if (p) {
            free(p->to);
            free(p);
        }
        return -1;
    }
    /* Into the rep's mailbox when the IMAP watcher knows the rep. */
    if (u->imap && rep && imap_watch_append(u->imap, rep, p->msg, len) == 0) {
        log_info("notice: \"%s\" appended to %s's mailbox", subject, rep);
        free(p->msg);
        free(p->to);
        free(p);
        return 0;
    }
    if (!mailable) {
        log_warn("notice: no address for rep %s; notice \"%s\" not sent", rep ? rep : "-", subject);
        free(p->msg);
        free(p->to);
        free(p);
        return -1;
    }
    /* Kept in the spool and retried like held mail (the release/discard
     * links in it must reach the rep). */
    if (u->release) {
        char *msg = p->msg;
        free(p->to);
        free(p);
        if (release_notice(u->release, rep, to, subject, msg, len) < 0) {
            log_error("notice: cannot queue \"%s\" to %s", subject, to);
            return -1;
        }
        log_info("notice: \"%s\" to %s", subject, to);
        return 0;
    }
    /* The job's pointers must outlive it: the recipient list is p->to. */
    struct relay_job job = { .mail_from = "", .rcpts = (const char *const *)&p->to, .nrcpts = 1,
                             .data = p->msg, .len = len };
    if (relay_submit(u->relay, &job, notice_done, p) < 0) {
        free(p->msg);
        free(p->to);
        free(p);
        return -1;
    }
    log_info("notice: \"%s\" to %s", subject, to);
    return 0;
}
