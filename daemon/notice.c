/* notice.c - notices to the rep: RFC 5322 messages (UTF-8 text, the
 * command addresses as mailto: links, optionally the affected message
 * attached) handed to the relay like any other mail, but never gated:
 * they go to the rep, not to a customer.
 *
 * Every message untild generates is built with notice_header and
 * notice_text, which keep RFC 5322's limits whatever the content (300
 * recipients, a 5 KB subject): no line over 998 octets, headers folded at
 * 78 columns where they can be, non-ASCII header text as RFC 2047
 * encoded-words of whole characters (at most 76 columns a line), long text
 * lines wrapped at white space or commas. An upstream may refuse a longer
 * line, and the notice would be lost with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "untild/notice.h"
#include "untild/daemon.h"
#include "untild/log.h"
#include "untild/relay.h"
#include "untild/strbuf.h"

/* ---- RFC 5322 limits (every generated message goes through here) ---- */

#define SOFT_MAX 78            /* RFC 5322 2.1.1: SHOULD */
#define EW_LINE_MAX 76         /* RFC 2047 2: a line with encoded-words */
#define EW_OVERHEAD 12         /* "=?UTF-8?B?" + "?=" */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void add_b64(struct strbuf *b, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n) v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        char o[4] = { b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                      i + 1 < n ? b64[(v >> 6) & 63] : '=', i + 2 < n ? b64[v & 63] : '=' };
        sb_add(b, o, 4);
    }
}

/* Length of the valid UTF-8 character at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n || (len == 2 && s[0] < 0xc2) || (len == 4 && s[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Header value cleaned for one line: control characters become spaces,
 * invalid UTF-8 becomes U+FFFD. *ascii: nothing needs encoding. */
static char *clean_value(const char *v, int *ascii)
{
    struct strbuf o = { 0 };
    size_t n = strlen(v);
    *ascii = 1;
    for (size_t i = 0; i < n;) {
        const unsigned char *c = (const unsigned char *)v + i;
        size_t l = utf8_len(c, n - i);
        if (!l) {
            sb_puts(&o, "\xef\xbf\xbd");
            *ascii = 0;
            i++;
        } else if (l == 1) {
            sb_add(&o, (*c < 0x20 || *c == 0x7f) ? " " : (const char *)c, 1);
            i++;
        } else {
            sb_add(&o, c, l);
            *ascii = 0;
            i += l;
        }
    }
    while (o.len && o.p[o.len - 1] == ' ')   /* no white-space-only fold */
        o.p[--o.len] = '\0';
    if (o.p && strstr(o.p, "=?"))     /* would read as an encoded-word */
        *ascii = 0;
    return sb_take(&o, NULL);
}

/* Encoded-words (UTF-8, B), each whole characters and within the line
 * budget, separated by folding white space. col: where the value starts. */
static void add_encoded(struct strbuf *b, const char *v, size_t col)
{
    const unsigned char *s = (const unsigned char *)v;
    size_t n = strlen(v), i = 0;
    while (i < n) {
        size_t avail = EW_LINE_MAX > col + EW_OVERHEAD ? EW_LINE_MAX - col - EW_OVERHEAD : 0;
        size_t max = avail / 4 * 3, take = 0;
        if (max < 4)
            max = 4;                     /* one character always fits a word */
        while (i + take < n) {
            size_t l = utf8_len(s + i + take, n - i - take);
            if (!l)
                l = 1;                   /* cleaned already: cannot happen */
            if (take + l > max)
                break;
            take += l;
        }
        if (!take)
            take = 1;
        sb_puts(b, "=?UTF-8?B?");
        add_b64(b, s + i, take);
        sb_puts(b, "?=");
        i += take;
        if (i < n) {
            sb_puts(b, "\r\n ");
            col = 1;
        }
    }
}

void notice_header(struct strbuf *b, const char *name, const char *value)
{
    int ascii;
    char *v = clean_value(value ? value : "", &ascii);
    if (!v) {
        b->oom = 1;
        return;
    }
    size_t col = strlen(name) + 2;
    /* A word too long for any line is carried in encoded-words. */
    for (const char *w = v; ascii && *w; w += strcspn(w, " "), w += strspn(w, " "))
        if (strcspn(w, " ") > NOTICE_LINE_MAX - 2)
            ascii = 0;
    sb_printf(b, "%s: ", name);
    if (!ascii) {
        add_encoded(b, v, col);
    } else {
        /* Fold at spaces: before a word that would pass 78 columns. */
        const char *p = v;
        int first = 1;
        while (*p) {
            size_t sp = strspn(p, " "), wl = strcspn(p + sp, " ");
            if (!first && sp && col + sp + wl > SOFT_MAX) {
                sb_puts(b, "\r\n ");
                col = 1;
                p += sp;
                sp = 0;
            }
            sb_add(b, p, sp + wl);
            col += sp + wl;
            p += sp + wl;
            first = 0;
        }
    }
    sb_puts(b, "\r\n");
    free(v);
}

/* Where a long line may break: after a space (dropped) or a comma (kept),
 * the last one at or before max; 0 if none. */
static size_t break_before(const char *s, size_t max)
{
    for (size_t i = max; i > 0; i--)
        if (s[i] == ' ' || s[i - 1] == ',')
            return i;
    return 0;
}

static size_t break_after(const char *s, size_t from, size_t max)
{
    for (size_t i = from; i < max; i++)
        if (s[i] == ' ' || (i && s[i - 1] == ','))
            return i;
    return 0;
}

/* One text line (no line end), wrapped if it is over the limit:
 * continuation lines are indented by two spaces. */
static void add_line(struct strbuf *b, const char *s, size_t n)
{
    if (n <= NOTICE_LINE_MAX) {
        sb_add(b, s, n);
        sb_add(b, "\r\n", 2);
        return;
    }
    int first = 1;
    while (n) {
        size_t indent = first ? 0 : 2, soft = SOFT_MAX - indent, hard = NOTICE_LINE_MAX - indent;
        size_t cut = n;
        if (n > soft) {
            cut = break_before(s, soft);
            if (!cut)
                cut = break_after(s, soft, n < hard ? n : hard);
            if (!cut) {                  /* no break point: between characters */
                cut = n < hard ? n : hard;
                while (cut < n && cut > 1 && ((unsigned char)s[cut] & 0xc0) == 0x80)
                    cut--;
            }
        }
        sb_add(b, "  ", indent);
        sb_add(b, s, cut);
        sb_add(b, "\r\n", 2);
        s += cut;
        n -= cut;
        while (n && *s == ' ') {
            s++;
            n--;
        }
        first = 0;
    }
}

void notice_text(struct strbuf *b, const char *s, size_t n)
{
    struct strbuf line = { 0 };
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            add_line(b, line.p ? line.p : "", line.len);
            line.len = 0;
        } else if (s[i] == '\r') {
            if (i + 1 < n && s[i + 1] == '\n')
                continue;
            sb_add(&line, " ", 1);       /* a bare CR ends no line */
        } else if (s[i]) {
            sb_add(&line, &s[i], 1);
        }
    }
    if (line.len)
        add_line(b, line.p, line.len);
    if (line.oom)
        b->oom = 1;
    sb_free(&line);
}

/* The longest line of data (without its line end). */
static size_t longest_line(const char *s, size_t n)
{
    size_t best = 0, cur = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            if (cur && s[i - 1] == '\r')
                cur--;
            if (cur > best)
                best = cur;
            cur = 0;
        } else {
            cur++;
        }
    }
    return cur > best ? cur : best;
}

/* The attached message as is (CRLF lines), or, if a line of it is over the
 * limit, base64 as a file: either way no line over 998 octets. */
static void add_attachment(struct strbuf *b, const char *bd, const char *attach, size_t len)
{
    if (longest_line(attach, len) <= NOTICE_LINE_MAX) {
        sb_printf(b, "--%s\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n", bd);
        for (size_t i = 0; i < len; i++) {
            if (attach[i] == '\n' && (i == 0 || attach[i - 1] != '\r'))
                sb_add(b, "\r\n", 2);
            else
                sb_add(b, &attach[i], 1);
        }
        if (len && attach[len - 1] != '\n')
            sb_add(b, "\r\n", 2);
        return;
    }
    sb_printf(b, "--%s\r\nContent-Type: application/octet-stream; name=\"message.eml\"\r\n"
              "Content-Disposition: attachment; filename=\"message.eml\"\r\n"
              "Content-Transfer-Encoding: base64\r\n\r\n", bd);
    for (size_t i = 0; i < len; i += 57) {
        add_b64(b, (const unsigned char *)attach + i, len - i < 57 ? len - i : 57);
        sb_add(b, "\r\n", 2);
    }
}

char *notice_build(const char *from, const char *to, const char *subject,
                   const char *body, const char *attach, size_t attach_len,
                   time_t now, size_t *len)
{
    struct strbuf b = { 0 };
    char date[64], v[1024];
    struct tm tm;
    static unsigned long counter;   /* uniqueness within one second only */

    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    snprintf(v, sizeof v, "untild <%s>", from);
    notice_header(&b, "From", v);
    snprintf(v, sizeof v, "<%s>", to);
    notice_header(&b, "To", v);
    notice_header(&b, "Subject", subject);
    sb_printf(&b, "Date: %s\r\nMessage-ID: <untild.%lld.%ld.%lu@%.200s>\r\n", date, (long long)now,
              (long)getpid(), __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED),
              strchr(from, '@') ? strchr(from, '@') + 1 : "localhost");
    sb_puts(&b, "Auto-Submitted: auto-generated\r\nX-Untild: notice\r\nMIME-Version: 1.0\r\n");
    if (!attach) {
        sb_puts(&b, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
        notice_text(&b, body, strlen(body));
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
        notice_text(&b, body, strlen(body));
        add_attachment(&b, bd, attach, attach_len);
        sb_printf(&b, "--%s--\r\n", bd);
    }
    if (b.oom) {
        sb_free(&b);
        return NULL;
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

const char *notice_address(const struct untild *u, const char *rep)
{
    const char *to = u->cfg->notify_to ? u->cfg->notify_to : rep;
    return to && strchr(to, '@') ? to : NULL;
}

static int send_notice(struct untild *u, const char *rep, const char *subject,
                       const char *body, const char *attach, size_t attach_len)
{
    const char *to = u->cfg->notify_to ? u->cfg->notify_to : rep;
    int mailable = notice_address(u, rep) != NULL;
    if (!mailable && !u->notice_append) {
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
    if (u->notice_append && rep && u->notice_append(u->notice_append_arg, rep, p->msg, len) == 0) {
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
    if (u->notice_queue) {
        char *msg = p->msg;
        free(p->to);
        free(p);
        if (u->notice_queue(u->notice_queue_arg, rep, to, subject, msg, len) < 0) {
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

int notice_send(struct untild *u, enum notice_kind kind, const char *rep, const char *body,
                const char *attach, size_t attach_len)
{
    return notice_send_subject(u, kind, rep, NULL, body, attach, attach_len);
}

int notice_send_subject(struct untild *u, enum notice_kind kind, const char *rep, const char *subject,
                        const char *body, const char *attach, size_t attach_len)
{
    if (!subject)
        subject = notice_kind_subject(kind);
    if (!notice_kind_wanted(u->cfg->notify_events, kind)) {
        log_debug("notice: \"%s\" not sent ([notify] events)", subject);
        return 0;
    }
    return send_notice(u, rep, subject, body, attach, attach_len);
}
