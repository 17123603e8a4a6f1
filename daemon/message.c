/* message.c - the facts policy needs about one RFC 5322 message.
 *
 * Synopsis: message_parse() bounds the header section, hands the message to
 * GMime (header fields, MIME structure, transfer decoding, charset
 * conversion, addresses), decodes the Subject's RFC 2047 words with
 * libetpan, normalises From, then walks GMime's MIME tree (bounded in depth
 * and in parts) for text/calendar, application/ics and *.ics octet-stream
 * parts. The first calendar part that libical can parse gives the iMIP
 * facts (METHOD from the decoded data, UID, attendees, start...); later
 * calendar parts are not parsed, so the CalConnect structure (the same
 * invitation as text/calendar and as an application/ics attachment) is
 * counted once. Why these libraries, measured: docs/DECISIONS.md "MIME
 * library" and tests/bench/mime_compare.c.
 *
 * Bounds, applied before GMime sees anything (it has no limits of its own
 * but a nesting depth of 1024, and costs per header field and per part):
 * the header section ends at an over-long line or section (what follows is
 * body), and GMime reads a bounded view of the message (view_header and
 * view_body below), a private copy; the input is never modified.
 *
 * Diagnostics: none. Malformed input is never fatal: it shows as missing
 * facts and as ical_errors. Only ENOMEM makes message_parse() fail.
 *
 * Threads: GMime is initialised once (message_gmime_init, pthread_once);
 * each call uses its own GMime objects, and libetpan's decoder has no
 * state, so the MIME work is safe on any thread (libical's zone cache is
 * another matter: docs/HACKING.md "Library pitfalls"). */
#include "untild/message.h"
#include "untild/when.h"
#include "untild/address.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <libetpan/mailmime_decode.h>
#include <libetpan/mailimf.h>
#include <libical/ical.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HDR_MAX_SECTION (1024u * 1024u) /* longer: the rest is body */
#define HDR_MAX_LINE    (64u * 1024u)   /* a longer line ends the headers */
#define MIME_MAX_DEPTH  10              /* nested multipart levels */
#define MIME_MAX_PARTS  200             /* parts looked at, in all */
#define HDR_MAX_LINES   1000            /* header lines GMime is shown */
#define MIME_MAX_DELIMS 500             /* "--" lines GMime is shown */
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

static char *wdup(struct walk *w, const char *s)
{
    char *d = strdup(s);
    if (!d)
        w->oom = 1;
    return d;
}

/* GMime's global set-up (type system, charset tables), once per process;
 * the library's own state, read-only after this. */
static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_start(void)
{
    g_mime_init();
}

static void message_gmime_init(void)
{
    pthread_once(&gmime_once, gmime_start);
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

/* What GMime is shown: GMime keeps every header field (about
 * 600 bytes and 1.5 us each) and every part (about 2 KiB), with no limits
 * of its own, so the view leaves out what would only cost:
 *  - lines before the first field (a continuation line, a line without a
 *    field name and colon): GMime refuses the whole message then;
 *  - NULs in the header section (a NUL would end a field early);
 *  - header lines past HDR_MAX_LINES; the section ends with a blank line
 *    even where the bounds of header_section() cut it;
 *  - in the body, lines past HDR_MAX_LINES (or longer than HDR_MAX_LINE)
 *    in a run that follows a line starting with "--" up to a blank line:
 *    a part's header section is such a run (a calendar part's content
 *    never is: iCalendar and base64 lines do not start with "--");
 *  - everything from the MIME_MAX_DELIMS+1-th line starting with "--"
 *    (only the first MIME_MAX_PARTS parts are looked at anyway). */

/* Append p[from..to) to a, NULs dropped if nonul. */
static void view_put(GByteArray *a, const char *p, size_t from, size_t to, int nonul)
{
    while (from < to) {
        const char *z = nonul ? memchr(p + from, '\0', to - from) : NULL;
        size_t run = (z ? (size_t)(z - p) : to) - from;
        g_byte_array_append(a, (const guint8 *)p + from, (guint)run);
        from += run + (z != NULL);
    }
}

/* A line GMime takes for the start of a field: a name of printable
 * characters other than ':', optional whitespace, ':'. */
static int field_line(const char *p, size_t c)
{
    size_t i = 0;
    while (i < c && (unsigned char)p[i] > ' ' && (unsigned char)p[i] < 127 && p[i] != ':')
        i++;
    if (i == 0)
        return 0;
    while (i < c && is_wsp(p[i]))
        i++;
    return i < c && p[i] == ':';
}

static void view_header(GByteArray *a, const char *p, size_t hlen)
{
    size_t off = 0, lines = 0;
    int started = 0;
    while (off < hlen && lines < HDR_MAX_LINES) {
        size_t c, next = next_line(p, hlen, off, &c);
        if (c == 0)
            break;                              /* the blank line: added below */
        if (started || field_line(p + off, c)) {
            started = 1;
            lines++;
            view_put(a, p, off, next, 1);
            if (p[next - 1] != '\n')
                g_byte_array_append(a, (const guint8 *)"\n", 1);
        }
        off = next;
    }
    g_byte_array_append(a, (const guint8 *)"\n", 1);
}

static void view_body(GByteArray *a, const char *p, size_t n)
{
    size_t off = 0, keep = 0, run = 0;
    int in_run = 0, delims = 0;
    while (off < n) {
        size_t c, next = next_line(p, n, off, &c);
        int drop = 0;
        if (c >= 2 && p[off] == '-' && p[off + 1] == '-') {
            if (++delims > MIME_MAX_DELIMS)
                break;
            in_run = 1;
            run = 0;
        } else if (in_run && c == 0) {
            in_run = 0;
        } else if (in_run) {
            drop = ++run > HDR_MAX_LINES || next - off > HDR_MAX_LINE;
        }
        if (drop) {
            view_put(a, p, keep, off, 0);
            keep = next;
        }
        off = next;
    }
    view_put(a, p, keep, off, 0);
}

/* Parse the view of msg (with_body: the body too). NULL if GMime finds
 * no message. */
static GMimeMessage *gm_message(const char *msg, size_t len, int with_body)
{
    size_t hlen = header_section(msg, len);
    if (len - hlen > G_MAXUINT / 2)
        len = hlen + G_MAXUINT / 2;             /* GByteArray's size is a guint */
    GByteArray *a = g_byte_array_sized_new((guint)(with_body ? len + 1 : hlen + 1));
    view_header(a, msg, hlen);
    if (with_body)
        view_body(a, msg + hlen, len - hlen);
    GMimeStream *s = g_mime_stream_mem_new_with_byte_array(a);   /* owns a */
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(s);
    return m;
}

/* Unfolded copy of a raw header value: CR and LF dropped (a fold's
 * whitespace stays), leading and trailing whitespace trimmed. */
static char *unfold(const char *raw)
{
    size_t n = strlen(raw), o = 0, s = 0;
    char *v = malloc(n + 1);
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (raw[i] != '\r' && raw[i] != '\n')
            v[o++] = raw[i];
    while (o > 0 && is_wsp(v[o - 1]))
        o--;
    v[o] = '\0';
    while (is_wsp(v[s]))
        s++;
    memmove(v, v + s, o - s + 1);
    return v;
}

/* Header `name` of m, unfolded (*out malloc'd, NULL if absent). -1 on
 * ENOMEM. */
static int gm_header(GMimeObject *o, const char *name, char **out)
{
    GMimeHeader *h = g_mime_header_list_get_header(g_mime_object_get_header_list(o), name);
    const char *raw = h ? g_mime_header_get_raw_value(h) : NULL;
    *out = NULL;
    if (!raw)
        return 0;
    *out = unfold(raw);
    return *out ? 0 : -1;
}

char *message_header(const char *msg, size_t len, const char *name)
{
    char *v = NULL;
    if (!msg || !name)
        return NULL;
    message_gmime_init();
    GMimeMessage *m = gm_message(msg, len, 0);
    if (!m)
        return NULL;
    if (gm_header(GMIME_OBJECT(m), name, &v) < 0)
        errno = ENOMEM;
    g_object_unref(m);
    return v;
}

/* --- header values */

/* A Subject (unfolded) in UTF-8: RFC 2047 words decoded by libetpan, whose
 * decoder joins adjacent words correctly (Debian 12's GMime 3.2.13 drops
 * the text after a padded "B" word: docs/DECISIONS.md). A value without
 * encoded words, or one libetpan cannot parse, is kept as it is. NULL on
 * ENOMEM. */
static char *subject_decode(const char *v)
{
    char *dec = NULL;
    size_t idx = 0;
    if (strstr(v, "=?") && mailmime_encoded_phrase_parse("utf-8", v, strlen(v), &idx, "utf-8", &dec)
        == MAILIMF_NO_ERROR && dec && idx == strlen(v)) {
        char *d = strdup(dec);
        free(dec);
        if (!d)
            return NULL;
        /* Control characters would let a subject forge lines wherever it
         * is shown or stored: they become spaces. */
        for (char *c = d; *c; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
                *c = ' ';
        return d;
    }
    free(dec);
    return strdup(v);
}

/* "<id@host> (comment)" -> "id@host" (GMime's msg-id decoder: the first
 * id, or a bare one); NULL if empty. -1 on ENOMEM. */
static int first_msgid(const char *v, char **out)
{
    char *id = g_mime_utils_decode_message_id(v);
    *out = NULL;
    if (id && *id && !(*out = strdup(id))) {
        g_free(id);
        return -1;
    }
    g_free(id);
    return 0;
}

/* The first mailbox of an address list that has an address (a group's
 * members count; at most MSG_MAX_ATTENDEES looked at), in *addr; 1 if
 * found. */
static int first_mailbox(InternetAddressList *l, const char **addr, int depth)
{
    int n = l ? internet_address_list_length(l) : 0;
    for (int i = 0; i < n && i < MSG_MAX_ATTENDEES; i++) {
        InternetAddress *a = internet_address_list_get_address(l, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            const char *s = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
            if (s && strchr(s, '@')) {
                *addr = s;
                return 1;
            }
        } else if (INTERNET_ADDRESS_IS_GROUP(a) && depth == 0
                   && first_mailbox(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)),
                                    addr, 1)) {
            return 1;
        }
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
static void ical_facts(struct walk *w, icalcomponent *vcal, const char *param_method)
{
    struct message_facts *f = w->f;
    icalproperty *mp = icalcomponent_get_first_property(vcal, ICAL_METHOD_PROPERTY);
    if (mp) {
        f->method = method_from_prop(mp);
    } else {
        f->method = method_from_string(param_method);
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


/* The decoded content of a part (transfer encoding undone, converted to
 * UTF-8 from its charset parameter by GMime), NUL-terminated, in *out
 * (malloc'd); -1 on ENOMEM. */
static int part_content(GMimeObject *o, GMimeDataWrapper *dw, char **out, size_t *outlen)
{
    GMimeStream *mem = g_mime_stream_mem_new(), *dst = mem;
    const char *cs = g_mime_object_get_content_type_parameter(o, "charset");
    if (cs && g_ascii_strcasecmp(g_mime_charset_canon_name(cs), "UTF-8") != 0) {
        GMimeFilter *conv = g_mime_filter_charset_new(cs, "UTF-8");
        if (conv) {     /* an unknown charset: the bytes as they are */
            dst = g_mime_stream_filter_new(mem);
            g_mime_stream_filter_add(GMIME_STREAM_FILTER(dst), conv);
            g_object_unref(conv);
        }
    }
    g_mime_data_wrapper_write_to_stream(dw, dst);
    g_mime_stream_flush(dst);
    if (dst != mem)
        g_object_unref(dst);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    *outlen = ba->len;
    *out = malloc(ba->len + 1);
    if (*out) {
        if (ba->len)    /* an empty array's data is NULL */
            memcpy(*out, ba->data, ba->len);
        (*out)[ba->len] = '\0';
    }
    g_object_unref(mem);
    return *out ? 0 : -1;
}

/* A calendar part: decode, parse, and take its facts if it is usable. */
static void calendar_part(struct walk *w, GMimeObject *o)
{
    GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(o));
    GMimeStream *src = dw ? g_mime_data_wrapper_get_stream(dw) : NULL;
    gint64 blen = src ? g_mime_stream_length(src) : 0;
    w->f->ical_size += blen > 0 ? (size_t)blen : 0;
    if (w->f->ical_size > w->max_cal) {
        /* Not parsed at all: the message is plain mail (never an
         * exception to a hold), and nothing later is looked at. */
        w->f->ical_part = MSG_ICAL_TOO_LARGE;
        w->chosen = 1;
        return;
    }
    char *data = NULL;
    size_t n = 0;
    if (dw && part_content(o, dw, &data, &n) < 0) {
        w->oom = 1;
        return;
    }
    icalcomponent *root = data ? icalparser_parse_string(data) : NULL;
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
    ical_facts(w, vcal, g_mime_object_get_content_type_parameter(o, "method"));
    icalcomponent_free(root);
}

/* text/calendar, application/ics, or an octet-stream named *.ics (by
 * Content-Disposition filename or Content-Type name). */
static int is_calendar(GMimeObject *o)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    if (!GMIME_IS_PART(o) || !ct)
        return 0;
    if (g_mime_content_type_is_type(ct, "text", "calendar")
        || g_mime_content_type_is_type(ct, "application", "ics"))
        return 1;
    if (!g_mime_content_type_is_type(ct, "application", "octet-stream"))
        return 0;
    const char *fn = g_mime_part_get_filename(GMIME_PART(o));
    size_t n = fn ? strlen(fn) : 0;
    return n >= 4 && g_ascii_strcasecmp(fn + n - 4, ".ics") == 0;
}

/* Depth first, in document order; a message/rfc822 part (a forwarded
 * invitation) is not entered. */
static void walk_part(struct walk *w, GMimeObject *o, int depth)
{
    if (!o || w->chosen || w->oom || depth > MIME_MAX_DEPTH
        || ++w->nparts > MIME_MAX_PARTS)
        return;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && !w->chosen && !w->oom && w->nparts < MIME_MAX_PARTS; i++)
            walk_part(w, g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (is_calendar(o)) {
        calendar_part(w, o);
    }
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

/* The header facts: Subject, ids, References, Date, From. -1 on ENOMEM. */
static int header_facts(struct walk *w, GMimeMessage *m)
{
    struct message_facts *f = w->f;
    GMimeObject *o = GMIME_OBJECT(m);
    char *v = NULL;
    if (gm_header(o, "Subject", &v) < 0)
        return -1;
    if (v) {
        f->subject = subject_decode(v);
        free(v);
        if (!f->subject)
            return -1;
    }
    if (gm_header(o, "Message-ID", &v) < 0 || (v && first_msgid(v, &f->message_id) < 0)) {
        free(v);
        return -1;
    }
    free(v);
    if (gm_header(o, "In-Reply-To", &v) < 0 || (v && first_msgid(v, &f->in_reply_to) < 0)) {
        free(v);
        return -1;
    }
    free(v);
    if (gm_header(o, "References", &f->references) < 0 || gm_header(o, "Date", &f->date) < 0)
        return -1;
    const char *addr;
    char norm[ADDR_MAX];
    if (first_mailbox(g_mime_message_get_from(m), &addr, 0)
        && address_normalize(addr, w->delims, norm, sizeof norm, NULL) == 0)
        f->from = wdup(w, norm);
    return w->oom ? -1 : 0;
}

int message_parse_max(const char *msg, size_t len, const char *delims,
                      size_t max_cal, struct message_facts *f)
{
    struct walk w = { .delims = delims, .f = f,
                      .max_cal = max_cal ? max_cal : MESSAGE_MAX_CALENDAR_DEFAULT };
    memset(f, 0, sizeof *f);
    if (!msg)
        len = 0;
    if (!msg)
        msg = "";
    f->header_len = header_section(msg, len);
    message_gmime_init();
    GMimeMessage *m = gm_message(msg, len, 1);
    if (!m)
        return 0;
    if (header_facts(&w, m) == 0)
        walk_part(&w, g_mime_message_get_mime_part(m), 0);
    else
        w.oom = 1;
    g_object_unref(m);
    if (!w.oom)
        return 0;
    message_facts_free(f);
    errno = ENOMEM;
    return -1;
}
