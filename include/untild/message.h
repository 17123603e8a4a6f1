/* message.h - facts about an RFC 5322 message that policy needs: a few
 * headers, and iMIP (calendar invitation) facts from a MIME walk.
 *
 * The MIME walk finds every text/calendar and application/ics part (at any
 * depth of multipart/...), decodes base64 / quoted-printable, unfolds and
 * parses the iCalendar with libical, and takes METHOD from the decoded data
 * (not from the Content-Type parameter). Malformed MIME or iCalendar is
 * never fatal: the message is treated as plain mail and `ical_errors` counts
 * what libical complained about. Depth and part counts are bounded. */
#ifndef UNTILD_MESSAGE_H
#define UNTILD_MESSAGE_H

#include <stddef.h>
#include <time.h>

enum imip_method { IMIP_NONE = 0, IMIP_REQUEST, IMIP_REPLY, IMIP_CANCEL,
                   IMIP_OTHER };

#define MSG_MAX_ATTENDEES 256

struct message_facts {
    char *subject;           /* decoded if RFC 2047 (UTF-8), else raw; may be NULL */
    char *message_id;        /* without <>; may be NULL */
    char *in_reply_to;       /* without <>; may be NULL */
    char *references;        /* raw, space-separated ids with <>; may be NULL */
    char *from;              /* normalised address of From:, may be NULL */
    char *date;              /* raw Date: */
    size_t header_len;       /* bytes of the header section incl. the blank line */
    /* iMIP */
    enum imip_method method;
    char *ical_uid;          /* UID of the (first) VEVENT/VTODO */
    long ical_sequence;
    char *organizer;         /* normalised address, from mailto: */
    char *attendees[MSG_MAX_ATTENDEES]; /* normalised addresses */
    size_t nattendees;
    time_t dtstart;          /* first instance start, 0 if none */
    char *summary;
    int ical_errors;         /* X-LIC-ERROR count + undecodable parts */
    char *ical_data;         /* the decoded iCalendar text of the first
                                calendar part (for re-sending), may be NULL */
};

/* Parse msg (len bytes, CRLF or LF line ends). delims: sub-address
 * delimiters for normalising addresses. Always fills what it can and
 * returns 0; -1 only on ENOMEM. */
int message_parse(const char *msg, size_t len, const char *delims,
                  struct message_facts *f);
void message_facts_free(struct message_facts *f);

/* Find header `name` (case-insensitive) in msg's header section; returns a
 * malloc'd unfolded value or NULL. */
char *message_header(const char *msg, size_t len, const char *name);

#endif
