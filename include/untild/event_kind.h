/* event_kind.h - the one table of webhook event types (issue 14): the
 * name a receiver sees in "type" and `[webhook] events` selects, and the
 * audit event it comes from. A leaf: config checks names against it. */
#ifndef UNTILD_EVENT_KIND_H
#define UNTILD_EVENT_KIND_H

#include <stddef.h>
#include <stdint.h>

enum event_kind {
    EV_WINDOW_CREATED, EV_WINDOW_CHANGED, EV_WINDOW_ENDED, EV_WINDOW_OPENED,
    EV_MESSAGE_HELD, EV_MESSAGE_FLAGGED, EV_MESSAGE_REJECTED,
    EV_MESSAGE_RELEASED, EV_MESSAGE_RETURNED,
    EV_COUNT
};

#define EVENT_ALL ((uint32_t)((1u << EV_COUNT) - 1))

/* "window.created", ... */
const char *event_kind_name(enum event_kind k);
/* The kind named name; -1 if none. */
int event_kind_parse(const char *name);
/* The kind an audit row's event becomes ("held" -> EV_MESSAGE_HELD); -1:
 * none (the audit has more events than webhooks carry). */
int event_kind_of_audit(const char *audit_event);
/* A comma list ("window.opened, message.held", or "all") into a bit set.
 * 0, or -1 with the first unknown name copied into bad. */
int event_kind_list(const char *list, uint32_t *out, char *bad, size_t badsz);
/* Every name, comma-separated, for error messages. */
void event_kind_names(char *buf, size_t bufsz);

#endif
