/* notice_kind.c - the one table of notice kinds (notice_kind.h): the name
 * [notify] events selects it by, and its subject. A new kind is a row here
 * and an enum value; config.c's check of [notify] events, notice.c's
 * filter and every subject follow from this table.
 *
 * Thread: any (constant data). Diagnostics: none. */
#include <stdio.h>
#include <string.h>
#include "untild/notice_kind.h"

static const struct { const char *name, *subject; } kinds[NOTICE_KINDS] = {
    [NOTICE_HELD] = { "held", "Held: your message waits for the customer's window" },
    [NOTICE_HELD_INVITATION] = { "held", "Held: your invitation waits for the customer's window" },
    [NOTICE_HELD_UPDATED] = { "held", "Updated: your held invitation changed" },
    [NOTICE_FLAGGED] = { "flagged", "Flagged: you contacted a quiet customer" },
    [NOTICE_FLAGGED_INVITATION] = { "flagged", "Flagged: a calendar invitation went to a quiet customer" },
    [NOTICE_RELEASED] = { "released", "Released: your held message was sent" },
    [NOTICE_FAILED] = { "failed", "Failed: some recipients were refused" },
    [NOTICE_HOLD_FAILED] = { "failed", "Failed: an invitation could not be held" },
    [NOTICE_STALE] = { "stale", "Reschedule: a held invitation was not sent" },
    [NOTICE_STATUS] = { "status", "untild status" },
    /* Always sent: the rep must rename the folder, or get the mail back. */
    [NOTICE_NOT_UNDERSTOOD] = { NULL, "Not understood: a \"Contact later\" folder name" },
    [NOTICE_RETURNED] = { NULL, "Failed: your held message could not be delivered (returned)" },
    [NOTICE_FOLLOWUP] = { "followup", "Follow up today" },
    [NOTICE_FOLLOWUPS] = { "status", "Your follow-ups" },
    [NOTICE_DIGEST] = { "digest", "untild weekly digest" },
};

const char *notice_kind_name(enum notice_kind kind)
{
    return (unsigned)kind < NOTICE_KINDS ? kinds[kind].name : NULL;
}

const char *notice_kind_subject(enum notice_kind kind)
{
    return (unsigned)kind < NOTICE_KINDS ? kinds[kind].subject : "untild";
}

int notice_kind_known(const char *name)
{
    if (!strcmp(name, "all") || !strcmp(name, "none"))
        return 1;
    for (size_t i = 0; i < NOTICE_KINDS; i++)
        if (kinds[i].name && !strcmp(kinds[i].name, name))
            return 1;
    return 0;
}

void notice_kind_names(char *out, size_t outsz)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NOTICE_KINDS && n < outsz; i++) {
        int seen = !kinds[i].name;
        for (size_t j = 0; j < i && !seen; j++)
            seen = kinds[j].name && !strcmp(kinds[j].name, kinds[i].name);
        if (!seen)
            n += (size_t)snprintf(out + n, outsz - n, "%s, ", kinds[i].name);
    }
    if (n < outsz)
        snprintf(out + n, outsz - n, "all, none");
}

int notice_kind_wanted(const char *events, enum notice_kind kind)
{
    const char *name = notice_kind_name(kind);
    if (!name || !events)
        return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", events);
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (!strcmp(t, "all") || !strcmp(t, name))
            return 1;
    return 0;
}
