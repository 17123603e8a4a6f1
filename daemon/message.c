/* message.c - the facts policy needs about one RFC 5322 message.
 *
 * Synopsis: message_parse() reads the header section (bounded), decodes the
 * Subject (RFC 2047), normalises From, then walks the MIME tree (bounded in
 * depth and in parts) for text/calendar, application/ics and *.ics
 * octet-stream parts. The first calendar part that libical can parse gives
 * the iMIP facts (METHOD from the decoded data, UID, attendees, start...);
 * later calendar parts are not parsed, so the CalConnect structure (the same
 * invitation as text/calendar and as an application/ics attachment) is
 * counted once.
 *
 * Diagnostics: none. Malformed input is never fatal: it shows as missing
 * facts and as ical_errors. Only ENOMEM makes message_parse() fail.
 *
 * The input is never modified: everything works on (pointer, length) views
 * and copies out, so NUL bytes and a missing final newline are harmless.
 * libical runs on the caller's thread (the main thread, see docs/HACKING.md). */
#include "untild/message.h"
#include "untild/when.h"
#include "untild/address.h"

#include <errno.h>
#include <libical/ical.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HDR_MAX_SECTION (1024u * 1024u) /* longer: the rest is body */
#define HDR_MAX_LINE    (64u * 1024u)   /* a longer line ends the headers */
#define MIME_MAX_DEPTH  10              /* nested multipart levels */
#define MIME_MAX_PARTS  200             /* parts looked at, in all */
#define MIME_TYPE_MAX   128
#define MIME_MAX_EVENTS 1000            /* VEVENTs looked at in one part */

struct walk {
    const char *delims;
    size_t max_cal;     /* calendar bytes looked at, at most */
    struct message_facts *f;
    int nparts;
    int chosen;     /* a calendar part gave the iMIP facts */
    int oom;
};

static int is_wsp(char c) { return c == ' ' || c == '\t'; }

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* Case-insensitive compare of n bytes, NUL-safe (the view may hold NULs). */
static int mem_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int str_ends_with_i(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && mem_ieq(s + n - k, suffix, k);
}

static char *wdup(struct walk *w, const char *s)
{
    char *d = strdup(s);
    if (!d)
        w->oom = 1;
    return d;
}

/* Next line of p[off..n): returns the offset after its LF (or n) and the
 * length of its content without CR LF in *content. */
static size_t next_line(const char *p, size_t n, size_t off, size_t *content)
{
    const char *lf = memchr(p + off, '\n', n - off);
    size_t next = lf ? (size_t)(lf - p) + 1 : n;
    size_t c = (lf ? (size_t)(lf - p) : n) - off;
    if (c > 0 && p[off + c - 1] == '\r')
        c--;
    *content = c;
    return next;
}

/* Length of the header section, including the blank line. Without a blank
 * line everything is headers; an over-long line or section ends them there
 * (what follows is body) so that nothing unbounded is kept as a header. */
static size_t header_section(const char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        size_t c, next = next_line(p, n, off, &c);
        if (next - off > HDR_MAX_LINE || next > HDR_MAX_SECTION)
            return off;
        if (c == 0)
            return next;
        off = next;
    }
    return n;
}

/* Find header `name` in p[0..hlen): *out = malloc'd unfolded, trimmed value
 * (NULs dropped) or NULL if absent. Returns -1 only on ENOMEM. */
static int hdr_get(const char *p, size_t hlen, const char *name, char **out)
{
    size_t nlen = strlen(name), off = 0;
    *out = NULL;
    while (off < hlen) {
        size_t c, next = next_line(p, hlen, off, &c);
        const char *colon = is_wsp(p[off]) ? NULL : memchr(p + off, ':', c);
        if (colon) {
            size_t k = (size_t)(colon - (p + off));
            while (k > 0 && is_wsp(p[off + k - 1]))  /* obsolete "Name :" */
                k--;
            if (k == nlen && mem_ieq(p + off, name, nlen)) {
                size_t start = (size_t)(colon - p) + 1, end = next;
                while (end < hlen && is_wsp(p[end]))   /* folded lines */
                    end = next_line(p, hlen, end, &c);
                char *v = malloc(end - start + 1);
                if (!v)
                    return -1;
                size_t o = 0;
                for (size_t i = start; i < end; i++)   /* unfold: drop CR LF */
                    if (p[i] != '\r' && p[i] != '\n' && p[i] != '\0')
                        v[o++] = p[i];
                while (o > 0 && is_wsp(v[o - 1]))
                    o--;
                v[o] = '\0';
                size_t s = 0;
                while (is_wsp(v[s]))
                    s++;
                memmove(v, v + s, o - s + 1);
                *out = v;
                return 0;
            }
        }
        off = next;
    }
    return 0;
}

char *message_header(const char *msg, size_t len, const char *name)
{
    char *v;
    if (!msg || !name)
        return NULL;
    if (hdr_get(msg, header_section(msg, len), name, &v) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    return v;
}

/* --- decoders; out must have room for n bytes (+1 for the caller's NUL) */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Base64, ignoring whitespace and junk; a missing pad is fine. '=' drops
 * the partial group, which also copes with concatenated padded chunks. */
static size_t b64_decode(const char *in, size_t n, char *out)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '=') {
            acc = 0;
            bits = 0;
            continue;
        }
        int v = b64_val((unsigned char)in[i]);
        if (v < 0)
            continue;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    return o;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)lower((unsigned char)c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Quoted-printable (RFC 2045): "=XX", soft line breaks "=" [WSP] EOL;
 * a stray "=" is kept as it is. */
static size_t qp_decode(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '=') {
            out[o++] = in[i];
            continue;
        }
        size_t j = i + 1;
        while (j < n && is_wsp(in[j]))
            j++;
        if (j == n || in[j] == '\n' || (in[j] == '\r' && j + 1 < n && in[j + 1] == '\n')) {
            i = j == n ? n : (in[j] == '\r' ? j + 1 : j);
            continue;
        }
        int hi = i + 2 < n ? hex_val(in[i + 1]) : -1;
        int lo = i + 2 < n ? hex_val(in[i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = '=';
        }
    }
    return o;
}

/* ISO-8859-1 to UTF-8: out needs 2n bytes. */
static size_t latin1_to_utf8(const char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x80) {
            out[o++] = (char)c;
        } else {
            out[o++] = (char)(0xc0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3f));
        }
    }
    return o;
}

enum charset { CS_OTHER, CS_UTF8, CS_LATIN1 };

static enum charset charset_of(const char *s, size_t n)
{
    static const struct { const char *name; enum charset cs; } tab[] = {
        { "utf-8", CS_UTF8 }, { "utf8", CS_UTF8 }, { "us-ascii", CS_UTF8 },
        { "iso-8859-1", CS_LATIN1 }, { "iso8859-1", CS_LATIN1 },
        { "latin1", CS_LATIN1 },
    };
    const char *star = memchr(s, '*', n);   /* RFC 2231 "UTF-8*en" */
    if (star)
        n = (size_t)(star - s);
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].name) == n && mem_ieq(s, tab[i].name, n))
            return tab[i].cs;
    return CS_OTHER;
}

/* Try one encoded-word "=?cs?X?text?=" at s; on success append its UTF-8
 * to out (room: 2 * its length) and return its length, else 0. */
static size_t ew_decode(const char *s, char *out, size_t *olen)
{
    if (s[0] != '=' || s[1] != '?')
        return 0;
    const char *cs = s + 2, *q1 = cs;
    while (*q1 && *q1 != '?' && !is_wsp(*q1))
        q1++;
    if (*q1 != '?' || q1 == cs || !q1[1] || q1[2] != '?')
        return 0;
    char enc = (char)lower((unsigned char)q1[1]);
    const char *text = q1 + 3, *end = text;
    while (*end && *end != '?' && !is_wsp(*end))
        end++;
    if (end[0] != '?' || end[1] != '=' || (enc != 'b' && enc != 'q'))
        return 0;
    enum charset c = charset_of(cs, (size_t)(q1 - cs));
    if (c == CS_OTHER)
        return 0;                               /* kept raw */
    size_t tn = (size_t)(end - text), rn = 0;
    char *raw = malloc(tn + 1);
    if (!raw)
        return 0;
    if (enc == 'b') {
        rn = b64_decode(text, tn, raw);
    } else {
        for (size_t i = 0; i < tn; i++) {
            int hi, lo;
            if (text[i] == '_') {
                raw[rn++] = ' ';
            } else if (text[i] == '=' && i + 2 < tn
                       && (hi = hex_val(text[i + 1])) >= 0
                       && (lo = hex_val(text[i + 2])) >= 0) {
                raw[rn++] = (char)(hi << 4 | lo);
                i += 2;
            } else {
                raw[rn++] = text[i];
            }
        }
    }
    char *o = out + *olen;
    size_t on = c == CS_LATIN1 ? latin1_to_utf8(raw, rn, o)
                               : (memcpy(o, raw, rn), rn);
    free(raw);
    /* Control characters would let a subject forge lines wherever it is
     * shown or stored: NUL goes, the others become spaces. */
    size_t k = 0;
    for (size_t i = 0; i < on; i++) {
        unsigned char ch = (unsigned char)o[i];
        if (ch == 0)
            continue;
        o[k++] = (ch < 0x20 && ch != '\t') || ch == 0x7f ? ' ' : (char)ch;
    }
    *olen += k;
    return (size_t)(end + 2 - s);
}

/* RFC 2047 decoding of an unstructured header into UTF-8; whitespace
 * between two adjacent encoded-words is dropped. NULL on ENOMEM. */
static char *rfc2047_decode(const char *s)
{
    size_t n = strlen(s), olen = 0, mark = 0;
    int after_ew = 0;
    char *out = malloc(2 * n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t save = olen, used = 0;
        if (s[i] == '=' && s[i + 1] == '?') {
            if (after_ew)
                olen = mark;        /* drop the whitespace in between */
            used = ew_decode(s + i, out, &olen);
            if (!used)
                olen = save;
        }
        if (used) {
            i += used;
            after_ew = 1;
            mark = olen;
            continue;
        }
        if (!is_wsp(s[i]))
            after_ew = 0;
        out[olen++] = s[i++];
    }
    out[olen] = '\0';
    return out;
}

/* --- structured header values */

/* "<id@host> (comment)" -> "id@host": the first <...>, else the trimmed
 * value. Works in place; returns v, or NULL (v freed) when empty. */
static char *strip_angle(char *v)
{
    char *lt = strchr(v, '<');
    if (lt) {
        char *gt = strchr(lt + 1, '>');
        size_t k = gt ? (size_t)(gt - lt - 1) : strlen(lt + 1);
        memmove(v, lt + 1, k);
        v[k] = '\0';
    }
    if (!*v) {
        free(v);
        return NULL;
    }
    return v;
}

/* One mailbox of an address list, s[0..n): the addr-spec inside <> or the
 * bare address (comments and unquoted whitespace dropped). 1 if found. */
static int mailbox_spec(const char *s, size_t n, char *out, size_t outsz)
{
    int inq = 0, depth = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {           /* look for a top-level '<' */
        char c = s[i];
        if (inq) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '"')
                inq = 0;
        } else if (depth) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
        } else if (c == '"') {
            inq = 1;
        } else if (c == '(') {
            depth = 1;
        } else if (c == '<') {
            inq = 0;
            for (size_t j = i + 1; j < n && o + 1 < outsz; j++) {
                if (!inq && s[j] == '>')
                    break;
                if (s[j] == '"')
                    inq = !inq;
                if (!is_wsp(s[j]) || inq)
                    out[o++] = s[j];
            }
            out[o] = '\0';
            return o > 0;
        }
    }
    inq = depth = 0;                          /* bare address */
    for (size_t i = 0; i < n && o + 1 < outsz; i++) {
        char c = s[i];
        if (depth) {
            if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            continue;
        }
        if (!inq && c == '(') {
            depth = 1;
            continue;
        }
        if (c == '"')
            inq = !inq;
        if (inq || !is_wsp(c))
            out[o++] = c;
    }
    out[o] = '\0';
    return memchr(out, '@', o) != NULL;
}

/* The first mailbox of an address-list header that has an address. */
static int first_address(const char *v, char *out, size_t outsz)
{
    int inq = 0, depth = 0, angle = 0;
    size_t start = 0, n = strlen(v);
    for (size_t i = 0; i <= n; i++) {
        char c = v[i];
        if (i < n && inq) {
            if (c == '\\' && i + 1 < n)
                i++;
            else if (c == '"')
                inq = 0;
            continue;
        }
        if (i < n && depth) {
            if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            continue;
        }
        if (i < n && c != ',') {
            if (c == '"')
                inq = 1;
            else if (c == '(')
                depth = 1;
            else if (c == '<')
                angle = 1;
            else if (c == '>')
                angle = 0;
            continue;
        }
        if (i < n && angle)
            continue;
        if (mailbox_spec(v + start, i - start, out, outsz))
            return 1;
        start = i + 1;
    }
    return 0;
}

/* Normalised copy of a calendar user address ("mailto:", any case). */
static char *cal_address(struct walk *w, const char *uri)
{
    char norm[ADDR_MAX];
    if (!uri || strncasecmp(uri, "mailto:", 7) != 0)
        return NULL;
    if (address_normalize(uri + 7, w->delims, norm, sizeof norm, NULL) < 0)
        return NULL;
    return wdup(w, norm);
}

/* --- Content-Type parameters */

/* Value of parameter `name` (case-insensitive) in a header value like
 * "type/sub; a=b; name=\"q\"". Also takes RFC 2231 "name*=cs'lang'%xx".
 * *out is malloc'd or NULL; -1 on ENOMEM. */
static int param_get(const char *v, const char *name, char **out)
{
    size_t nlen = strlen(name), i = 0, n = strlen(v);
    char *ext = NULL;
    *out = NULL;
    int inq = 0;
    while (i < n && (inq || v[i] != ';')) {   /* skip the type itself */
        if (v[i] == '"')
            inq = !inq;
        i++;
    }
    while (i < n) {
        while (i < n && (v[i] == ';' || is_wsp(v[i])))
            i++;
        size_t ns = i;
        while (i < n && v[i] != '=' && v[i] != ';')
            i++;
        size_t ne = i;
        while (ne > ns && is_wsp(v[ne - 1]))
            ne--;
        if (i >= n || v[i] != '=')
            continue;
        i++;
        while (i < n && is_wsp(v[i]))
            i++;
        char *val = malloc(n - i + 1);
        if (!val) {
            free(ext);
            return -1;
        }
        size_t o = 0;
        if (i < n && v[i] == '"') {
            for (i++; i < n && v[i] != '"'; i++) {
                if (v[i] == '\\' && i + 1 < n)
                    i++;
                val[o++] = v[i];
            }
            if (i < n)
                i++;
        } else {
            while (i < n && v[i] != ';' && !is_wsp(v[i]))
                val[o++] = v[i++];
        }
        val[o] = '\0';
        size_t k = ne - ns;
        if (k == nlen && mem_ieq(v + ns, name, nlen)) {
            free(ext);
            *out = val;
            return 0;
        }
        if (!ext && k == nlen + 1 && v[ns + nlen] == '*'
            && mem_ieq(v + ns, name, nlen)) {
            /* charset'lang'percent-encoded: keep the bytes after the 2nd ' */
            char *a = strchr(val, '\''), *b = a ? strchr(a + 1, '\'') : NULL;
            const char *src = b ? b + 1 : val;
            size_t d = 0;
            for (size_t s = 0; src[s]; s++) {
                int hi, lo;
                if (src[s] == '%' && (hi = hex_val(src[s + 1])) >= 0
                    && (lo = hex_val(src[s + 2])) >= 0) {
                    val[d++] = (char)(hi << 4 | lo);
                    s += 2;
                } else {
                    val[d++] = src[s];
                }
            }
            val[d] = '\0';
            ext = val;
            continue;
        }
        free(val);
    }
    *out = ext;
    return 0;
}

/* "Text/Calendar; method=..." -> "text/calendar" (bounded, lower case). */
static void mime_type(const char *ct, char *out, size_t outsz)
{
    size_t o = 0;
    const char *s = ct;
    while (is_wsp(*s))
        s++;
    for (; *s && *s != ';' && *s != '(' && !is_wsp(*s) && o + 1 < outsz; s++)
        out[o++] = (char)lower((unsigned char)*s);
    out[o] = '\0';
}

/* --- iCalendar */

static enum imip_method method_from_string(const char *s)
{
    if (!s || !*s)
        return IMIP_NONE;
    if (strcasecmp(s, "REQUEST") == 0)
        return IMIP_REQUEST;
    if (strcasecmp(s, "REPLY") == 0)
        return IMIP_REPLY;
    if (strcasecmp(s, "CANCEL") == 0)
        return IMIP_CANCEL;
    return IMIP_OTHER;
}

static enum imip_method method_from_prop(icalproperty *p)
{
    switch (icalproperty_get_method(p)) {
    case ICAL_METHOD_REQUEST: return IMIP_REQUEST;
    case ICAL_METHOD_REPLY:   return IMIP_REPLY;
    case ICAL_METHOD_CANCEL:  return IMIP_CANCEL;
    default:                  return IMIP_OTHER;
    }
}

/* --- times, without letting message data drive libical's expansion */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* A wall-clock time as seconds, as if it were UTC. */
static long long wall_secs(struct icaltimetype t)
{
    return days_from_civil(t.year, t.month, t.day) * 86400LL
           + t.hour * 3600LL + t.minute * 60LL + t.second;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : dm[m - 1];
}

/* 1 = Sunday ... 7 = Saturday, as libical numbers week days. */
static int weekday(int y, int m, int d)
{
    long long z = days_from_civil(y, m, d);     /* 1970-01-01 was a Thursday */
    return (int)(((z % 7) + 7 + 4) % 7) + 1;
}

/* Day of month of a yearly zone rule in year y, or 0 if the rule is not
 * one of the shapes zones use: BYMONTH=m with BYDAY=nWD (n = 1..5 or
 * -1..-5), or BYDAY=WD with a BYMONTHDAY list ("Sunday on or after"). */
static int zone_rule_day(const struct icalrecurrencetype *r, int y)
{
    if (r->freq != ICAL_YEARLY_RECURRENCE || r->interval > 1
        || r->by_month[0] == ICAL_RECURRENCE_ARRAY_MAX
        || r->by_month[1] != ICAL_RECURRENCE_ARRAY_MAX
        || r->by_day[0] == ICAL_RECURRENCE_ARRAY_MAX
        || r->by_day[1] != ICAL_RECURRENCE_ARRAY_MAX)
        return 0;
    int m = r->by_month[0];
    if (m < 1 || m > 12)
        return 0;
    int wd = (int)icalrecurrencetype_day_day_of_week(r->by_day[0]);
    int pos = icalrecurrencetype_day_position(r->by_day[0]);
    int n = days_in_month(y, m);
    if (wd < 1 || wd > 7)
        return 0;
    if (pos == 0) {
        for (int i = 0; i < ICAL_BY_MONTHDAY_SIZE && r->by_month_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++) {
            int d = r->by_month_day[i];
            if (d >= 1 && d <= n && weekday(y, m, d) == wd)
                return d;
        }
        return 0;
    }
    if (pos > 0) {
        int d = 1 + (wd - weekday(y, m, 1) + 7) % 7 + 7 * (pos - 1);
        return d <= n ? d : 0;
    }
    int d = n - (weekday(y, m, n) - wd + 7) % 7 + 7 * (pos + 1);
    return d >= 1 ? d : 0;
}

#define TZ_MAX_OBSERVANCES 32

/* UTC offset (seconds) in force at wall time `at` in the message's own
 * VTIMEZONE: the latest observance onset at or before `at`, from each
 * STANDARD/DAYLIGHT's DTSTART and its yearly rule in this and the
 * previous year. Fixed cost; libical never expands the zone. *found = 0
 * if nothing applies. */
static int vtimezone_offset(icalcomponent *vtz, struct icaltimetype at, int *found)
{
    long long best = 0, key = wall_secs(at);
    int off = 0, std_off = 0, have_std = 0, k = 0;
    *found = 0;
    for (icalcomponent *o = icalcomponent_get_first_component(vtz, ICAL_ANY_COMPONENT);
         o && k < TZ_MAX_OBSERVANCES; o = icalcomponent_get_next_component(vtz, ICAL_ANY_COMPONENT), k++) {
        icalcomponent_kind ok = icalcomponent_isa(o);
        icalproperty *tp = icalcomponent_get_first_property(o, ICAL_TZOFFSETTO_PROPERTY);
        icalproperty *sp = icalcomponent_get_first_property(o, ICAL_DTSTART_PROPERTY);
        if ((ok != ICAL_XSTANDARD_COMPONENT && ok != ICAL_XDAYLIGHT_COMPONENT) || !tp || !sp)
            continue;
        int to = icalproperty_get_tzoffsetto(tp);
        if (ok == ICAL_XSTANDARD_COMPONENT && !have_std) {
            std_off = to;
            have_std = 1;
        }
        struct icaltimetype st = icalproperty_get_dtstart(sp);
        if (icaltime_is_null_time(st) || !icaltime_is_valid_time(st))
            continue;
        long long cand[3];
        int nc = 0;
        cand[nc++] = wall_secs(st);
        icalproperty *rp = icalcomponent_get_first_property(o, ICAL_RRULE_PROPERTY);
        if (rp) {
            struct icalrecurrencetype r = icalproperty_get_rrule(rp);
            long long until = icaltime_is_null_time(r.until) ? 0 : wall_secs(r.until);
            for (int y = at.year - 1; y <= at.year; y++) {
                int d = zone_rule_day(&r, y);
                if (!d)
                    continue;
                struct icaltimetype on = st;
                on.year = y;
                on.month = r.by_month[0];
                on.day = d;
                long long s = wall_secs(on);
                if (s >= cand[0] && (!until || s <= until))
                    cand[nc++] = s;
            }
        }
        for (int i = 0; i < nc; i++)
            if (cand[i] <= key && (!*found || cand[i] >= best)) {
                best = cand[i];
                off = to;
                *found = 1;
            }
    }
    if (!*found && have_std) {
        *found = 1;
        off = std_off;
    }
    return off;
}

/* The message's VTIMEZONE with this TZID, or NULL. */
static icalcomponent *message_vtimezone(icalcomponent *vcal, const char *tzid)
{
    int k = 0;
    for (icalcomponent *z = icalcomponent_get_first_component(vcal, ICAL_VTIMEZONE_COMPONENT);
         z && k < TZ_MAX_OBSERVANCES; z = icalcomponent_get_next_component(vcal, ICAL_VTIMEZONE_COMPONENT), k++) {
        icalproperty *p = icalcomponent_get_first_property(z, ICAL_TZID_PROPERTY);
        const char *id = p ? icalproperty_get_tzid(p) : NULL;
        if (id && !strcmp(id, tzid))
            return z;
    }
    return NULL;
}

/* Wall time tt (of a property with TZID tzid, or NULL) as time_t.
 * UTC as is; a TZID by name through libical's builtin zones (read from
 * the system's zoneinfo, trusted); else through the message's VTIMEZONE
 * of that name (vtimezone_offset); else (floating, unknown) as UTC. */
static time_t wall_to_time(icalcomponent *vcal, struct icaltimetype tt, const char *tzid)
{
    if (tt.is_date) {
        /* icaltime_set_timezone and friends ignore DATE values (docs/HACKING.md "Library pitfalls") */
        tt.is_date = 0;
        tt.hour = tt.minute = tt.second = 0;
        tzid = NULL;    /* a day is a day: midnight UTC, as before */
    }
    tt.zone = NULL;
    if (icaltime_is_utc(tt) || !tzid)
        return icaltime_as_timet_with_zone(tt, icaltimezone_get_utc_timezone());
    /* Zone names go through when.c's table, never libical's lookup: the
     * parse may run on a worker thread (gate.c), and libical's zone cache
     * is not thread-safe. A name not resolved yet off the loop is noted
     * there and the caller parses again once the loop has resolved it. */
    const char *name = tzid;
    static const char fa[] = "/freeassociation.sourceforge.net/";
    if (!strncmp(name, fa, sizeof fa - 1)) {
        name += sizeof fa - 1;
        if (!strncmp(name, "Tzfile/", 7))
            name += 7;
    }
    time_t at;
    if (when_local_to_utc(tt.year, tt.month, tt.day, tt.hour * 3600 + tt.minute * 60 + tt.second,
                          name, &at) == 0)
        return at;
    int found = 0, off = 0;
    icalcomponent *vtz = message_vtimezone(vcal, tzid);
    if (vtz)
        off = vtimezone_offset(vtz, tt, &found);
    long long s = wall_secs(tt) - (found ? off : 0);
    return (time_t)s;
}

/* A date-time property as time_t (0 if absent or unusable); *wall gets
 * its wall time and *tzid (room 256) its TZID, for converting related
 * times (RRULE occurrences) the same way. */
static time_t prop_time(icalcomponent *vcal, icalproperty *p, struct icaltimetype *wall,
                        char tzid[256])
{
    tzid[0] = '\0';
    if (!p)
        return 0;
    icalvalue *v = icalproperty_get_value(p);
    if (!v)
        return 0;
    icalvalue_kind vk = icalvalue_isa(v);
    struct icaltimetype tt;
    if (vk == ICAL_PERIOD_VALUE)
        tt = icalvalue_get_period(v).start;
    else if (vk == ICAL_DATETIME_VALUE || vk == ICAL_DATE_VALUE
             || vk == ICAL_DATETIMEDATE_VALUE)
        tt = icalvalue_get_datetime(v);
    else if (vk == ICAL_DATETIMEPERIOD_VALUE)
        tt = icalvalue_get_datetimeperiod(v).time;
    else
        return 0;
    if (icaltime_is_null_time(tt) || !icaltime_is_valid_time(tt))
        return 0;
    icalparameter *tp = icalproperty_get_first_parameter(p, ICAL_TZID_PARAMETER);
    const char *t = tp ? icalparameter_get_tzid(tp) : NULL;
    if (t && strlen(t) < 256)
        strcpy(tzid, t);        /* copied before libical runs again */
    if (wall)
        *wall = tt;
    return wall_to_time(vcal, tt, tzid[0] ? tzid : NULL);
}

/* --- recurrence: the start of the last occurrence, at bounded cost */

#define RECUR_MAX_STEPS 1000    /* occurrences followed for one rule */
#define RECUR_BUDGET 2000       /* ... and for all the rules of one part */

static long long freq_seconds(icalrecurrencetype_frequency f)
{
    switch (f) {
    case ICAL_SECONDLY_RECURRENCE: return 1;
    case ICAL_MINUTELY_RECURRENCE: return 60;
    case ICAL_HOURLY_RECURRENCE:   return 3600;
    default:                       return 0;
    }
}

static int by_empty(const short *a)
{
    return a[0] == ICAL_RECURRENCE_ARRAY_MAX;
}

static int rule_has_by_parts(const struct icalrecurrencetype *r)
{
    return !by_empty(r->by_second) || !by_empty(r->by_minute) || !by_empty(r->by_hour)
        || !by_empty(r->by_day) || !by_empty(r->by_month_day) || !by_empty(r->by_year_day)
        || !by_empty(r->by_week_no) || !by_empty(r->by_month) || !by_empty(r->by_set_pos);
}

/* Does every period of a DAILY or coarser rule hold an occurrence (so
 * each step of libical's iterator does at most a period's work)? Only
 * the shapes calendars write: BYDAY without ordinals or with 1..4 / -1..-4
 * (MONTHLY), BYMONTHDAY within 1..28 / -1..-28, BYMONTH (YEARLY), and the
 * expanding BYHOUR/BYMINUTE/BYSECOND. A rare rule (29 February on a
 * Monday) makes one step scan centuries: not followed. */
static int rule_is_dense(const struct icalrecurrencetype *r)
{
    if (!by_empty(r->by_year_day) || !by_empty(r->by_week_no) || !by_empty(r->by_set_pos))
        return 0;
    for (int i = 0; i < ICAL_BY_DAY_SIZE && r->by_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++) {
        int pos = icalrecurrencetype_day_position(r->by_day[i]);
        if (pos && (r->freq != ICAL_MONTHLY_RECURRENCE || pos > 4 || pos < -4))
            return 0;
        if (!pos && r->freq == ICAL_DAILY_RECURRENCE && !by_empty(r->by_month_day))
            return 0;
    }
    for (int i = 0; i < ICAL_BY_MONTHDAY_SIZE && r->by_month_day[i] != ICAL_RECURRENCE_ARRAY_MAX; i++)
        if (r->by_month_day[i] > 28 || r->by_month_day[i] < -28 || r->freq == ICAL_DAILY_RECURRENCE
            || r->freq == ICAL_WEEKLY_RECURRENCE || !by_empty(r->by_day))
            return 0;
    if (!by_empty(r->by_month) && r->freq != ICAL_YEARLY_RECURRENCE)
        return 0;
    return 1;
}

/* Last occurrence start of one RRULE from wall time start, as time_t
 * (through tzid), or IMIP_OPEN_ENDED. UNTIL bounds it without iterating.
 * COUNT is followed with libical's iterator only for dense DAILY or
 * coarser rules (rule_is_dense: each step costs at most a period), at
 * most RECUR_MAX_STEPS steps and RECUR_BUDGET for the whole part (*budget);
 * finer rules are computed when they have no
 * BY parts; anything else is called open-ended (never stale: the
 * invitation is sent rather than dropped). */
static time_t rrule_last(icalcomponent *vcal, struct icalrecurrencetype r,
                         struct icaltimetype start, const char *tzid, int *budget)
{
    if (!icaltime_is_null_time(r.until)) {
        struct icaltimetype u = r.until;
        if (icaltime_is_utc(u))
            return wall_to_time(vcal, u, NULL);
        if (u.is_date) {
            u.is_date = 0;
            u.hour = 23;
            u.minute = u.second = 59;
        }
        return wall_to_time(vcal, u, tzid);
    }
    if (r.count <= 0)
        return IMIP_OPEN_ENDED;
    int interval = r.interval > 0 ? r.interval : 1;
    long long unit = freq_seconds(r.freq);
    if (unit) {
        if (rule_has_by_parts(&r))
            return IMIP_OPEN_ENDED;
        return wall_to_time(vcal, start, tzid) + (time_t)((long long)(r.count - 1) * interval * unit);
    }
    if (r.freq == ICAL_NO_RECURRENCE || r.count > RECUR_MAX_STEPS || r.count > *budget
        || !rule_is_dense(&r))
        return IMIP_OPEN_ENDED;
    *budget -= r.count;
    start.is_date = 0;
    start.zone = NULL;
    icalrecur_iterator *it = icalrecur_iterator_new(r, start);
    if (!it)
        return IMIP_OPEN_ENDED;
    struct icaltimetype last = icaltime_null_time(), n;
    for (int i = 0; i < RECUR_MAX_STEPS && !icaltime_is_null_time(n = icalrecur_iterator_next(it)); i++)
        last = n;
    icalrecur_iterator_free(it);
    if (icaltime_is_null_time(last))
        return wall_to_time(vcal, start, tzid);
    return wall_to_time(vcal, last, tzid);
}

/* ical_last of one VEVENT: its own start, or its series' last start. */
static time_t event_last(icalcomponent *vcal, icalcomponent *ev, int *budget)
{
    struct icaltimetype wall;
    char tzid[256];
    time_t start = prop_time(vcal, icalcomponent_get_first_property(ev, ICAL_DTSTART_PROPERTY),
                             &wall, tzid);
    if (!start)
        return 0;
    time_t last = start;
    int k = 0;
    for (icalproperty *p = icalcomponent_get_first_property(ev, ICAL_RRULE_PROPERTY);
         p && k < 8; p = icalcomponent_get_next_property(ev, ICAL_RRULE_PROPERTY), k++) {
        time_t t = rrule_last(vcal, icalproperty_get_rrule(p), wall, tzid[0] ? tzid : NULL, budget);
        if (t == IMIP_OPEN_ENDED)
            return IMIP_OPEN_ENDED;
        if (t > last)
            last = t;
    }
    k = 0;
    for (icalproperty *p = icalcomponent_get_first_property(ev, ICAL_RDATE_PROPERTY);
         p && k < 1000; p = icalcomponent_get_next_property(ev, ICAL_RDATE_PROPERTY), k++) {
        char tz2[256];
        time_t t = prop_time(vcal, p, NULL, tz2);
        if (t > last)
            last = t;
    }
    return last;
}

/* --- libical's complaints: which ones matter */

/* Properties whose value takes part in a decision. */
static int prop_matters(const char *name)
{
    static const char *const used[] = {
        "METHOD", "UID", "ORGANIZER", "ATTENDEE", "DTSTART", "RRULE", "RDATE",
        "RECURRENCE-ID", "SEQUENCE", "STATUS",
    };
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++)
        if (!strcasecmp(name, used[i]))
            return 1;
    return 0;
}

/* The property an X-LIC-ERROR text names ("No value for LOCATION
 * property...", "Can't parse as DATE-TIME value in DTSTART property..."),
 * copied to out; 0 if it names none. */
static int error_prop_name(const char *text, char *out, size_t outsz)
{
    const char *end = text ? strstr(text, " property") : NULL;
    if (!end)
        return 0;
    const char *b = end;
    while (b > text && b[-1] != ' ')
        b--;
    size_t n = (size_t)(end - b);
    if (n == 0 || n >= outsz)
        return 0;
    memcpy(out, b, n);
    out[n] = '\0';
    return 1;
}

/* Count libical's X-LIC-ERRORs under c: those about a property untild
 * reads, or that cannot be tied to one, in ical_errors; the rest (empty
 * LOCATION:, DESCRIPTION:..., anything inside VTIMEZONE or VALARM) in
 * ical_ignored. A parameter error is tied to the property before it. */
static void count_errors(struct walk *w, icalcomponent *c, int depth)
{
    icalcomponent_kind k = icalcomponent_isa(c);
    int harmless = k == ICAL_VTIMEZONE_COMPONENT || k == ICAL_VALARM_COMPONENT;
    char prev[32] = "", name[32];
    for (icalproperty *p = icalcomponent_get_first_property(c, ICAL_ANY_PROPERTY); p;
         p = icalcomponent_get_next_property(c, ICAL_ANY_PROPERTY)) {
        if (icalproperty_isa(p) != ICAL_XLICERROR_PROPERTY) {
            const char *pn = icalproperty_get_property_name(p);
            snprintf(prev, sizeof prev, "%s", pn ? pn : "");
            continue;
        }
        if (!error_prop_name(icalproperty_get_xlicerror(p), name, sizeof name))
            snprintf(name, sizeof name, "%s", prev);
        if (harmless || (name[0] && !prop_matters(name))) {
            w->f->ical_ignored++;
            continue;
        }
        if (!w->f->ical_errors)
            snprintf(w->f->ical_error_prop, sizeof w->f->ical_error_prop, "%s",
                     name[0] ? name : "(structure)");
        w->f->ical_errors++;
    }
    if (depth < 4)
        for (icalcomponent *s = icalcomponent_get_first_component(c, ICAL_ANY_COMPONENT); s;
             s = icalcomponent_get_next_component(c, ICAL_ANY_COMPONENT))
            count_errors(w, s, depth + 1);
}

static void add_attendee(struct walk *w, const char *uri)
{
    struct message_facts *f = w->f;
    if (f->nattendees >= MSG_MAX_ATTENDEES)
        return;
    char *a = cal_address(w, uri);
    if (!a)
        return;
    for (size_t i = 0; i < f->nattendees; i++)
        if (strcmp(f->attendees[i], a) == 0) {
            free(a);
            return;
        }
    f->attendees[f->nattendees++] = a;
}

/* RECURRENCE-ID as a stable key: the UTC instant, whatever zone form the
 * client wrote it in; a DATE as the date. */
static void recurrence_key(struct walk *w, icalcomponent *vcal, icalproperty *rp)
{
    struct icaltimetype wall;
    char tzid[256], buf[32];
    time_t t = prop_time(vcal, rp, &wall, tzid);
    if (!t)
        return;
    if (wall.is_date) {
        snprintf(buf, sizeof buf, "%04d%02d%02d", wall.year, wall.month, wall.day);
    } else {
        struct tm tm;
        if (!gmtime_r(&t, &tm))
            return;
        strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    }
    w->f->ical_recurrence_id = wdup(w, buf);
}

/* Take the iMIP facts from a parsed VCALENDAR. */
static void ical_facts(struct walk *w, icalcomponent *vcal, const char *ct)
{
    struct message_facts *f = w->f;
    icalproperty *mp = icalcomponent_get_first_property(vcal, ICAL_METHOD_PROPERTY);
    if (mp) {
        f->method = method_from_prop(mp);
    } else {
        char *pm;
        if (param_get(ct, "method", &pm) < 0) {
            w->oom = 1;
            return;
        }
        f->method = method_from_string(pm);
        free(pm);
    }

    /* The first VEVENT (else VTODO), preferring the master over an
     * overridden instance (one with RECURRENCE-ID). */
    icalcomponent_kind kind = ICAL_VEVENT_COMPONENT;
    icalcomponent *first = icalcomponent_get_first_component(vcal, kind);
    if (!first) {
        kind = ICAL_VTODO_COMPONENT;
        first = icalcomponent_get_first_component(vcal, kind);
    }
    if (!first)
        return;
    icalcomponent *ev = NULL;
    for (icalcomponent *c = first; c && !ev;
         c = icalcomponent_get_next_component(vcal, kind))
        if (!icalcomponent_get_first_property(c, ICAL_RECURRENCEID_PROPERTY))
            ev = c;
    if (!ev) {      /* occurrence(s) only: this message is about one occurrence */
        ev = first;
        recurrence_key(w, vcal, icalcomponent_get_first_property(ev, ICAL_RECURRENCEID_PROPERTY));
    }

    const char *s = icalcomponent_get_uid(ev);
    if (s && *s)
        f->ical_uid = wdup(w, s);
    f->ical_sequence = icalcomponent_get_sequence(ev);
    s = icalcomponent_get_summary(ev);
    if (s && *s)
        f->summary = wdup(w, s);
    icalproperty *op = icalcomponent_get_first_property(ev, ICAL_ORGANIZER_PROPERTY);
    if (op)
        f->organizer = cal_address(w, icalproperty_get_organizer(op));
    char tzid[256];
    f->dtstart = prop_time(vcal, icalcomponent_get_first_property(ev, ICAL_DTSTART_PROPERTY),
                           NULL, tzid);

    /* Attendees of every instance: an override may invite someone else;
     * and an override may move an occurrence after the series' end. */
    int k = 0, budget = RECUR_BUDGET;
    for (icalcomponent *c = icalcomponent_get_first_component(vcal, kind); c && k < MIME_MAX_EVENTS;
         c = icalcomponent_get_next_component(vcal, kind), k++) {
        for (icalproperty *p = icalcomponent_get_first_property(c, ICAL_ATTENDEE_PROPERTY);
             p; p = icalcomponent_get_next_property(c, ICAL_ATTENDEE_PROPERTY))
            add_attendee(w, icalproperty_get_attendee(p));
        time_t l = event_last(vcal, c, &budget);
        if (f->ical_last != IMIP_OPEN_ENDED && (l == IMIP_OPEN_ENDED || l > f->ical_last))
            f->ical_last = l;
    }
}

/* A calendar part: decode, parse, and take its facts if it is usable. */
static void calendar_part(struct walk *w, const char *hdr, size_t hlen,
                          const char *body, size_t blen, const char *ct)
{
    char *cte = NULL, *cs = NULL;
    w->f->ical_size += blen;
    if (w->f->ical_size > w->max_cal) {
        /* Not parsed at all: the message is plain mail (never an
         * exception to a hold), and nothing later is looked at. */
        w->f->ical_part = MSG_ICAL_TOO_LARGE;
        w->chosen = 1;
        return;
    }
    if (hdr_get(hdr, hlen, "Content-Transfer-Encoding", &cte) < 0
        || param_get(ct, "charset", &cs) < 0) {
        free(cte);
        w->oom = 1;
        return;
    }
    char enc[32];
    mime_type(cte ? cte : "", enc, sizeof enc);
    free(cte);
    int latin1 = cs && charset_of(cs, strlen(cs)) == CS_LATIN1;
    free(cs);

    char *raw = malloc(blen + 1);
    if (!raw) {
        w->oom = 1;
        return;
    }
    size_t n;
    if (strcmp(enc, "base64") == 0)
        n = b64_decode(body, blen, raw);
    else if (strcmp(enc, "quoted-printable") == 0)
        n = qp_decode(body, blen, raw);
    else                                /* 7bit, 8bit, binary, unknown */
        n = (memcpy(raw, body, blen), blen);
    char *data = raw;
    if (latin1) {
        data = malloc(2 * n + 1);
        if (!data) {
            free(raw);
            w->oom = 1;
            return;
        }
        n = latin1_to_utf8(raw, n, data);
        free(raw);
    }
    data[n] = '\0';

    icalcomponent *root = icalparser_parse_string(data);
    icalcomponent *vcal = root;
    if (root && icalcomponent_isa(root) == ICAL_XROOT_COMPONENT)
        vcal = icalcomponent_get_first_component(root, ICAL_VCALENDAR_COMPONENT);
    if (!vcal || icalcomponent_isa(vcal) != ICAL_VCALENDAR_COMPONENT) {
        /* undecodable: plain mail, unless a later part is usable */
        w->f->ical_errors++;
        if (!w->f->ical_error_prop[0])
            snprintf(w->f->ical_error_prop, sizeof w->f->ical_error_prop, "(not iCalendar)");
        if (w->f->ical_part == MSG_ICAL_NONE)
            w->f->ical_part = MSG_ICAL_UNUSABLE;
        if (root)
            icalcomponent_free(root);
        free(data);
        return;
    }
    count_errors(w, root, 0);
    w->chosen = 1;
    w->f->ical_part = MSG_ICAL_USED;
    w->f->ical_data = data;
    ical_facts(w, vcal, ct);
    icalcomponent_free(root);
}

static int is_calendar(const char *type, const char *hdr, size_t hlen,
                       const char *ct, struct walk *w)
{
    if (strcmp(type, "text/calendar") == 0 || strcmp(type, "application/ics") == 0)
        return 1;
    if (strcmp(type, "application/octet-stream") != 0)
        return 0;
    char *cd = NULL, *fn = NULL;
    if (hdr_get(hdr, hlen, "Content-Disposition", &cd) < 0
        || (cd && param_get(cd, "filename", &fn) < 0)
        || (!fn && param_get(ct, "name", &fn) < 0)) {
        free(cd);
        w->oom = 1;
        return 0;
    }
    int yes = fn && str_ends_with_i(fn, ".ics");
    free(cd);
    free(fn);
    return yes;
}

static void walk_part(struct walk *w, const char *p, size_t n, int depth);

/* The body parts of a multipart: between "--boundary" lines, the line
 * break before each delimiter belonging to it. A missing close delimiter
 * ends the last part at the end of the body. */
static void walk_multipart(struct walk *w, const char *p, size_t n,
                           const char *boundary, int depth)
{
    size_t bl = strlen(boundary), off = 0, start = 0;
    int in_part = 0;
    while (off < n && !w->chosen && !w->oom && w->nparts < MIME_MAX_PARTS) {
        size_t c, next = next_line(p, n, off, &c);
        if (c >= 2 + bl && p[off] == '-' && p[off + 1] == '-'
            && memcmp(p + off + 2, boundary, bl) == 0) {
            const char *rest = p + off + 2 + bl;
            size_t rl = c - 2 - bl, k = 0;
            int close = rl >= 2 && rest[0] == '-' && rest[1] == '-';
            while (k < rl && is_wsp(rest[k]))
                k++;
            if (close || k == rl) {
                if (in_part) {
                    size_t end = off;
                    if (end > start && p[end - 1] == '\n')
                        end--;
                    if (end > start && p[end - 1] == '\r')
                        end--;
                    walk_part(w, p + start, end - start, depth);
                }
                if (close)
                    return;         /* the epilogue is not a part */
                in_part = 1;
                start = next;
            }
        }
        off = next;
    }
    if (in_part && !w->chosen && !w->oom)
        walk_part(w, p + start, n - start, depth);
}

static void walk_part(struct walk *w, const char *p, size_t n, int depth)
{
    if (w->chosen || w->oom || depth > MIME_MAX_DEPTH
        || ++w->nparts > MIME_MAX_PARTS)
        return;
    size_t hlen = header_section(p, n);
    char *ct = NULL;
    if (hdr_get(p, hlen, "Content-Type", &ct) < 0) {
        w->oom = 1;
        return;
    }
    char type[MIME_TYPE_MAX];
    mime_type(ct ? ct : "text/plain", type, sizeof type);
    if (strncmp(type, "multipart/", 10) == 0) {
        char *b = NULL;
        if (param_get(ct, "boundary", &b) < 0)
            w->oom = 1;
        else if (b && *b)
            walk_multipart(w, p + hlen, n - hlen, b, depth + 1);
        free(b);
    } else if (ct && is_calendar(type, p, hlen, ct, w)) {
        calendar_part(w, p, hlen, p + hlen, n - hlen, ct);
    }
    free(ct);
}

void message_facts_free(struct message_facts *f)
{
    if (!f)
        return;
    free(f->subject);
    free(f->message_id);
    free(f->in_reply_to);
    free(f->references);
    free(f->from);
    free(f->date);
    free(f->ical_uid);
    free(f->ical_recurrence_id);
    free(f->organizer);
    for (size_t i = 0; i < f->nattendees && i < MSG_MAX_ATTENDEES; i++)
        free(f->attendees[i]);
    free(f->summary);
    free(f->ical_data);
    memset(f, 0, sizeof *f);
}

int message_parse(const char *msg, size_t len, const char *delims,
                  struct message_facts *f)
{
    return message_parse_max(msg, len, delims, 0, f);
}

int message_parse_max(const char *msg, size_t len, const char *delims,
                      size_t max_cal, struct message_facts *f)
{
    struct walk w = { .delims = delims, .f = f,
                      .max_cal = max_cal ? max_cal : MESSAGE_MAX_CALENDAR_DEFAULT };
    char *v = NULL;
    memset(f, 0, sizeof *f);
    if (!msg)
        len = 0;
    if (!msg)
        msg = "";
    size_t hlen = header_section(msg, len);
    f->header_len = hlen;

    if (hdr_get(msg, hlen, "Subject", &v) < 0)
        goto oom;
    if (v) {
        f->subject = rfc2047_decode(v);
        free(v);
        if (!f->subject)
            goto oom;
    }
    if (hdr_get(msg, hlen, "Message-ID", &v) < 0)
        goto oom;
    f->message_id = v ? strip_angle(v) : NULL;
    if (hdr_get(msg, hlen, "In-Reply-To", &v) < 0)
        goto oom;
    f->in_reply_to = v ? strip_angle(v) : NULL;
    if (hdr_get(msg, hlen, "References", &f->references) < 0
        || hdr_get(msg, hlen, "Date", &f->date) < 0
        || hdr_get(msg, hlen, "From", &v) < 0)
        goto oom;
    if (v) {
        char spec[ADDR_MAX], norm[ADDR_MAX];
        if (first_address(v, spec, sizeof spec)
            && address_normalize(spec, delims, norm, sizeof norm, NULL) == 0)
            f->from = wdup(&w, norm);
        free(v);
    }

    walk_part(&w, msg, len, 0);
    if (w.oom)
        goto oom;
    return 0;
oom:
    message_facts_free(f);
    errno = ENOMEM;
    return -1;
}
