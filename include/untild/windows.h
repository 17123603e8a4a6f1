/* windows.h - do-not-contact windows and the index that answers
 * "is this recipient quiet at T, and by which window?".
 *
 * A window covers one or more normalised addresses of one person, or a
 * domain ("@acme.com", which also covers its subdomains). It is quiet from
 * `from` (0: always was) to `until` (WHEN_NEVER: no end). With an rrule it
 * is quiet only during occurrences: starting at `from` (or 00:00 of the day
 * it was created) repeated by the RRULE (libical), each lasting `duration`
 * seconds, all in the window's tz; and never after `until`.
 *
 * Lookup: exact address in O(1) (hash), then the domain and each parent
 * domain (O(labels)). The most specific active window wins (address >
 * domain > parent domain); among equal ones the latest quiet-until.
 *
 * Strings in windows are owned by the index (arena); callers copy what they
 * keep beyond the next windows_* mutation. */
#ifndef UNTILD_WINDOWS_H
#define UNTILD_WINDOWS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "untild/rrule.h"

enum action { ACTION_ALLOW = 0, ACTION_HOLD, ACTION_FLAG, ACTION_REJECT,
              ACTION_DEFAULT /* window did not say: use [policy] default_action */ };

const char *action_name(enum action a);            /* "allow", "hold"... */
int action_parse(const char *s, enum action *out); /* 0 or -1 */

enum window_source { WSRC_FILE, WSRC_RUNTIME, WSRC_IMAP, WSRC_CALDAV };

/* Ids are short ("f" + 12 hex, "w<N>" up to 14 digits): a million windows
 * are kept in memory, so the id size and the field order keep struct window
 * at 120 bytes. */
#define WINDOW_ID_MAX 16

struct window {
    char id[WINDOW_ID_MAX]; /* file: "f" + 12 hex of a hash of the line's
                               content; run time: "w<N>" */
    char **who;             /* normalised addresses or "@domain" */
    size_t nwho;
    time_t from;            /* 0: none */
    time_t until;           /* WHEN_NEVER: none */
    char *rrule;            /* NULL: not recurring */
    int64_t duration;       /* seconds per occurrence (rrule); default 86400 */
    char *tz;               /* NULL: daemon default (already resolved when
                               parsed, so normally set) */
    char *reason;           /* may be NULL */
    char *owner;            /* rep who set it; NULL: admin/team */
    const char *file;       /* file windows: path, and line */
    time_t created;
    enum action action;
    enum window_source source;
    int line;
    uint32_t flags;         /* index-internal (WF_*); 0 in parsed windows */
};

/* Parse one window-file line (docs/DESIGN.md "Window files"):
 *   WHO[,WHO...]  UNTIL  [key=value | key="quoted value"]...
 * keys: reason from rrule duration tz action owner. WHO is normalised with
 * delims. Dates without offset are in tz= or default_tz. `now` anchors
 * natural forms. Blank/comment lines: returns 1 (nothing parsed).
 * Returns 0 on success (fill *w, strings malloc'd: free with
 * window_free_fields), 1 for blank/comment, -1 with err on error. */
int window_parse_line(const char *line, const char *default_tz,
                      const char *delims, time_t now, struct window *w,
                      char *err, size_t errsz);
/* The same with a caller-held zone cache (when.h), for loading many lines:
 * resolving the zone is most of the cost of a line. c may be NULL. */
struct when_cache;
int window_parse_line_cached(struct when_cache *c, const char *line,
                             const char *default_tz, const char *delims,
                             time_t now, struct window *w, char *err,
                             size_t errsz);
/* The same with explicit limits (a reload parses with the new config's). */
int window_parse_line_ex(struct when_cache *c, const struct window_limits *lim,
                         const char *line, const char *default_tz,
                         const char *delims, time_t now, struct window *w,
                         char *err, size_t errsz);
void window_free_fields(struct window *w);

struct windows;  /* the index */

struct windows *windows_new(void);
void windows_free(struct windows *ix);

/* Add a copy of *w (deep copy into the index). If w->id is empty an id is
 * assigned. Returns the stored window, or NULL (ENOMEM). An existing window
 * with the same id is replaced. */
const struct window *windows_add(struct windows *ix, const struct window *w);
/* Remove by id. Returns 0, or -1 if absent. */
int windows_remove(struct windows *ix, const char *id);
const struct window *windows_get(const struct windows *ix, const char *id);
size_t windows_count(const struct windows *ix);
/* Visit every window (order unspecified); stop when fn returns non-zero. */
void windows_foreach(const struct windows *ix,
                     int (*fn)(const struct window *w, void *arg), void *arg);
/* Windows whose who-list names this exact normalised key ("a@b" or "@b"). */
size_t windows_find_who(const struct windows *ix, const char *key,
                        const struct window **out, size_t max);

struct window_match {
    const struct window *w;  /* NULL: not quiet */
    time_t quiet_until;      /* end of the current quiet period: until, or
                                the end of the current occurrence (capped by
                                until); WHEN_NEVER if no end */
    int recurring;           /* quiet because of an rrule occurrence */
};

/* Is normalised address addr quiet at t? Returns 1 (m filled) or 0. */
int windows_match(const struct windows *ix, const char *addr, time_t t,
                  struct window_match *m);

/* Is window w quiet at t? (for one window; fills quiet_until)
 * Recurring windows in an index keep their answer until the next
 * transition (the end of the quiet run, or the next occurrence's start), so
 * repeated calls cost a comparison; main thread only for those. An
 * evaluation walks at most rrule_max_iterations periods; when that cap
 * bites the window counts as quiet for the next hour (logged): a window
 * whose state cannot be decided holds mail rather than letting it go. */
int window_active(const struct window *w, time_t t, time_t *quiet_until);

#endif
