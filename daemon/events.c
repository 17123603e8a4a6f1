/* events.c - webhook events from what untild does (see events.h).
 *
 * Synopsis: events_emit builds the body once ({"id", "type", "time",
 * "data"}: json-c through json.c) and hands it to webhook_enqueue; the
 * audit hook (on_audit) turns audit rows into events; followup.c emits
 * window.opened when a window's end has passed and the follow-up is due.
 *
 * Why the audit: every path that holds, flags, rejects, releases or
 * returns mail, or adds or ends a window, writes an audit row (untilctl,
 * the API, the gate, the watchers, the Postfix policy service), so one
 * hook here covers them all, and a new path that audits is covered too.
 * Message events are therefore per recipient, as audit rows are.
 *
 * The event id is 128 random bits (gnutls_rnd): the same on every
 * attempt, so a receiver drops one it has seen. */
#include "untild/events.h"
#include "untild/daemon.h"
#include "untild/json.h"
#include "untild/log.h"
#include "untild/policy.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/webhook.h"
#include "untild/when.h"
#include "untild/windows.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int events_wanted(const struct untild *u, enum event_kind kind)
{
    return (webhook_events(u->webhooks) & (1u << kind)) != 0;
}

static void new_id(char *out, size_t outsz)
{
    unsigned char r[16];
    if (gnutls_rnd(GNUTLS_RND_NONCE, r, sizeof r) < 0)
        memset(r, 0, sizeof r);   /* cannot happen after GnuTLS's self-tests */
    size_t o = (size_t)snprintf(out, outsz, "evt_");
    for (size_t i = 0; i < sizeof r && o + 2 < outsz; i++)
        o += (size_t)snprintf(out + o, outsz - o, "%02x", r[i]);
}

void events_emit(struct untild *u, enum event_kind kind, struct json_object *data)
{
    if (!events_wanted(u, kind)) {
        json_object_put(data);
        return;
    }
    char id[40], when[64];
    struct strbuf b = { 0 };
    struct json_object *o = json_object_new_object();
    new_id(id, sizeof id);
    if (!data)
        data = json_object_new_object();
    when_format(untild_now(u), "UTC", when, sizeof when);
    if (!o || ujson_add_str(o, "id", id) || ujson_add_str(o, "type", event_kind_name(kind)) ||
        ujson_add_str(o, "time", when) || ujson_add(o, "data", data) ||
        ujson_append(&b, o, UJSON_PLAIN) || b.oom) {
        log_error("events: %s %s: out of memory; not sent", event_kind_name(kind), id);
    } else {
        webhook_enqueue(u->webhooks, kind, id, b.p);
        log_debug("events: %s %s queued", event_kind_name(kind), id);
    }
    json_object_put(o);
    sb_free(&b);
}

static int window_json(const struct untild *u, struct json_object *o, const struct window *w, const char *tz)
{
    char t[64];
    struct json_object *who = json_object_new_array();
    int e = ujson_add(o, "who", who);
    for (size_t i = 0; who && i < w->nwho; i++)
        e |= ujson_push_str(who, w->who[i]);
    e |= ujson_add_str(o, "until", when_format(w->until, tz, t, sizeof t));
    if (w->from)
        e |= ujson_add_str(o, "from", when_format(w->from, tz, t, sizeof t));
    e |= ujson_add_str(o, "action", action_name(policy_window_action(&u->pcfg, w)));   /* "default" resolved */
    if (w->reason)
        e |= ujson_add_str(o, "reason", w->reason);
    if (w->owner)
        e |= ujson_add_str(o, "owner", w->owner);
    if (w->rrule)
        e |= ujson_add_str(o, "rrule", w->rrule);
    return e ? -1 : 0;
}

/* The audit row's fields as "data"; a window event adds the window as it
 * stands (an ended window is still in the index when its end is audited). */
static void on_audit(void *arg, const struct audit_rec *r)
{
    struct untild *u = arg;
    int k = event_kind_of_audit(r->event);
    if (k < 0 || !events_wanted(u, (enum event_kind)k))
        return;
    int win = k <= EV_WINDOW_OPENED;   /* the window kinds come first (event_kind.h) */
    struct json_object *d = json_object_new_object();
    int e = !d;
    if (d && r->rep)
        e |= ujson_add_str(d, "rep", r->rep);
    if (d && r->contact)
        e |= ujson_add_str(d, "contact", r->contact);
    if (d && r->window_id)
        e |= ujson_add_str(d, "window_id", r->window_id);
    if (d && r->msg_id)
        e |= ujson_add_str(d, win ? "message_id" : "message_ref", r->msg_id);
    if (d && r->detail)
        e |= ujson_add_str(d, win ? "note" : "reason", r->detail);
    const struct window *w = win && r->window_id && u->ix ? windows_get(u->ix, r->window_id) : NULL;
    if (d && w) {
        struct json_object *wo = json_object_new_object();
        e |= ujson_add(d, "window", wo) || (wo && window_json(u, wo, w, "UTC"));
    }
    if (e) {
        log_error("events: %s: out of memory; not sent", event_kind_name((enum event_kind)k));
        json_object_put(d);
        return;
    }
    events_emit(u, (enum event_kind)k, d);
}

void events_window(struct untild *u, enum event_kind kind, const struct window *w, time_t due)
{
    char t[64];
    if (!events_wanted(u, kind))
        return;
    struct json_object *d = json_object_new_object(), *wo = json_object_new_object();
    int e = !d || !wo || ujson_add_str(d, "window_id", w->id);
    if (!e && w->nwho)
        e |= ujson_add_str(d, "contact", w->who[0]);
    if (!e && w->owner)
        e |= ujson_add_str(d, "rep", w->owner);
    if (!e && due)
        e |= ujson_add_str(d, "due", when_format(due, "UTC", t, sizeof t));
    if (!e)   /* added first: d owns wo whatever window_json does */
        e = ujson_add(d, "window", wo) || window_json(u, wo, w, "UTC");
    else
        json_object_put(wo);
    if (e) {
        log_error("events: %s %s: out of memory; not sent", event_kind_name(kind), w->id);
        json_object_put(d);
        return;
    }
    events_emit(u, kind, d);
}

void events_start(struct untild *u)
{
    if (u->webhooks && u->store)
        store_on_audit(u->store, on_audit, u);
}
