/* notice.h - notices to the rep (held, flagged, released, failed, stale
 * invitation, status): proper RFC 5322 messages carrying the command
 * addresses as mailto: links, delivered through the relay (upstream or
 * the local maildir). */
#ifndef UNTILD_NOTICE_H
#define UNTILD_NOTICE_H

#include <stddef.h>

struct untild;

enum notice_kind { NOTICE_HELD, NOTICE_FLAGGED, NOTICE_RELEASED, NOTICE_FAILED,
                   NOTICE_STALE, NOTICE_STATUS, NOTICE_OTHER };

/* Like notice_send, but dropped (returns 0) when [notify] events leaves
 * this kind out; NOTICE_OTHER is always sent. */
int notice_send_kind(struct untild *u, enum notice_kind kind, const char *rep,
                     const char *subject, const char *body, const char *attach,
                     size_t attach_len);

/* Send a notice to rep. body: plain text (LF or CRLF). attach/attach_len:
 * an optional message attached as message/rfc822 (e.g. a failed one).
 * Kept in the spool and retried until delivered (release_notice), or
 * appended to the rep's mailbox by the IMAP watcher. Returns 0 if queued. */
int notice_send(struct untild *u, const char *rep, const char *subject,
                const char *body, const char *attach, size_t attach_len);

/* Where notices for rep are mailed ([notify] to, else the rep), or NULL
 * when that is not a mail address. */
const char *notice_address(const struct untild *u, const char *rep);

/* Build the notice message (exposed for tests). Returns malloc'd CRLF
 * text, *len set. */
char *notice_build(const char *from, const char *to, const char *subject,
                   const char *body, const char *attach, size_t attach_len,
                   time_t now, size_t *len);

#endif
