/* verbs.h - the one table of untilctl's verbs: name, argument shape, who
 * may call it, handler (control.c), help line. control.c expands it into
 * its dispatch and usage text, verbs.c into the usage text untilctl
 * prints, and tests/unit/test_verbs.c holds it against man/untilctl.1.
 * A new verb is a row here, a handler in control.c (or local work in
 * untilctl.c for VERB_LOCAL), a paragraph in man/untilctl.1 and an e2e
 * test. Any thread (constant data). */
#ifndef UNTILD_VERBS_H
#define UNTILD_VERBS_H

#include <stddef.h>

enum verb_who {
    VERB_ANYONE,    /* any caller the socket admits */
    VERB_OWNER,     /* admins: everything; a rep: its own windows and mail */
    VERB_ADMIN,     /* admins only */
    VERB_TEST,      /* admins, and only with untild --test-clock */
    VERB_LOCAL      /* untilctl does it itself, no daemon */
};

/* X(name, argument shape, who, handler, help). Rows of one first word
 * share its handler, which reads the second word itself. */
#define UNTILD_VERBS(X) \
    X("window add", "WHO --until WHEN [--from WHEN] [--reason TEXT] [--action hold|flag|reject] " \
      "[--rrule RULE] [--tz ZONE] [--duration DUR] [--owner REP]", VERB_OWNER, cmd_window, \
      "add a window: WHO is quiet until WHEN") \
    X("window change", "ID [--until WHEN] [--from WHEN] [--reason TEXT] [--action hold|flag|reject] " \
      "[--rrule RULE] [--tz ZONE] [--duration DUR]", VERB_OWNER, cmd_window, \
      "change a run-time window (until now or earlier: it ends)") \
    X("window import", "FILE.csv|- [--owner REP]", VERB_OWNER, cmd_window, \
      "add windows from CSV: email,until,reason[,action] (all or nothing)") \
    X("window list", "[--limit N] [--after ID]", VERB_OWNER, cmd_window, "list windows") \
    X("window end", "WHO|ID", VERB_OWNER, cmd_window, "end windows now; what they held is released") \
    X("check", "WHO [--at WHEN] [--from REP]", VERB_ANYONE, cmd_check, \
      "the verdict for WHO: exit 0 allow, 3 quiet") \
    X("held list", "[--limit N] [--after ID]", VERB_OWNER, cmd_held, "list held messages") \
    X("held show", "ID", VERB_OWNER, cmd_held, "one held message in full") \
    X("held release", "ID [--reason TEXT]", VERB_OWNER, cmd_held, "send a held message now") \
    X("held discard", "ID", VERB_OWNER, cmd_held, "drop a held message") \
    X("report", "[--since DAYS]", VERB_OWNER, cmd_report, "who was held, flagged, rejected") \
    X("followups", "[--days N]", VERB_OWNER, cmd_followups, "follow-ups due (default 7 days)") \
    X("cadence list", "", VERB_OWNER, cmd_cadence, "cadence overrides") \
    X("cadence set", "WHO KEY=VALUE...", VERB_ADMIN, cmd_cadence, "set a cadence override") \
    X("cadence clear", "WHO", VERB_ADMIN, cmd_cadence, "remove a cadence override") \
    X("status", "", VERB_ANYONE, cmd_status, "number of windows and held messages") \
    X("token add", "NAME --scope admin|rep:WHO", VERB_ADMIN, cmd_token, \
      "make an HTTP API token (printed once)") \
    X("token list", "", VERB_ADMIN, cmd_token, "list API tokens (names and scopes)") \
    X("token revoke", "NAME", VERB_ADMIN, cmd_token, "revoke an API token") \
    X("reload", "", VERB_ADMIN, cmd_reload, "reload the configuration, like SIGHUP") \
    X("onboard", "REP [--host HOST] [--out DIR]", VERB_LOCAL, cmd_unknown, \
      "write mail client settings (reads -c CONFIG)") \
    X("debug clock", "[set WHEN | advance SECONDS | run]", VERB_TEST, cmd_debug, \
      "show or move the test clock")

struct verb {
    const char *name, *args;
    enum verb_who who;
    const char *help;
};

/* The rows, in table order; *n set to their number. */
const struct verb *verbs_all(size_t *n);

/* "  NAME ARGS" lines, each with its help (two columns when they fit), for
 * every verb but VERB_TEST ones, into out (truncated to outsz). */
void verbs_usage(char *out, size_t outsz);

/* The distinct first words of the daemon's verbs (not VERB_LOCAL or
 * VERB_TEST), joined by '|': "window|check|held|...". */
void verbs_groups(char *out, size_t outsz);

#endif
