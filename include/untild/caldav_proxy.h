/* caldav_proxy.h - the opt-in CalDAV proxy (see daemon/caldav_proxy.c), and
 * the few iCalendar helpers it shares with the watcher (daemon/caldav.c).
 * Everything here that touches libical runs on the loop thread only. */
#ifndef UNTILD_CALDAV_PROXY_H
#define UNTILD_CALDAV_PROXY_H

#include <stddef.h>
#include <time.h>

struct untild;
struct caldav_proxy;

/* Start a proxy for rep on listen ("127.0.0.1:PORT"), forwarding to the
 * server at url (its scheme://host:port is used; request paths are kept).
 * tls_ca: extra trust anchor or NULL. Returns NULL on failure (logged). */
struct caldav_proxy *caldav_proxy_start(struct untild *u, const char *rep,
                                        const char *listen, const char *url,
                                        const char *tls_ca, size_t max_body);
/* Stop (joins the connection threads; call after the loop stopped). */
void caldav_proxy_stop(struct caldav_proxy *p);

/* The rep's principal (a path or URL) as the watcher discovered it: an
 * ORGANIZER naming it is the rep. Loop thread. */
void caldav_proxy_set_principal(struct caldav_proxy *p, const char *principal);

/* A calendar user address -> normalised e-mail address: value
 * "mailto:..." or else its EMAIL parameter (email, may be NULL). */
int caldav_address_norm(const char *value, const char *email, const char *delims, char *out,
                        size_t outsz);
/* value is a principal URL of this user: the same path as principal, or
 * a path whose last segment is user (either may be NULL). */
int caldav_is_principal(const char *value, const char *principal, const char *user);

/* Attendees untild marked SCHEDULE-AGENT=CLIENT whose invitation was
 * released and who are not quiet any more: the watcher removes the
 * parameter from the server's copy of path (If-Match). value: the
 * ATTENDEE value as written. Fills up to max (path and value malloc'd);
 * forgets marks whose invitation was discarded. Loop thread. */
struct caldav_unmark { char *path, *value; };
size_t caldav_proxy_unmarks_due(struct untild *u, const char *rep, struct caldav_unmark *out,
                                size_t max);
/* The server's copy no longer marks value in path (or is gone). */
void caldav_proxy_unmark_done(struct untild *u, const char *rep, const char *path, const char *value);

/* "mailto:Jane@Acme.com" -> normalised address. Returns 0 or -1. */
int caldav_mailto_norm(const char *value, const char *delims, char *out,
                       size_t outsz);

/* A DTSTART/DTEND-like property value as Unix time: DATE values are 00:00
 * and floating times are local in default_tz (also when the TZID is not
 * known). Returns 0 if p is NULL or has no valid time. */
struct icalproperty_impl;
time_t caldav_prop_time(struct icalproperty_impl *p, const char *default_tz);

#endif
