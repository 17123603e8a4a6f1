/* notice_kind.h - the one table of notice kinds: for each, the name
 * [notify] events uses to select it and the subject of its notice.
 * A leaf (no other untild header): config.c checks [notify] events against
 * it and notice.c filters by it. Any thread (constant data). */
#ifndef UNTILD_NOTICE_KIND_H
#define UNTILD_NOTICE_KIND_H

#include <stddef.h>

enum notice_kind {
    NOTICE_HELD,                /* the gate held a message */
    NOTICE_HELD_INVITATION,     /* the CalDAV proxy held an invitation */
    NOTICE_HELD_UPDATED,        /* ... and the rep changed it since */
    NOTICE_FLAGGED,             /* mail to a quiet customer went out flagged */
    NOTICE_FLAGGED_INVITATION,  /* the CalDAV watcher saw an invitation to one */
    NOTICE_RELEASED,            /* a held message was sent */
    NOTICE_FAILED,              /* the upstream refused some recipients */
    NOTICE_HOLD_FAILED,         /* the CalDAV proxy could not hold an invitation */
    NOTICE_STALE,               /* a held invitation's event began: not sent */
    NOTICE_STATUS,              /* the answer to status@ */
    NOTICE_NOT_UNDERSTOOD,      /* a "Contact later" folder name without a date */
    NOTICE_RETURNED,            /* a held message given back (always sent) */
    NOTICE_FOLLOWUP,            /* follow up with a contact today (its subject names them) */
    NOTICE_FOLLOWUPS,           /* the answer to followups@ */
    NOTICE_DIGEST,              /* the weekly digest */
    NOTICE_KINDS
};

/* The [notify] events name that selects kind, or NULL for a kind that is
 * always sent. */
const char *notice_kind_name(enum notice_kind kind);
/* The subject line of kind's notice. */
const char *notice_kind_subject(enum notice_kind kind);
/* Is name a valid [notify] events token (a kind's name, all or none)? */
int notice_kind_known(const char *name);
/* The valid tokens, comma-separated, into out (for error messages). */
void notice_kind_names(char *out, size_t outsz);
/* Does events (the [notify] events value; NULL: all) select kind? */
int notice_kind_wanted(const char *events, enum notice_kind kind);

#endif
