/* digest.h - the weekly digest (issue 12).
 *
 * At [digest] day and time ([daemon] timezone), once a week: each rep
 * with something to report gets last week's held, flagged, rejected and
 * released mail and the follow-ups due in the coming week; [digest]
 * managers get the team's figures per rep (through the gate, around it:
 * IMAP Sent) and the contacts pressed most. Plain text with an HTML
 * alternative (a table). The digest sent is recorded in the store, so a
 * restart does not send it again; one missed by less than a day (daemon
 * down) is sent late. Loop thread only. */
#ifndef UNTILD_DIGEST_H
#define UNTILD_DIGEST_H

#include <stddef.h>
#include <time.h>

struct untild;
struct digest;

/* Pure: the first `wday` (0 Sunday .. 6 Saturday) at `minutes` after local
 * midnight in tz, at or after t. */
time_t digest_next(time_t t, const char *tz, int wday, int minutes);

/* Pure: a multipart/alternative message (text and HTML, UTF-8) from
 * untild. Returns malloc'd CRLF text, *len set; NULL on ENOMEM. */
char *digest_message(const char *from, const char *to, const char *subject, const char *text,
                     const char *html, time_t now, size_t *len);

struct digest *digest_new(struct untild *u);
void digest_free(struct digest *d);
/* The clock moved or the configuration changed: look again. d may be NULL. */
void digest_kick(struct digest *d);

#endif
