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
#include "untild/address.h"

#include <errno.h>
#include <libical/ical.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HDR_MAX_SECTION (1024u * 1024u) /* longer: the rest is body */
#define HDR_MAX_LINE    (64u * 1024u)   /* a longer line ends the headers */
#define MIME_MAX_DEPTH  10              /* nested multipart levels */
#define MIME_MAX_PARTS  200             /* parts looked at, in all */
#define MIME_TYPE_MAX   128

struct walk {
    const char *delims;
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

/* DTSTART as time_t: UTC as is; TZID through the VCALENDAR's VTIMEZONE,
 * else libical's builtin zone of that name; floating and DATE as UTC. */
static time_t dtstart_of(icalcomponent *vcal, icalcomponent *ev)
{
    icalproperty *dp = icalcomponent_get_first_property(ev, ICAL_DTSTART_PROPERTY);
    if (!dp)
        return 0;
    struct icaltimetype tt = icalproperty_get_dtstart(dp);
    if (icaltime_is_null_time(tt) || !icaltime_is_valid_time(tt))
        return 0;
    icaltimezone *zone = NULL;
    if (tt.is_date) {
        /* icaltime_set_timezone and friends ignore DATE values (docs/HACKING.md "Library pitfalls") */
        tt.is_date = 0;
        tt.hour = tt.minute = tt.second = 0;
    } else if (icaltime_is_utc(tt)) {
        zone = icaltimezone_get_utc_timezone();
    } else {
        icalparameter *tp = icalproperty_get_first_parameter(dp, ICAL_TZID_PARAMETER);
        const char *t = tp ? icalparameter_get_tzid(tp) : NULL;
        char tzid[256];
        if (t && strlen(t) < sizeof tzid) {
            strcpy(tzid, t);     /* copied before libical runs again */
            zone = icalcomponent_get_timezone(vcal, tzid);
            if (!zone)
                zone = icaltimezone_get_builtin_timezone(tzid);
            if (!zone)
                zone = icaltimezone_get_builtin_timezone_from_tzid(tzid);
        }
    }
    return icaltime_as_timet_with_zone(tt, zone);
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
    if (!ev)
        ev = first;

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
    f->dtstart = dtstart_of(vcal, ev);

    /* Attendees of every instance: an override may invite someone else. */
    for (icalcomponent *c = icalcomponent_get_first_component(vcal, kind); c;
         c = icalcomponent_get_next_component(vcal, kind))
        for (icalproperty *p = icalcomponent_get_first_property(c, ICAL_ATTENDEE_PROPERTY);
             p; p = icalcomponent_get_next_property(c, ICAL_ATTENDEE_PROPERTY))
            add_attendee(w, icalproperty_get_attendee(p));
}

/* A calendar part: decode, parse, and take its facts if it is usable. */
static void calendar_part(struct walk *w, const char *hdr, size_t hlen,
                          const char *body, size_t blen, const char *ct)
{
    char *cte = NULL, *cs = NULL;
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
    if (!root) {                        /* undecodable part */
        w->f->ical_errors++;
        free(data);
        return;
    }
    w->f->ical_errors += icalcomponent_count_errors(root);
    icalcomponent *vcal = root;
    if (icalcomponent_isa(root) == ICAL_XROOT_COMPONENT)
        vcal = icalcomponent_get_first_component(root, ICAL_VCALENDAR_COMPONENT);
    if (!vcal || icalcomponent_isa(vcal) != ICAL_VCALENDAR_COMPONENT) {
        w->f->ical_errors++;
        icalcomponent_free(root);
        free(data);
        return;
    }
    w->chosen = 1;
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
    struct walk w = { .delims = delims, .f = f };
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
