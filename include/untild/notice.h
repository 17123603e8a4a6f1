/* notice.h - notices to the rep (held, flagged, released, failed, stale
 * invitation, status): proper RFC 5322 messages carrying the command
 * addresses as mailto: links, delivered through the relay (upstream or
 * the local maildir). */
#ifndef UNTILD_NOTICE_H
#define UNTILD_NOTICE_H

#include <stddef.h>
#include <time.h>
#include "untild/notice_kind.h"

struct untild;

/* The one way to send a notice: kind (notice_kind.h: its subject and the
 * [notify] events name that selects it) to rep, dropped (returns 0, debug
 * log) when [notify] events leaves the kind out. body: plain text (LF or
 * CRLF). attach/attach_len: an optional message attached as
 * message/rfc822 (e.g. a failed one). Appended to the rep's mailbox by the
 * IMAP watcher when it knows the rep, else kept in the spool and retried
 * until delivered (release_notice). Returns 0 if sent, queued or dropped. */
int notice_send(struct untild *u, enum notice_kind kind, const char *rep, const char *body,
                const char *attach, size_t attach_len);
/* The same with a subject of its own (NULL: the kind's), for notices that
 * name their subject matter (follow-ups, the digest). */
int notice_send_subject(struct untild *u, enum notice_kind kind, const char *rep, const char *subject,
                        const char *body, const char *attach, size_t attach_len);

/* Where notices for rep are mailed ([notify] to, else the rep), or NULL
 * when that is not a mail address. */
const char *notice_address(const struct untild *u, const char *rep);

/* RFC 5322 2.1.1: no line longer than this (CRLF not counted). */
#define NOTICE_LINE_MAX 998
struct strbuf;
/* Append "name: value" CRLF, folded at spaces within 78 columns where it
 * can be; a value with non-ASCII or control characters (or a word too
 * long for a line) as RFC 2047 encoded-words (UTF-8, B), each of whole
 * characters, no line over 76 columns. Invalid UTF-8 becomes U+FFFD. For
 * any header of mail untild generates. */
void notice_header(struct strbuf *b, const char *name, const char *value);
/* Append text (LF or CRLF lines) as CRLF lines of at most
 * NOTICE_LINE_MAX octets: a longer line is wrapped at white space or after
 * a comma (within 78 columns where it can be; continuation lines indented
 * by two spaces), or cut between UTF-8 characters if it has neither. A
 * bare CR becomes a space. */
void notice_text(struct strbuf *b, const char *s, size_t n);

/* Build the notice message (exposed for tests). Returns malloc'd CRLF
 * text within the limits above, *len set; NULL if out of memory. */
char *notice_build(const char *from, const char *to, const char *subject,
                   const char *body, const char *attach, size_t attach_len,
                   time_t now, size_t *len);

#endif
