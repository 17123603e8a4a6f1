/* caldav.c - the CalDAV watcher (docs/DESIGN.md "Calendar path").
 *
 * A server with RFC 6638 scheduling sends invitations the moment an event
 * is saved, past the SMTP gate; the watcher sees them afterwards and flags
 * each invitation from the rep to a quiet attendee, once. It also turns the
 * events of the "Do not contact" calendar into windows (source
 * WSRC_CALDAV), rebuilt at each sync.
 *
 * Thread: everything in this file runs on the loop thread: scheduling,
 * applying a worker's result (libical, windows, store, notices), start and
 * stop. The per-[caldav] worker thread that does all HTTP (discovery,
 * sync-collection, multiget) is caldav_worker.c; it hands plain strings
 * back here (on_result). The new sync state is stored only after its
 * objects were processed, so a restart neither misses nor repeats, and
 * flags are remembered by (href, recurrence-id, sequence, attendee).
 *
 * With the proxy, each sync also repairs up to 16 server copies whose
 * released attendees still carry untild's SCHEDULE-AGENT=CLIENT (GET, PUT
 * with If-Match; see caldav_proxy.c "marks").
 *
 * Diagnostics: HTTP errors and timeouts are logged and retried with
 * backoff; iCalendar libical cannot read at all is logged with its href
 * and skipped; objects with errors inside are read all the same. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <curl/curl.h>
#include <libical/ical.h>
#include "untild/caldav.h"
#include "untild/caldav_int.h"
#include "untild/caldav_proxy.h"
#include "untild/address.h"
#include "untild/daemon.h"
#include "untild/ical_raw.h"
#include "untild/contacts.h"
#include "untild/log.h"
#include "untild/policy_service.h"
#include "untild/secret.h"
#include "untild/loop.h"
#include "untild/notice.h"
#include "untild/policy.h"
#include "untild/release.h"
#include "untild/store.h"
#include "untild/strbuf.h"
#include "untild/when.h"
#include "untild/windows.h"


#define MAX_BACKOFF_S   3600

/* ---- iCalendar helpers (loop thread) ------------------------------------ */

int caldav_mailto_norm(const char *value, const char *delims, char *out, size_t outsz)
{
    if (!value)
        return -1;
    while (isspace((unsigned char)*value))
        value++;
    if (!strncasecmp(value, "mailto:", 7))
        value += 7;
    else
        return -1;
    return address_normalize(value, delims, out, outsz, NULL);
}

static icaltimezone *zone_named(const char *tz)
{
    if (!tz || !*tz || !strcasecmp(tz, "UTC"))
        return icaltimezone_get_utc_timezone();
    icaltimezone *z = icaltimezone_get_builtin_timezone(tz);
    if (!z)
        z = icaltimezone_get_builtin_timezone_from_tzid(tz);
    return z;
}

time_t caldav_prop_time(struct icalproperty_impl *p, const char *default_tz)
{
    if (!p)
        return 0;
    icalvalue *v = icalproperty_get_value(p);
    if (!v)
        return 0;
    struct icaltimetype t = icalvalue_get_datetime(v);
    if (icaltime_is_null_time(t) || !icaltime_is_valid_time(t))
        return 0;
    icaltimezone *z = NULL;
    if (icaltime_is_utc(t)) {
        z = icaltimezone_get_utc_timezone();
    } else {
        icalparameter *tp = icalproperty_get_first_parameter(p, ICAL_TZID_PARAMETER);
        if (tp)
            z = zone_named(icalparameter_get_tzid(tp));
        if (!z)
            z = zone_named(default_tz);
        if (!z)
            z = icaltimezone_get_utc_timezone();
    }
    if (t.is_date) {
        t.is_date = 0;
        t.hour = t.minute = t.second = 0;
    }
    t.zone = NULL;
    return icaltime_as_timet_with_zone(t, z);
}

/* Parse one object's data; NULL (logged) if it is not iCalendar at all.
 * Errors libical reports inside (unknown or malformed properties, empty
 * values) are logged and the object is read all the same: skipping it
 * would let an invitation to a quiet attendee pass unflagged. */
static icalcomponent *parse_obj(const struct cw *w, const struct obj *o)
{
    icalcomponent *c = icalparser_parse_string(o->data);
    if (!c || icalcomponent_isa(c) != ICAL_VCALENDAR_COMPONENT) {
        log_warn("caldav: %s: bad iCalendar at %s (not a VCALENDAR); skipped", w->rep, o->href);
        if (c)
            icalcomponent_free(c);
        return NULL;
    }
    int errs = icalcomponent_count_errors(c);
    if (errs)
        log_info("caldav: %s: %s: %d iCalendar error(s) (unknown or malformed properties); read all the same",
                 w->rep, o->href, errs);
    return c;
}

/* SUMMARY / DESCRIPTION text (unescaped, owned by the component). */
static const char *prop_text(icalcomponent *ev, icalproperty_kind k)
{
    const char *s = NULL;
    if (icalcomponent_get_first_property(ev, k))
        s = k == ICAL_SUMMARY_PROPERTY ? icalcomponent_get_summary(ev) : icalcomponent_get_description(ev);
    return s && *s ? s : NULL;
}

/* ---- flagging invitations (loop thread) --------------------------------- */

static void flag_event(struct cw *w, const struct obj *o, icalcomponent *ev, time_t now)
{
    struct untild *u = w->m->u;
    const char *tz = u->cfg->timezone;
    char org[ADDR_MAX], rep[ADDR_MAX];
    icalproperty *op = icalcomponent_get_first_property(ev, ICAL_ORGANIZER_PROPERTY);
    if (!op || address_normalize(w->rep, u->pcfg.delims, rep, sizeof rep, NULL) < 0)
        return;
    const char *ov = icalproperty_get_organizer(op);
    icalparameter *oe = icalproperty_get_first_parameter(op, ICAL_EMAIL_PARAMETER);
    int mine = caldav_address_norm(ov, oe ? icalparameter_get_email(oe) : NULL, u->pcfg.delims, org,
                                   sizeof org) == 0 && !strcmp(org, rep);
    if (!mine && !caldav_is_principal(ov, w->principal, w->user))
        return;
    int recurring = icalcomponent_get_first_property(ev, ICAL_RRULE_PROPERTY) != NULL;
    time_t start = caldav_prop_time(icalcomponent_get_first_property(ev, ICAL_DTSTART_PROPERTY), tz);
    time_t end = caldav_prop_time(icalcomponent_get_first_property(ev, ICAL_DTEND_PROPERTY), tz);
    if (!recurring && (end ? end : start) && (end ? end : start) < now)
        return;   /* a past event: nobody is being invited to anything */
    icalproperty *rp = icalcomponent_get_first_property(ev, ICAL_RECURRENCEID_PROPERTY);
    char *rid = rp ? icalproperty_get_value_as_string_r(rp) : NULL;
    int seq = icalcomponent_get_sequence(ev);
    char *summary = strdup(prop_text(ev, ICAL_SUMMARY_PROPERTY) ? prop_text(ev, ICAL_SUMMARY_PROPERTY) : "(no title)");

    for (icalproperty *ap = icalcomponent_get_first_property(ev, ICAL_ATTENDEE_PROPERTY); ap;
         ap = icalcomponent_get_next_property(ev, ICAL_ATTENDEE_PROPERTY)) {
        char att[ADDR_MAX];
        struct window_match m;
        icalparameter *ae = icalproperty_get_first_parameter(ap, ICAL_EMAIL_PARAMETER);
        if (caldav_address_norm(icalproperty_get_attendee(ap), ae ? icalparameter_get_email(ae) : NULL,
                                u->pcfg.delims, att, sizeof att) < 0
            || !strcmp(att, rep))
            continue;
        /* SCHEDULE-AGENT=CLIENT: the server did not invite them (our proxy
         * holds that invitation). */
        icalparameter *sa = icalproperty_get_first_parameter(ap, ICAL_SCHEDULEAGENT_PARAMETER);
        if (sa && icalparameter_get_scheduleagent(sa) == ICAL_SCHEDULEAGENT_CLIENT)
            continue;
        char ckey[600];     /* the server invited them: a contact (cadence) */
        snprintf(ckey, sizeof ckey, "%.500s|%d|%.60s", o->href, seq, rid ? rid : "");
        contacts_calendar(u, w->rep, att, ckey, now);
        if (!windows_match(u->ix, att, now, &m) || policy_window_action(&u->pcfg, m.w) == ACTION_ALLOW)
            continue;
        struct strbuf key = { 0 };
        sb_printf(&key, "caldav:flag:%s|%s|%s|%d|%s", w->rep, o->href, rid ? rid : "", seq, att);
        char *seen = key.p ? store_kv_get(u->store, key.p) : NULL;
        if (seen || !key.p) {
            free(seen);
            sb_free(&key);
            continue;
        }
        char until[64], at[64];
        when_format(m.quiet_until, m.w->tz ? m.w->tz : tz, until, sizeof until);
        if (start)
            when_format(start, tz, at, sizeof at);
        else
            snprintf(at, sizeof at, "(no start time)");
        struct strbuf d = { 0 }, nb = { 0 };
        sb_printf(&d, "calendar invitation \"%s\" at %s%s%s", summary, at, rid ? ", occurrence " : "",
                  rid ? rid : "");
        store_audit(u->store, &(struct audit_rec){ now, "flagged", w->rep, att, m.w->id, o->href, d.p });
        sb_printf(&nb, "Your calendar server sent an invitation to someone who asked not to be contacted yet.\n\n"
                  "Attendee: %s\nQuiet until: %s\nWindow: %s\nReason: %s\n\nEvent: %s\nWhen: %s%s%s%s\n"
                  "Calendar object: %s\n\n"
                  "To hold such invitations instead, use untild's CalDAV proxy.\n",
                  att, until, m.w->id, m.w->reason ? m.w->reason : "(none given)", summary, at,
                  recurring ? " (recurring)" : "", rid ? "\nOccurrence: " : "", rid ? rid : "", o->href);
        notice_send(u, NOTICE_FLAGGED_INVITATION, w->rep, nb.p ? nb.p : "", NULL, 0);
        log_info("caldav: %s: flagged invitation %s to %s (window %s)", w->rep, o->href, att, m.w->id);
        if (store_kv_set(u->store, key.p, "1") < 0)
            log_error("caldav: %s: cannot remember flag %s", w->rep, key.p);
        sb_free(&d);
        sb_free(&nb);
        sb_free(&key);
    }
    free(rid);
    free(summary);
}

/* An invitation from someone else in the rep's calendar: the evidence a
 * calendar REPLY from the rep to its organizer needs (issue 11.13). */
static void note_invitation(struct cw *w, icalcomponent *ev, time_t now)
{
    struct untild *u = w->m->u;
    char org[ADDR_MAX], rep[ADDR_MAX];
    icalproperty *op = icalcomponent_get_first_property(ev, ICAL_ORGANIZER_PROPERTY);
    const char *uid = icalcomponent_get_uid(ev);
    if (!op || !uid || !*uid
        || caldav_mailto_norm(icalproperty_get_organizer(op), u->pcfg.delims, org, sizeof org) < 0
        || address_normalize(w->rep, u->pcfg.delims, rep, sizeof rep, NULL) < 0 || !strcmp(org, rep))
        return;
    if (store_invite_add(u->store, rep, uid, org, now) < 0)
        log_error("caldav: %s: cannot record the invitation %s from %s", w->rep, uid, org);
    else
        log_info("caldav: %s: invitation %s from %s seen; a reply to it is not contact", w->rep, uid, org);
}

/* ---- windows from the calendar (loop thread) ---------------------------- */

static void wins_free(struct window *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        window_free_fields(&v[i]);
    free(v);
}

static void add_who(struct window *wn, const char *norm)
{
    for (size_t i = 0; i < wn->nwho; i++)
        if (!strcmp(wn->who[i], norm))
            return;
    char **v = realloc(wn->who, (wn->nwho + 1) * sizeof *v);
    if (!v)
        return;
    wn->who = v;
    if ((v[wn->nwho] = strdup(norm)))
        wn->nwho++;
}

/* Every mailto: in free text. */
static void who_from_text(struct window *wn, const char *text, const char *delims)
{
    for (const char *p = text; p && (p = strcasestr(p, "mailto:"));) {
        p += 7;
        size_t l = strcspn(p, " \t\r\n,;<>()\"'");
        char a[ADDR_MAX], norm[ADDR_MAX];
        if (l && l < sizeof a) {
            memcpy(a, p, l);
            a[l] = '\0';
            while (l && a[l - 1] == '.')
                a[--l] = '\0';
            if (address_normalize(a, delims, norm, sizeof norm, NULL) == 0)
                add_who(wn, norm);
        }
        p += l;
    }
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
    return h;
}

/* A window from one VEVENT; 0 if made, -1 if the event makes none. */
static int event_window(struct cw *w, const struct obj *o, icalcomponent *ev, time_t now,
                        struct window *wn)
{
    struct untild *u = w->m->u;
    const char *dtz = u->cfg->timezone;
    char rep[ADDR_MAX];
    memset(wn, 0, sizeof *wn);
    if (icalcomponent_get_status(ev) == ICAL_STATUS_CANCELLED)
        return -1;
    if (address_normalize(w->rep, u->pcfg.delims, rep, sizeof rep, NULL) < 0)
        rep[0] = '\0';
    for (icalproperty *ap = icalcomponent_get_first_property(ev, ICAL_ATTENDEE_PROPERTY); ap;
         ap = icalcomponent_get_next_property(ev, ICAL_ATTENDEE_PROPERTY)) {
        char a[ADDR_MAX];
        if (caldav_mailto_norm(icalproperty_get_attendee(ap), u->pcfg.delims, a, sizeof a) == 0
            && strcmp(a, rep))
            add_who(wn, a);
    }
    const char *summary = prop_text(ev, ICAL_SUMMARY_PROPERTY);
    const char *desc = prop_text(ev, ICAL_DESCRIPTION_PROPERTY);
    who_from_text(wn, summary, u->pcfg.delims);
    who_from_text(wn, desc, u->pcfg.delims);
    if (!wn->nwho) {
        log_warn("caldav: %s: windows event %s names nobody (no attendee, no mailto:); ignored",
                 w->rep, o->href);
        goto none;
    }
    icalproperty *sp = icalcomponent_get_first_property(ev, ICAL_DTSTART_PROPERTY);
    icalproperty *ep = icalcomponent_get_first_property(ev, ICAL_DTEND_PROPERTY);
    icalproperty *rr = icalcomponent_get_first_property(ev, ICAL_RRULE_PROPERTY);
    time_t start = caldav_prop_time(sp, dtz), end = caldav_prop_time(ep, dtz);
    if (!start) {
        log_warn("caldav: %s: windows event %s has no DTSTART; ignored", w->rep, o->href);
        goto none;
    }
    if (!end) {
        struct icaldurationtype d = icalcomponent_get_duration(ev);
        int64_t secs = icaldurationtype_as_int(d);
        struct icaltimetype st = icalproperty_get_dtstart(sp);
        end = secs > 0 ? start + secs : start + (st.is_date ? 86400 : 0);
    }
    if (end <= start) {
        log_warn("caldav: %s: windows event %s ends before it starts; ignored", w->rep, o->href);
        goto none;
    }
    icalparameter *tzp = icalproperty_get_first_parameter(sp, ICAL_TZID_PARAMETER);
    const char *tz = tzp && zone_named(icalparameter_get_tzid(tzp)) ? icalparameter_get_tzid(tzp) : dtz;
    wn->tz = strdup(tz ? tz : "UTC");
    wn->from = start;
    if (rr) {
        struct icalrecurrencetype r = icalproperty_get_rrule(rr);
        char *rs = icalproperty_get_value_as_string_r(rr);
        wn->rrule = rs;
        wn->duration = end - start;
        wn->until = WHEN_NEVER;
        if (!icaltime_is_null_time(r.until)) {
            struct icaltimetype ut = r.until;
            if (ut.is_date) {
                ut.is_date = 0;
                ut.hour = ut.minute = ut.second = 0;
            }
            icaltimezone *z = icaltime_is_utc(ut) ? icaltimezone_get_utc_timezone() : zone_named(wn->tz);
            ut.zone = NULL;
            wn->until = icaltime_as_timet_with_zone(ut, z ? z : icaltimezone_get_utc_timezone())
                        + wn->duration;
        } else if (r.count > 0) {
            /* Find the last occurrence, bounded (libical iterates forever
             * without COUNT/UNTIL; this has a COUNT). */
            struct icaltimetype dst = icalproperty_get_dtstart(sp);
            icalrecur_iterator *it = icalrecur_iterator_new(r, dst);
            struct icaltimetype last = icaltime_null_time(), nx;
            for (int k = 0; it && k < 100000 && !icaltime_is_null_time(nx = icalrecur_iterator_next(it)); k++)
                last = nx;
            if (it)
                icalrecur_iterator_free(it);
            if (!icaltime_is_null_time(last)) {
                if (last.is_date) {
                    last.is_date = 0;
                    last.hour = last.minute = last.second = 0;
                }
                icaltimezone *z = icaltime_is_utc(last) ? icaltimezone_get_utc_timezone() : zone_named(wn->tz);
                last.zone = NULL;
                wn->until = icaltime_as_timet_with_zone(last, z ? z : icaltimezone_get_utc_timezone())
                            + wn->duration;
            }
        }
    } else {
        wn->until = end;
        wn->duration = 86400;
    }
    if (wn->until != WHEN_NEVER && wn->until <= now)
        goto none;   /* over: it holds nothing */
    wn->reason = desc ? strdup(desc) : summary ? strdup(summary) : NULL;
    wn->owner = strdup(w->rep);
    wn->action = ACTION_DEFAULT;
    wn->source = WSRC_CALDAV;
    wn->created = now;
    icalproperty *rp = icalcomponent_get_first_property(ev, ICAL_RECURRENCEID_PROPERTY);
    char *rid = rp ? icalproperty_get_value_as_string_r(rp) : NULL;
    uint64_t h = fnv(fnv(fnv(14695981039346656037ULL, w->rep), o->href), rid);
    free(rid);
    snprintf(wn->id, sizeof wn->id, "c%012llx", (unsigned long long)(h & 0xffffffffffffULL));
    return 0;
none:
    window_free_fields(wn);
    memset(wn, 0, sizeof *wn);
    return -1;
}

static int same_window(const struct window *a, const struct window *b)
{
    if (strcmp(a->id, b->id) || a->from != b->from || a->until != b->until || a->nwho != b->nwho
        || a->duration != b->duration)
        return 0;
    if ((a->rrule == NULL) != (b->rrule == NULL) || (a->rrule && strcmp(a->rrule, b->rrule)))
        return 0;
    for (size_t i = 0; i < a->nwho; i++)
        if (strcmp(a->who[i], b->who[i]))
            return 0;
    return 1;
}

static void rebuild_windows(struct cw *w, const struct objs *objs, time_t now)
{
    struct untild *u = w->m->u;
    struct window *nv = NULL;
    size_t nn = 0;
    for (size_t i = 0; i < objs->n; i++) {
        icalcomponent *c = parse_obj(w, &objs->o[i]);
        if (!c)
            continue;
        for (icalcomponent *ev = icalcomponent_get_first_component(c, ICAL_VEVENT_COMPONENT); ev;
             ev = icalcomponent_get_next_component(c, ICAL_VEVENT_COMPONENT)) {
            struct window wn;
            if (event_window(w, &objs->o[i], ev, now, &wn) < 0)
                continue;
            struct window *t = realloc(nv, (nn + 1) * sizeof *t);
            if (!t) {
                window_free_fields(&wn);
                continue;
            }
            nv = t;
            nv[nn++] = wn;
        }
        icalcomponent_free(c);
    }
    int changed = 0;
    for (size_t i = 0; i < w->nwins; i++) {   /* gone or changed: remove */
        size_t j;
        for (j = 0; j < nn && strcmp(nv[j].id, w->wins[i].id); j++)
            ;
        if (j == nn || !same_window(&w->wins[i], &nv[j])) {
            windows_remove(u->ix, w->wins[i].id);
            changed = 1;
            if (j == nn) {
                store_window_retract(u->store, w->wins[i].id, WSRC_CALDAV);   /* other gateways */
                store_audit(u->store, &(struct audit_rec){ now, "window-ended", w->rep, w->wins[i].who[0],
                            w->wins[i].id, NULL, "event removed from the windows calendar" });
                log_info("caldav: %s: window %s ended (event gone)", w->rep, w->wins[i].id);
            }
        }
    }
    for (size_t j = 0; j < nn; j++) {
        size_t i;
        for (i = 0; i < w->nwins && strcmp(nv[j].id, w->wins[i].id); i++)
            ;
        if (i < w->nwins && same_window(&w->wins[i], &nv[j]) && windows_get(u->ix, nv[j].id))
            continue;
        if (!windows_add(u->ix, &nv[j])) {
            log_error("caldav: %s: cannot add window %s", w->rep, nv[j].id);
            continue;
        }
        store_window_publish(u->store, &nv[j]);   /* other gateways ([store] url) */
        changed = 1;
        if (i == w->nwins) {
            store_audit(u->store, &(struct audit_rec){ now, "window-added", w->rep, nv[j].who[0], nv[j].id,
                        NULL, nv[j].reason });
            log_info("caldav: %s: window %s for %s from the calendar", w->rep, nv[j].id, nv[j].who[0]);
        }
    }
    wins_free(w->wins, w->nwins);
    w->wins = nv;
    w->nwins = nn;
    if (changed) {
        release_kick(u->release, 1);
        policy_service_kick(u->psvc, 1);
        untild_windows_changed(u);
    }
}

/* ---- scheduling (loop thread) ------------------------------------------- */

static void on_timer(struct loop *l, uint64_t id, void *arg);

static void schedule(struct cw *w, int64_t secs)
{
    if (w->timer)
        loop_timer_del(w->m->u->loop, w->timer);
    w->timer = loop_timer(w->m->u->loop, secs * 1000, on_timer, w);
}

static void on_timer(struct loop *l, uint64_t id, void *arg)
{
    struct cw *w = arg;
    struct untild *u = w->m->u;
    (void)l;
    (void)id;
    w->timer = 0;
    if (w->busy)
        return;
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        schedule(w, w->poll);
        return;
    }
    j->state = store_kv_get(u->store, w->statekey);
    j->wins_tag = w->wins_tag ? strdup(w->wins_tag) : NULL;
    if (w->proxy)
        j->num = caldav_proxy_unmarks_due(u, w->rep, j->um, MAX_UNMARKS);
    pthread_mutex_lock(&w->mu);
    w->job = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    w->busy = 1;
}

static void cw_destroy(struct cw *w);

static void on_result(void *arg)
{
    struct result *r = arg;
    struct cw *w = r->w;
    atomic_store(&w->posted, 0);
    if (w->dead) {   /* posted before caldav_stop, run at shutdown */
        caldav_result_free(r);
        cw_destroy(w);
        return;
    }
    struct untild *u = w->m->u;
    time_t now = untild_now(u);
    w->busy = 0;
    for (size_t i = 0; r->job && i < r->job->num; i++)
        if (r->job->um_done[i]) {
            caldav_proxy_unmark_done(u, w->rep, r->job->um[i].path, r->job->um[i].value);
            log_info("caldav: %s: %s in %s was released: the server schedules them again", w->rep,
                     r->job->um[i].value, r->job->um[i].path);
        }
    if (!r->ok) {
        w->failures++;
        int64_t d = w->poll;
        for (int i = 0; i < w->failures && d < MAX_BACKOFF_S; i++)
            d *= 2;
        if (d > MAX_BACKOFF_S)
            d = MAX_BACKOFF_S;
        log_warn("caldav: %s: sync failed: %s; retrying in %llds", w->rep, r->err[0] ? r->err : "error",
                 (long long)d);
        caldav_result_free(r);
        schedule(w, d);
        return;
    }
    if (r->principal && (!w->principal || strcmp(w->principal, r->principal))) {
        free(w->principal);
        w->principal = r->principal;
        r->principal = NULL;
        caldav_proxy_set_principal(w->proxy, w->principal);
    }
    log_debug("caldav: %s: synced (windows calendar %s%s%s)", w->rep, r->wins_found ? "tag " : "not found",
              r->wins_found && r->wins_tag ? r->wins_tag : "", r->wins_fetched ? ", fetched" : "");
    if (w->failures)
        log_info("caldav: %s: sync works again", w->rep);
    w->failures = 0;
    for (size_t i = 0; i < r->changed.n; i++) {
        icalcomponent *c = parse_obj(w, &r->changed.o[i]);
        if (!c)
            continue;
        for (icalcomponent *ev = icalcomponent_get_first_component(c, ICAL_VEVENT_COMPONENT); ev;
             ev = icalcomponent_get_next_component(c, ICAL_VEVENT_COMPONENT)) {
            flag_event(w, &r->changed.o[i], ev, now);
            note_invitation(w, ev, now);
        }
        icalcomponent_free(c);
    }
    /* Stored only now that everything it covers was processed. */
    if (store_kv_set(u->store, w->statekey, r->state) < 0)
        log_error("caldav: %s: cannot store the sync state", w->rep);
    if (r->wins_fetched) {
        rebuild_windows(w, &r->wobj, now);
        free(w->wins_tag);
        w->wins_tag = r->wins_tag;
        r->wins_tag = NULL;
    } else if (!r->wins_found && w->nwins) {
        struct objs none = { 0 };
        rebuild_windows(w, &none, now);   /* the calendar is gone */
        free(w->wins_tag);
        w->wins_tag = NULL;
    }
    caldav_result_free(r);
    schedule(w, w->poll);
}

/* ---- start / stop ------------------------------------------------------- */

/* libcurl's CAINFO replaces the system trust store, but tls_ca should add
 * to it (as for IMAP): write <state_dir>/caldav-ca.<rep>.pem (0600) = the
 * system bundle + the tls_ca file, atomically, and use that as CAINFO.
 * Errors are logged. */
#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static int copy_into(FILE *out, const char *path, int must)
{
    FILE *in = fopen(path, "r");
    char buf[8192];
    size_t n;
    if (!in) {
        if (must)
            log_error("caldav: cannot read %s: %s", path, strerror(errno));
        return must ? -1 : 0;
    }
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            break;
    int bad = ferror(in) || ferror(out);
    fclose(in);
    if (bad || fputs("\n", out) == EOF) {
        log_error("caldav: cannot copy %s into the CA bundle", path);
        return -1;
    }
    return 0;
}

static char *ca_bundle_path(const char *state_dir, const char *rep)
{
    char name[ADDR_MAX + 32], *path = NULL;
    size_t j = 0;
    for (const char *r = rep; *r && j < sizeof name - 1; r++)
        name[j++] = isalnum((unsigned char)*r) || strchr("@.-_", *r) ? *r : '_';
    name[j] = '\0';
    return asprintf(&path, "%s/caldav-ca.%s.pem", state_dir, name) < 0 ? NULL : path;
}

static int ca_bundle_write(const char *path, const char *src)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!out) {
        log_error("caldav: cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(tmp);
        return -1;
    }
    int bad = fchmod(fd, 0600) < 0 || copy_into(out, SYSTEM_CA_BUNDLE, 0) < 0 || copy_into(out, src, 1) < 0;
    bad |= fflush(out) == EOF || fsync(fd) < 0;
    bad |= fclose(out) == EOF;
    if (bad || rename(tmp, path) < 0) {
        log_error("caldav: cannot build the CA bundle %s", path);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

static void cw_free(struct cw *w)
{
    if (!w)
        return;
    if (w->th_started) {
        pthread_mutex_lock(&w->mu);
        atomic_store(&w->quit, 1);
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
        w->th_started = 0;
    }
    caldav_proxy_stop(w->proxy);
    w->proxy = NULL;
    if (w->timer)
        loop_timer_del(w->m->u->loop, w->timer);
    w->timer = 0;
    if (atomic_load(&w->posted)) {
        w->dead = 1;   /* the queued result frees us */
        return;
    }
    cw_destroy(w);
}

static void cw_destroy(struct cw *w)
{
    caldav_job_free(w->job);
    if (w->curl)
        curl_easy_cleanup(w->curl);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    wins_free(w->wins, w->nwins);
    if (w->pass)
        explicit_bzero(w->pass, strlen(w->pass));
    free(w->rep); free(w->url); free(w->user); free(w->pass); free(w->tls_ca); free(w->ca_src);
    free(w->calendars); free(w->wincal); free(w->proxy_listen); free(w->wins_tag);
    free(w->principal);
    free(w);
}

static struct cw *cw_new(struct caldav *m, const struct caldav_cfg *d)
{
    struct untild *u = m->u;
    const char *rep = d->rep ? d->rep : u->cfg->owner;
    if (!rep) {
        log_error("caldav: no rep for [caldav]: set [daemon] owner or use [caldav REP]");
        return NULL;
    }
    if (d->tls != TLS_NONE && strncasecmp(d->url, "https://", 8)) {
        log_error("caldav: %s: url %s is not https and tls = required", rep, d->url);
        return NULL;
    }
    struct cw *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->m = m;
    w->loop = u->loop;
    w->on_result = on_result;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->rep = strdup(rep);
    w->url = strdup(d->url);
    w->user = d->username ? strdup(d->username) : NULL;
    int failed;   /* logged by secret_load; the worker then asks without credentials */
    w->pass = secret_load_optional(d->password_file, d->password_command, "caldav", &failed);
    w->ca_src = d->tls_ca ? strdup(d->tls_ca) : NULL;
    if (d->tls_ca && (!(w->tls_ca = ca_bundle_path(u->cfg->state_dir, rep))
                      || ca_bundle_write(w->tls_ca, d->tls_ca) < 0)) {
        cw_free(w);
        return NULL;
    }
    w->calendars = strdup(d->calendars ? d->calendars : "*");
    w->wincal = strdup(d->windows_calendar ? d->windows_calendar : "Do not contact");
    w->proxy_listen = d->proxy_listen ? strdup(d->proxy_listen) : NULL;
    w->proxy_max_body = d->proxy_max_body;
    w->poll = d->poll_interval > 0 ? d->poll_interval : 60;
    w->sync_etag = d->sync_etag;
    snprintf(w->statekey, sizeof w->statekey, "caldav:state:%s", w->rep);
    if (!w->rep || !w->url || !w->calendars || !w->wincal || !(w->curl = curl_easy_init())) {
        cw_free(w);
        return NULL;
    }
    if (pthread_create(&w->th, NULL, caldav_worker_main, w) != 0) {
        log_error("caldav: %s: cannot start the worker thread", w->rep);
        cw_free(w);
        return NULL;
    }
    w->th_started = 1;
    if (w->proxy_listen
        && !(w->proxy = caldav_proxy_start(u, w->rep, w->proxy_listen, w->url, w->tls_ca,
                                                             w->proxy_max_body))) {
        cw_free(w);
        return NULL;
    }
    schedule(w, 0);
    log_info("caldav: watching %s for %s every %ds%s%s%s", w->url, w->rep, w->poll,
             w->sync_etag ? " (sync = etag: ctag and etag listing)" : "",
             w->proxy ? ", proxy on " : "", w->proxy ? w->proxy_listen : "");
    return w;
}

struct caldav *caldav_start(struct untild *u, int *err)
{
    *err = 0;
    if (!u->cfg->ncaldav)
        return NULL;
    struct caldav *m = calloc(1, sizeof *m);
    if (!m || !(m->w = calloc(u->cfg->ncaldav, sizeof *m->w))) {
        free(m);
        *err = -1;
        return NULL;
    }
    m->u = u;
    for (size_t i = 0; i < u->cfg->ncaldav; i++) {
        struct cw *w = cw_new(m, &u->cfg->caldav[i]);
        if (!w) {
            log_error("caldav: cannot start [caldav%s%s]", u->cfg->caldav[i].rep ? " " : "",
                      u->cfg->caldav[i].rep ? u->cfg->caldav[i].rep : "");
            caldav_stop(m);
            *err = -1;
            return NULL;
        }
        m->w[m->n++] = w;
    }
    return m;
}

void caldav_reconfigure(struct caldav *m)
{
    if (!m)
        return;
    /* The reload rebuilt u->ix from files and the store: put the calendar's
     * windows back. (Changed [caldav] settings take effect on restart.) */
    for (size_t i = 0; i < m->n; i++) {
        struct cw *w = m->w[i];
        /* A renewed tls_ca file: rebuild the bundle in place (the workers
         * read the file at each connection). */
        for (size_t k = 0; k < m->u->cfg->ncaldav && w->ca_src; k++) {
            const struct caldav_cfg *d = &m->u->cfg->caldav[k];
            const char *rep = d->rep ? d->rep : m->u->cfg->owner;
            if (rep && !strcmp(rep, w->rep) && d->tls_ca && !strcmp(d->tls_ca, w->ca_src)) {
                if (ca_bundle_write(w->tls_ca, w->ca_src) < 0)
                    log_warn("caldav: %s: keeping the previous CA bundle", w->rep);
                break;
            }
        }
        for (size_t j = 0; j < w->nwins; j++)
            if (!windows_add(m->u->ix, &w->wins[j]))
                log_error("caldav: %s: cannot re-add window %s", w->rep, w->wins[j].id);
    }
}

void caldav_stop(struct caldav *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        cw_free(m->w[i]);
    free(m->w);
    free(m);
}
