/* message.h - facts about an RFC 5322 message that policy needs: a few
 * headers, and iMIP (calendar invitation) facts from a MIME walk.
 *
 * The MIME walk finds every text/calendar and application/ics part (at any
 * depth of multipart/...), decodes base64 / quoted-printable, unfolds and
 * parses the iCalendar with libical, and takes METHOD from the decoded data
 * (not from the Content-Type parameter). Malformed MIME or iCalendar is
 * never fatal. Depth and part counts are bounded, and so is the work on
 * calendar data (STYLE.md, libical):
 *  - the calendar bytes looked at are capped (max_cal): a larger calendar
 *    part is not parsed at all, and the message is then plain mail
 *    (ical_part = MSG_ICAL_TOO_LARGE, method IMIP_NONE): never an
 *    exception to a hold;
 *  - times are resolved by zone NAME (libical's builtin zones); a
 *    VTIMEZONE carried in the message is only read for its offsets, by a
 *    small fixed-cost evaluator (yearly BYMONTH/BYDAY rules), never
 *    expanded by libical; an unknown TZID without one is UTC;
 *  - recurrence is followed only as far as the last occurrence, with a
 *    step cap, and only for DAILY or coarser rules (finer ones are
 *    computed without iterating, or called open-ended). */
#ifndef UNTILD_MESSAGE_H
#define UNTILD_MESSAGE_H

#include <stddef.h>
#include <time.h>

enum imip_method { IMIP_NONE = 0, IMIP_REQUEST, IMIP_REPLY, IMIP_CANCEL,
                   IMIP_OTHER };

#define MSG_MAX_ATTENDEES 256

/* Default cap on the calendar bytes of one message ([policy]
 * max_calendar_part): parsing costs about 30x the size in memory. */
#define MESSAGE_MAX_CALENDAR_DEFAULT (1024u * 1024u)

/* ical_last of a series with no last occurrence (no UNTIL/COUNT, or one
 * too costly to follow). */
#define IMIP_OPEN_ENDED ((time_t)-1)

/* What became of the calendar part(s). */
enum msg_ical_part {
    MSG_ICAL_NONE = 0,       /* no calendar part */
    MSG_ICAL_USED,           /* parsed; the iMIP facts come from it */
    MSG_ICAL_UNUSABLE,       /* not iCalendar at all: plain mail */
    MSG_ICAL_TOO_LARGE,      /* over max_cal, not parsed: plain mail */
};

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
    time_t ical_last;        /* start of the last occurrence: dtstart for a
                                single event, IMIP_OPEN_ENDED for a series
                                without end; 0 if no start */
    char *ical_recurrence_id;/* RECURRENCE-ID of an occurrence-only message
                                (no master VEVENT), as UTC "YYYYMMDDTHHMMSSZ"
                                (DATE: "YYYYMMDD"); NULL for a series or a
                                single event */
    char *summary;
    enum msg_ical_part ical_part;
    size_t ical_size;        /* calendar bytes seen (for the log) */
    int ical_errors;         /* complaints that can change a decision: an
                                unusable part, or libical errors in the
                                properties untild reads (METHOD, UID,
                                ORGANIZER, ATTENDEE, DTSTART, RRULE, RDATE,
                                RECURRENCE-ID, SEQUENCE...) */
    int ical_ignored;        /* complaints about properties untild does not
                                read (e.g. the empty LOCATION: and
                                DESCRIPTION: of Google/Outlook/Teams) */
    char ical_error_prop[32];/* name of the first property in ical_errors */
    char *ical_data;         /* the decoded iCalendar text of the first
                                calendar part (for re-sending), may be NULL */
};

/* Parse msg (len bytes, CRLF or LF line ends). delims: sub-address
 * delimiters for normalising addresses. Always fills what it can and
 * returns 0; -1 only on ENOMEM. */
int message_parse(const char *msg, size_t len, const char *delims,
                  struct message_facts *f);
/* The same with an explicit cap on calendar bytes (0: the default). */
int message_parse_max(const char *msg, size_t len, const char *delims,
                      size_t max_cal, struct message_facts *f);
void message_facts_free(struct message_facts *f);

/* Find header `name` (case-insensitive) in msg's header section; returns a
 * malloc'd unfolded value or NULL. */
char *message_header(const char *msg, size_t len, const char *name);

#endif
