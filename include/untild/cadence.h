/* cadence.h - how often the team may contact one person or one domain
 * (issue 12): pure rule arithmetic, no I/O.
 *
 * A rule has a minimum gap between two contacts (min_gap = 7d), a cap
 * (max = 3 per 30d), a scope (the address, or the whole domain) and an
 * action (hold until the rule allows, flag, reject). Given the contacts
 * already made in the scope (any rep, any channel), cadence_next_allowed()
 * says when one more contact is allowed:
 *   gap: the newest contact + min_gap;
 *   cap: with max contacts in the last period, the max-th newest + period
 *        (the moment it leaves the period);
 * and the later of the two (never before now).
 * Spans in days or weeks are calendar days in the rule's zone (7d after
 * Saturday 10:00 is the next Saturday 10:00, also across a DST change);
 * spans in hours, minutes or seconds are exact. */
#ifndef UNTILD_CADENCE_H
#define UNTILD_CADENCE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "untild/windows.h"

struct cadence_span {
    int64_t secs;   /* exact seconds (h, m, s) */
    long days;      /* calendar days in the zone (d, w) */
};

enum cadence_scope { CADENCE_ADDRESS = 0, CADENCE_DOMAIN };

struct cadence_rule {
    struct cadence_span min_gap;   /* zero: no gap */
    int max;                       /* 0: no cap */
    struct cadence_span per;       /* the cap's period */
    enum cadence_scope scope;
    enum action action;            /* HOLD, FLAG or REJECT */
};

struct cadence_contact {
    time_t t;
    const char *contact;           /* normalised address */
    const char *rep, *channel;     /* may be NULL */
};

enum cadence_limit { CADENCE_OK = 0, CADENCE_GAP, CADENCE_CAP };

struct cadence_result {
    time_t next;                   /* earliest allowed (>= now) */
    enum cadence_limit limit;      /* which limit decided; OK: allowed now */
    size_t by;                     /* history index of the deciding contact */
    size_t in_period;              /* contacts within the cap's period */
};

/* "7d", "2w", "12h", "30m", "90s" or ISO 8601 "P7D", "P2W", "PT12H".
 * A mix of days and a time part (P1DT2H) is refused. Returns 0 or -1. */
int cadence_span_parse(const char *s, struct cadence_span *out);
/* "3 per 30d" or "3/30d". Returns 0 or -1. */
int cadence_max_parse(const char *s, int *max, struct cadence_span *per);
/* t + span, days in tz. */
time_t cadence_span_add(time_t t, const struct cadence_span *s, const char *tz);
/* "7 days", "12 hours" (for messages). Returns buf. */
char *cadence_span_format(const struct cadence_span *s, char *buf, size_t sz);
int cadence_span_zero(const struct cadence_span *s);

/* Is any limit set? */
int cadence_rule_active(const struct cadence_rule *r);

/* The history key of rcpt under r: the address itself, or "@domain".
 * Returns buf, or NULL if rcpt has no domain or buf is too small. */
const char *cadence_key(const struct cadence_rule *r, const char *rcpt, char *buf, size_t sz);

/* Does the comma/space-separated list name rcpt ("a@b" exactly, "@b" the
 * domain and its subdomains)? Case-insensitive. */
int cadence_listed(const char *list, const char *rcpt);

/* When may one more contact happen? h: the contacts in the rule's scope
 * (any order). */
void cadence_next_allowed(const struct cadence_rule *r, const char *tz,
                          const struct cadence_contact *h, size_t n, time_t now,
                          struct cadence_result *out);

/* Why a contact is not allowed now, for replies and notices:
 * "contacted by bob@x.com on 2026-12-02 (gate); at most one contact per 7 days". */
void cadence_why(const struct cadence_rule *r, const char *tz, const struct cadence_contact *h,
                 const struct cadence_result *res, char *buf, size_t sz);

/* Parse "key=value" options of a cadence override (window files,
 * untilctl): min_gap= max= scope= action=, onto *r (which holds the
 * defaults). Returns 0, or -1 with a message in err. */
int cadence_option(const char *key, const char *value, struct cadence_rule *r,
                   char *err, size_t errsz);

/* Overrides per address or domain: window-file lines with "cadence" in
 * place of the date (untild.windows(5)):
 *   jane@acme.com,jane@gmail.com  cadence  min_gap=14d action=flag
 *   @acme.com                     cadence  max="2 per 30d" scope=domain
 *   billing@acme.com              cadence  action=allow
 * The most specific override (address, then domain, then parent domain)
 * is applied onto the [cadence] defaults, option by option. */
#define CADENCE_OPTS_MAX 4
struct cadence_override {
    char *who;                          /* normalised address or "@domain" */
    char key[CADENCE_OPTS_MAX][16];
    char val[CADENCE_OPTS_MAX][64];
    int nopt;
};
struct cadence_overrides {
    struct cadence_override *v;
    size_t n, cap;
};
/* Is this window-file line a cadence line (its second field is
 * "cadence")? */
int cadence_is_line(const char *line);
/* Parse one cadence line into o (one entry per WHO). delims: sub-address
 * delimiters. Returns 0, or -1 with a message in err (nothing added). */
int cadence_override_parse(const char *line, const char *delims, struct cadence_overrides *o,
                           char *err, size_t errsz);
void cadence_overrides_clear(struct cadence_overrides *o);
/* Apply the most specific override for rcpt onto *r. Returns 1 if one
 * applied, else 0. */
int cadence_override_apply(const struct cadence_overrides *o, const char *rcpt,
                           struct cadence_rule *r);

#endif
