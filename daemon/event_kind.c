/* event_kind.c - the table of webhook event types (see event_kind.h).
 *
 * Why a table keyed by the audit event: everything a webhook reports is
 * already audited, by whichever path did it (untilctl, the API, the gate,
 * the IMAP and CalDAV watchers, the Postfix policy service), so the audit
 * row is where an event is noticed (events.c) and a new path that audits
 * is covered without another call. window.opened has no audit row: the
 * follow-up scan emits it. */
#include "untild/event_kind.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct { const char *name, *audit; } kinds[EV_COUNT] = {
    [EV_WINDOW_CREATED] = { "window.created", "window-added" },
    [EV_WINDOW_CHANGED] = { "window.changed", "window-changed" },
    [EV_WINDOW_ENDED] = { "window.ended", "window-ended" },
    [EV_WINDOW_OPENED] = { "window.opened", NULL },
    [EV_MESSAGE_HELD] = { "message.held", "held" },
    [EV_MESSAGE_FLAGGED] = { "message.flagged", "flagged" },
    [EV_MESSAGE_REJECTED] = { "message.rejected", "rejected" },
    [EV_MESSAGE_RELEASED] = { "message.released", "released" },
    [EV_MESSAGE_RETURNED] = { "message.returned", "returned" },
};

const char *event_kind_name(enum event_kind k)
{
    return (unsigned)k < EV_COUNT ? kinds[k].name : "?";
}

int event_kind_parse(const char *name)
{
    for (int k = 0; k < EV_COUNT; k++)
        if (!strcasecmp(name, kinds[k].name))
            return k;
    return -1;
}

int event_kind_of_audit(const char *audit_event)
{
    for (int k = 0; audit_event && k < EV_COUNT; k++)
        if (kinds[k].audit && !strcmp(audit_event, kinds[k].audit))
            return k;
    return -1;
}

int event_kind_list(const char *list, uint32_t *out, char *bad, size_t badsz)
{
    uint32_t set = 0;
    const char *s = list;
    while (*s) {
        s += strspn(s, ", \t");
        size_t n = strcspn(s, ", \t");
        if (!n)
            break;
        char name[64];
        int k = -2;
        if (n < sizeof name) {
            memcpy(name, s, n);
            name[n] = '\0';
            k = !strcasecmp(name, "all") ? EV_COUNT : event_kind_parse(name);
        }
        if (k < 0) {
            snprintf(bad, badsz, "%.*s", (int)n, s);
            return -1;
        }
        set |= k == EV_COUNT ? EVENT_ALL : 1u << k;
        s += n;
    }
    *out = set;
    return 0;
}

void event_kind_names(char *buf, size_t bufsz)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int k = 0; k < EV_COUNT && off < bufsz; k++) {
        int r = snprintf(buf + off, bufsz - off, "%s%s", k ? ", " : "", kinds[k].name);
        if (r < 0)
            break;
        off += (size_t)r;
    }
}
