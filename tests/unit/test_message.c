/* test_message.c - message_parse: headers, RFC 2047, MIME walk and iMIP
 * facts, on the realistic messages in tests/data/mime/ (each also tried
 * with CRLF line ends) and on hostile input built here. Paths are relative
 * to the repo root, or to $UNTILD_SRCDIR. */
#include "untild/message.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

#define DELIMS "+"

static char *load(const char *name, size_t *len)
{
    const char *dir = getenv("UNTILD_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/mime/%s",
             dir && *dir ? dir : ".", name);
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    do {
        if (n + 4096 > cap) {
            cap = cap * 2 + 8192;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        r = fread(buf + n, 1, cap - n - 1, fp);
        n += r;
    } while (r > 0);
    ck_assert_int_eq(ferror(fp), 0);
    fclose(fp);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Same bytes with every bare LF turned into CRLF. */
static char *to_crlf(const char *in, size_t n, size_t *outn)
{
    char *out = malloc(2 * n + 1);
    ck_assert_ptr_nonnull(out);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            out[o++] = '\r';
        out[o++] = in[i];
    }
    out[o] = '\0';
    *outn = o;
    return out;
}

/* Parse a seed file (crlf: converted first), checking that msg is left
 * exactly as it was. Returns the buffer (caller frees). */
static char *parse_file(const char *name, int crlf, struct message_facts *f,
                        size_t *lenp)
{
    size_t len;
    char *msg = load(name, &len);
    if (crlf) {
        char *c = to_crlf(msg, len, &len);
        free(msg);
        msg = c;
    }
    char *copy = malloc(len + 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, msg, len + 1);
    ck_assert_int_eq(message_parse(msg, len, DELIMS, f), 0);
    ck_assert_msg(memcmp(copy, msg, len + 1) == 0, "%s modified", name);
    free(copy);
    if (lenp)
        *lenp = len;
    return msg;
}

static int has_attendee(const struct message_facts *f, const char *a)
{
    for (size_t i = 0; i < f->nattendees; i++)
        if (strcmp(f->attendees[i], a) == 0)
            return 1;
    return 0;
}

static void parse_str(const char *s, struct message_facts *f)
{
    ck_assert_int_eq(message_parse(s, strlen(s), DELIMS, f), 0);
}

START_TEST(test_plain_headers)
{
    for (int crlf = 0; crlf < 2; crlf++) {
        struct message_facts f;
        size_t len;
        char *msg = parse_file("plain.eml", crlf, &f, &len);
        const char *sep = crlf ? "\r\n\r\n" : "\n\n";
        const char *body = strstr(msg, sep);
        ck_assert_ptr_nonnull(body);
        ck_assert_uint_eq(f.header_len, (size_t)(body - msg) + strlen(sep));
        ck_assert_str_eq(f.subject, "Re: Angebot f\xc3\xbcr Q3");
        ck_assert_str_eq(f.message_id, "CAF=abc123@mail.client.example");
        ck_assert_str_eq(f.in_reply_to, "quote-77@vendor.example");
        ck_assert_str_eq(f.references,
                         "<quote-76@vendor.example>\t<quote-77@vendor.example>");
        ck_assert_str_eq(f.from, "jane.customer@client.example");
        ck_assert_str_eq(f.date, "Tue, 24 Jun 2025 10:00:00 +0200");
        ck_assert_int_eq(f.method, IMIP_NONE);
        ck_assert_ptr_null(f.ical_data);
        ck_assert_int_eq(f.ical_errors, 0);
        ck_assert_uint_eq(f.nattendees, 0);

        char *v = message_header(msg, len, "RECEIVED");
        ck_assert_ptr_nonnull(v);
        ck_assert_ptr_nonnull(strstr(v, "[198.51.100.7])\tby mx.vendor.example"));
        ck_assert_int_eq(v[0], 'f');
        free(v);
        ck_assert_ptr_null(message_header(msg, len, "X-Absent"));
        /* a body line is not a header */
        ck_assert_ptr_null(message_header(msg, len, "Gr\xfc\xdf" "e, see you in M\xfcnchen."));
        message_facts_free(&f);
        ck_assert_ptr_null(f.subject);
        free(msg);
    }
}
END_TEST

START_TEST(test_rfc2047_subject)
{
    static const struct { const char *in, *out; } cases[] = {
        { "=?utf-8?q?caf=C3=A9?=", "caf\xc3\xa9" },
        { "=?ISO-8859-1?B?Q2Fm6Q==?=", "Caf\xc3\xa9" },
        { "=?UTF-8?B?Q2Fmw6k?=", "Caf\xc3\xa9" },              /* no padding */
        { "=?KOI8-R?B?8MHS?=", "\xd0\x9f\xd0\xb0\xd1\x80" },     /* any iconv charset */
        { "Hello =?UTF-8?Q?w=C3=B6rld?= !", "Hello w\xc3\xb6rld !" },
        { "=?UTF-8?Q?a?=  =?UTF-8?Q?b?=", "ab" },
        { "=?UTF-8?Q?a?= x =?UTF-8?Q?b?=", "a x b" },
        { "=?UTF-8?X?abc?=", "=?UTF-8?X?abc?=" },
        { "=?UTF-8?Q?abc", "abc" },         /* unterminated: libetpan is lenient */
        { "=?UTF-8?Q?a=0D=0Ab?=", "a  b" },
        { "=?UTF-8*en?Q?hi_there?=", "hi there" },
        { "plain \xe9 8-bit", "plain \xe9 8-bit" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[512];
        struct message_facts f;
        snprintf(msg, sizeof msg, "Subject: %s\r\n\r\nbody\r\n", cases[i].in);
        parse_str(msg, &f);
        ck_assert_msg(f.subject && strcmp(f.subject, cases[i].out) == 0,
                      "case %zu: got '%s'", i, f.subject ? f.subject : "(null)");
        message_facts_free(&f);
    }
    /* folded encoded-words join without the fold's whitespace */
    struct message_facts f;
    char *msg = parse_file("google-ics.eml", 0, &f, NULL);
    ck_assert_str_eq(f.subject, "Invitation: Quote follow-up @ Thu Jul 10, 2025 "
                                "3pm \xe2\x80\x93 3:30pm (CEST)");
    message_facts_free(&f);
    free(msg);
    msg = parse_file("qp-request.eml", 1, &f, NULL);
    ck_assert_str_eq(f.subject, "Caf\xc3\xa9 meeting");
    message_facts_free(&f);
    free(msg);
}
END_TEST

START_TEST(test_outlook_alternative)
{
    for (int crlf = 0; crlf < 2; crlf++) {
        struct message_facts f;
        char *msg = parse_file("outlook-request.eml", crlf, &f, NULL);
        ck_assert_int_eq(f.method, IMIP_REQUEST);
        ck_assert_int_eq(f.ical_errors, 0);
        ck_assert_str_eq(f.from, "sales.rep@vendor.example");
        ck_assert_str_eq(f.message_id,
                         "AM0PR04MB1234ABCD@AM0PR04MB1234.eurprd04.prod.outlook.example");
        ck_assert_str_eq(f.ical_uid,
                         "040000008200E00074C5B7101A82E00800000000D0F1A8B1C2D3DA0100000000"
                         "0000000010000000A1B2C3D4E5F60718293A4B5C6D7E8F90");
        ck_assert_int_eq(f.ical_sequence, 2);
        ck_assert_str_eq(f.organizer, "sales.rep@vendor.example");
        ck_assert_str_eq(f.summary, "Renewal review");
        /* Jane twice (case differs), Bob with MAILTO: and a sub-address */
        ck_assert_uint_eq(f.nattendees, 2);
        ck_assert(has_attendee(&f, "jane.customer@client.example"));
        ck_assert(has_attendee(&f, "bob@client.example"));
        /* 14:00 "W. Europe Standard Time" (VTIMEZONE, summer) = 12:00Z */
        ck_assert_int_eq((long long)f.dtstart, 1751544000LL);
        ck_assert_ptr_nonnull(f.ical_data);
        ck_assert_int_eq(strncmp(f.ical_data, "BEGIN:VCALENDAR\r\n", 17), 0);
        ck_assert_ptr_nonnull(strstr(f.ical_data, "\r\nEND:VCALENDAR\r\n"));
        message_facts_free(&f);
        free(msg);
    }
}
END_TEST

START_TEST(test_google_ics_only)
{
    for (int crlf = 0; crlf < 2; crlf++) {
        struct message_facts f;
        char *msg = parse_file("google-ics.eml", crlf, &f, NULL);
        /* no method= anywhere in the MIME headers: only in the data */
        ck_assert_ptr_null(strstr(msg, "method="));
        ck_assert_int_eq(f.method, IMIP_REQUEST);
        /* libical flags the empty "LOCATION:" Google sends: not an error
         * that changes anything (issue 11.16), the invitation counts */
        ck_assert_int_eq(f.ical_errors, 0);
        ck_assert_int_eq(f.ical_ignored, 1);
        ck_assert_int_eq(f.ical_part, MSG_ICAL_USED);
        ck_assert_str_eq(f.ical_uid, "7kq1b2c3d4e5f6g7h8i9j0abcd@google.com");
        ck_assert_int_eq(f.ical_sequence, 0);
        ck_assert_str_eq(f.organizer, "sales.rep@vendor.example");
        ck_assert_uint_eq(f.nattendees, 2);   /* both folded mid-address */
        ck_assert(has_attendee(&f, "jane.customer@client.example"));
        ck_assert(has_attendee(&f, "sales.rep@vendor.example"));
        ck_assert_int_eq((long long)f.dtstart, 1752152400LL);
        ck_assert_str_eq(f.summary, "Quote follow-up");
        ck_assert_ptr_nonnull(strstr(f.ical_data, "METHOD:REQUEST\r\n"));
        message_facts_free(&f);
        free(msg);
    }
}
END_TEST

START_TEST(test_both_parts)
{
    struct message_facts f;
    char *msg = parse_file("google-both.eml", 0, &f, NULL);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_int_eq(f.ical_errors, 0);
    ck_assert_int_eq(f.ical_ignored, 1);          /* LOCATION:, once */
    ck_assert_uint_eq(f.nattendees, 2);           /* not 4 */
    ck_assert_str_eq(f.ical_uid, "7kq1b2c3d4e5f6g7h8i9j0abcd@google.com");
    /* the first part (7bit, LF in this file) was chosen, not the base64
     * attachment (CRLF inside) */
    ck_assert_ptr_nonnull(f.ical_data);
    ck_assert_ptr_null(strchr(f.ical_data, '\r'));
    message_facts_free(&f);
    free(msg);

    msg = parse_file("google-both.eml", 1, &f, NULL);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_uint_eq(f.nattendees, 2);
    message_facts_free(&f);
    free(msg);

    /* first calendar part garbage: the second one is used */
    parse_str("From: a@vendor.example\n"
              "Content-Type: multipart/mixed; boundary=b\n\n"
              "--b\nContent-Type: text/calendar; method=REQUEST\n\n"
              "this is no calendar\n"
              "--b\nContent-Type: application/ics\nContent-Transfer-Encoding: base64\n\n"
              /* BEGIN:VCALENDAR METHOD:REPLY BEGIN:VEVENT UID:x
               * ATTENDEE:mailto:c@client.example END:VEVENT END:VCALENDAR */
              "QkVHSU46VkNBTEVOREFSDQpNRVRIT0Q6UkVQTFkNCkJFR0lOOlZFVkVOVA0KVUlEOngN\n"
              "CkFUVEVOREVFOm1haWx0bzpjQGNsaWVudC5leGFtcGxlDQpFTkQ6VkVWRU5UDQpFTkQ6\n"
              "VkNBTEVOREFSDQo=\n"
              "--b--\n", &f);
    ck_assert_int_eq(f.method, IMIP_REPLY);
    ck_assert_int_ge(f.ical_errors, 1);
    ck_assert_str_eq(f.ical_uid, "x");
    ck_assert_uint_eq(f.nattendees, 1);
    ck_assert_str_eq(f.attendees[0], "c@client.example");
    message_facts_free(&f);
}
END_TEST

START_TEST(test_reply)
{
    for (int crlf = 0; crlf < 2; crlf++) {
        struct message_facts f;
        char *msg = parse_file("reply.eml", crlf, &f, NULL);
        ck_assert_int_eq(f.method, IMIP_REPLY);
        ck_assert_str_eq(f.from, "jane.customer@client.example");
        ck_assert_str_eq(f.in_reply_to, "000000000000abcdef0123456789@google.com");
        ck_assert_str_eq(f.references, "<000000000000abcdef0123456789@google.com>");
        ck_assert_uint_eq(f.nattendees, 1);
        ck_assert_str_eq(f.attendees[0], "jane.customer@client.example");
        ck_assert_str_eq(f.organizer, "sales.rep@vendor.example");
        ck_assert_str_eq(f.ical_uid, "7kq1b2c3d4e5f6g7h8i9j0abcd@google.com");
        message_facts_free(&f);
        free(msg);
    }
}
END_TEST

START_TEST(test_cancel)
{
    for (int crlf = 0; crlf < 2; crlf++) {
        struct message_facts f;
        char *msg = parse_file("cancel.eml", crlf, &f, NULL);
        /* the whole message is the text/calendar part */
        ck_assert_int_eq(f.method, IMIP_CANCEL);
        ck_assert_int_eq(f.ical_sequence, 3);
        ck_assert_str_eq(f.ical_uid, "cancel-uid-0001@vendor.example");
        ck_assert_str_eq(f.from, "sales.rep@vendor.example");
        ck_assert_int_eq((long long)f.dtstart, 1751544000LL);
        message_facts_free(&f);
        free(msg);
    }
}
END_TEST

START_TEST(test_quoted_printable)
{
    for (int crlf = 0; crlf < 2; crlf++) {
        struct message_facts f;
        char *msg = parse_file("qp-request.eml", crlf, &f, NULL);
        ck_assert_int_eq(f.method, IMIP_REQUEST);
        ck_assert_int_eq(f.ical_errors, 0);
        ck_assert_str_eq(f.summary, "Caf\xc3\xa9 meeting about the quote with a "
                                    "rather long summary line that needs soft breaks");
        ck_assert_uint_eq(f.nattendees, 1);
        ck_assert_str_eq(f.attendees[0], "jane.customer@client.example");
        ck_assert_int_eq(f.ical_sequence, 1);
        ck_assert_int_eq((long long)f.dtstart, 1754038800LL);
        ck_assert_str_eq(f.from, "sales.rep@vendor.example");  /* (comment) */
        ck_assert_ptr_nonnull(strstr(f.ical_data, "ATTENDEE;CN=\"Customer, Jane\";"
                                             "RSVP=TRUE:mailto:jane.customer@client.example"));
        ck_assert_ptr_null(strstr(f.ical_data, "=3D"));
        message_facts_free(&f);
        free(msg);
    }
}
END_TEST

START_TEST(test_method_from_data)
{
    struct message_facts f;
    char *msg = parse_file("method-mismatch.eml", 0, &f, NULL);
    ck_assert_ptr_nonnull(strstr(msg, "method=REQUEST"));
    ck_assert_int_eq(f.method, IMIP_CANCEL);
    ck_assert_int_eq(f.ical_sequence, 4);
    message_facts_free(&f);
    free(msg);

    /* no METHOD in the data: the parameter is used */
    parse_str("Content-Type: text/calendar; Method=\"reply\"\n\n"
              "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:p\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq(f.method, IMIP_REPLY);
    message_facts_free(&f);

    /* neither: a calendar, but not iMIP */
    parse_str("Content-Type: text/calendar\n\n"
              "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:p\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq(f.method, IMIP_NONE);
    ck_assert_str_eq(f.ical_uid, "p");
    message_facts_free(&f);

    parse_str("Content-Type: text/calendar\n\n"
              "BEGIN:VCALENDAR\nMETHOD:PUBLISH\nBEGIN:VEVENT\nUID:p\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq(f.method, IMIP_OTHER);
    message_facts_free(&f);
}
END_TEST

START_TEST(test_malformed_ical)
{
    struct message_facts f;
    char *msg = parse_file("malformed.eml", 0, &f, NULL);
    ck_assert_int_gt(f.ical_errors, 0);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_int_eq((long long)f.dtstart, 0);
    ck_assert_str_eq(f.ical_uid, "malformed-0001@vendor.example");
    message_facts_free(&f);
    free(msg);

    /* garbage: counted, treated as plain mail */
    parse_str("Content-Type: text/calendar; method=REQUEST\n\nnot a calendar\n\x01\x02\n", &f);
    ck_assert_int_ge(f.ical_errors, 1);
    ck_assert_int_eq(f.method, IMIP_NONE);
    ck_assert_ptr_null(f.ical_data);
    message_facts_free(&f);

    /* a VEVENT without a VCALENDAR around it */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VEVENT\nUID:x\nEND:VEVENT\n", &f);
    ck_assert_int_ge(f.ical_errors, 1);
    ck_assert_int_eq(f.method, IMIP_NONE);
    message_facts_free(&f);

    /* truncated base64 (cut inside a quantum, END:VCALENDAR lost) */
    parse_str("Content-Type: application/ics\nContent-Transfer-Encoding: base64\n\n"
              "QkVHSU46VkNBTEVOREFSDQpNRVRIT0Q6UkVQTFkNCkJFR0lOOlZFVkVOVA0KVUlEOngN\nCkFUV", &f);
    ck_assert_int_ge(f.ical_errors, 1);
    ck_assert_int_eq(f.method, IMIP_NONE);
    message_facts_free(&f);

    /* multipart with no end boundary: the last part runs to the end */
    parse_str("Content-Type: multipart/mixed; boundary=\"x y\"\n\n--x y\n"
              "Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:CANCEL\n"
              "BEGIN:VEVENT\nUID:u\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq(f.method, IMIP_CANCEL);
    message_facts_free(&f);

    /* multipart without a boundary parameter, or never used */
    parse_str("Content-Type: multipart/mixed\n\n--\nBEGIN:VCALENDAR\n", &f);
    ck_assert_int_eq(f.method, IMIP_NONE);
    message_facts_free(&f);
    parse_str("Content-Type: multipart/mixed; boundary=zz\n\n--z\n--zzz\n", &f);
    ck_assert_int_eq(f.method, IMIP_NONE);
    message_facts_free(&f);
}
END_TEST

START_TEST(test_degenerate_messages)
{
    struct message_facts f;
    ck_assert_int_eq(message_parse("", 0, DELIMS, &f), 0);
    ck_assert_uint_eq(f.header_len, 0);
    ck_assert_ptr_null(f.subject);
    ck_assert_ptr_null(f.from);
    message_facts_free(&f);
    ck_assert_int_eq(message_parse(NULL, 0, DELIMS, &f), 0);
    message_facts_free(&f);

    /* no header/body separator, no final newline */
    const char *m = "Subject: hi\nFrom: A@B.Example";
    parse_str(m, &f);
    ck_assert_uint_eq(f.header_len, strlen(m));
    ck_assert_str_eq(f.subject, "hi");
    ck_assert_str_eq(f.from, "a@b.example");
    message_facts_free(&f);

    /* NUL bytes in a header and in a calendar part */
    static const char nul[] = "Subject: a\0b\nContent-Type: text/calendar\n\n"
                              "BEGIN:VCALENDAR\nMETHOD:REQUEST\n\0BEGIN:VEVENT\n";
    ck_assert_int_eq(message_parse(nul, sizeof nul - 1, DELIMS, &f), 0);
    ck_assert_str_eq(f.subject, "ab");
    ck_assert_int_ge(f.ical_errors, 1);
    message_facts_free(&f);

    /* only a blank line */
    parse_str("\r\n", &f);
    ck_assert_uint_eq(f.header_len, 2);
    message_facts_free(&f);

    /* a first line GMime would not take for a field (it then refuses the
     * whole message): left out, the fields after it still count */
    static const char *firsts[] = { "bad name: x\n", ":x\n", "\x01\x02: z\n", "no colon\n" };
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        char m2[256];
        snprintf(m2, sizeof m2, "%sSubject: y\nFrom: a@b.example\n\nbody\n", firsts[i]);
        parse_str(m2, &f);
        ck_assert_msg(f.subject && strcmp(f.subject, "y") == 0, "first line %zu", i);
        ck_assert_str_eq(f.from, "a@b.example");
        message_facts_free(&f);
    }

    /* continuation line before any field; header with "Name :" */
    parse_str(" stray\nSubject : spaced\nMessage-ID: <>\nIn-Reply-To: bare@id\n\nx", &f);
    ck_assert_str_eq(f.subject, "spaced");
    ck_assert_ptr_null(f.message_id);
    ck_assert_str_eq(f.in_reply_to, "bare@id");
    message_facts_free(&f);
}
END_TEST

START_TEST(test_from_forms)
{
    static const struct { const char *in, *out; } cases[] = {
        { "\"Doe, Jane\" <Jane@X.Example>", "jane@x.example" },
        { "Doe, Jane <jane+tag@x.example>", "jane@x.example" },
        { "jane@x.example (Jane, Doe)", "jane@x.example" },
        { "\"a <b@c.example>\" <real@x.example>", "real@x.example" },
        { "=?UTF-8?Q?J=C3=A4ne?= <jane@x.example>, other@y.example", "jane@x.example" },
        { "<jane@x.example> (comment <fake@y.example>)", "jane@x.example" },
        { "undisclosed-recipients:;", NULL },
        { "", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[512];
        struct message_facts f;
        snprintf(msg, sizeof msg, "From: %s\n\n", cases[i].in);
        parse_str(msg, &f);
        if (cases[i].out)
            ck_assert_msg(f.from && strcmp(f.from, cases[i].out) == 0,
                          "case %zu: got '%s'", i, f.from ? f.from : "(null)");
        else
            ck_assert_msg(f.from == NULL, "case %zu: got '%s'", i, f.from);
        message_facts_free(&f);
    }
}
END_TEST

/* A calendar part inside `levels` nested multiparts. */
static char *nested(int levels)
{
    size_t cap = (size_t)levels * 120 + 512, o = 0;
    char *m = malloc(cap);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < levels; i++)
        o += (size_t)snprintf(m + o, cap - o, "%sContent-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n",
                              i ? "" : "Subject: deep\n", i, i);
    o += (size_t)snprintf(m + o, cap - o, "Content-Type: text/calendar\n\nBEGIN:VCALENDAR\n"
                          "METHOD:REQUEST\nBEGIN:VEVENT\nUID:deep\nEND:VEVENT\nEND:VCALENDAR\n");
    for (int i = levels - 1; i >= 0; i--)
        o += (size_t)snprintf(m + o, cap - o, "--b%d--\n", i);
    ck_assert_uint_lt(o, cap);
    return m;
}

START_TEST(test_nesting_bound)
{
    static const struct { int levels; enum imip_method want; } cases[] = {
        { 1, IMIP_REQUEST }, { 10, IMIP_REQUEST }, { 11, IMIP_NONE },
        { 5000, IMIP_NONE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct message_facts f;
        char *m = nested(cases[i].levels);
        parse_str(m, &f);
        ck_assert_msg(f.method == cases[i].want, "levels %d: method %d",
                      cases[i].levels, f.method);
        ck_assert_str_eq(f.subject, "deep");
        message_facts_free(&f);
        free(m);
    }
}
END_TEST

static char *many_parts(int before, int after)
{
    size_t cap = (size_t)(before + after) * 64 + 512, o = 0;
    char *m = malloc(cap);
    ck_assert_ptr_nonnull(m);
    o += (size_t)snprintf(m + o, cap - o, "Content-Type: multipart/mixed; boundary=p\n\n");
    for (int i = 0; i < before; i++)
        o += (size_t)snprintf(m + o, cap - o, "--p\nContent-Type: text/plain\n\npart %d\n", i);
    o += (size_t)snprintf(m + o, cap - o, "--p\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\n"
                          "METHOD:REQUEST\nBEGIN:VEVENT\nUID:many\nEND:VEVENT\nEND:VCALENDAR\n");
    for (int i = 0; i < after; i++)
        o += (size_t)snprintf(m + o, cap - o, "--p\nContent-Type: text/plain\n\npart %d\n", i);
    o += (size_t)snprintf(m + o, cap - o, "--p--\n");
    ck_assert_uint_lt(o, cap);
    return m;
}

START_TEST(test_part_bound)
{
    struct message_facts f;
    char *m = many_parts(1, 1000);
    parse_str(m, &f);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    message_facts_free(&f);
    free(m);
    m = many_parts(197, 0);          /* message + 197 + calendar = 199 */
    parse_str(m, &f);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    message_facts_free(&f);
    free(m);
    m = many_parts(250, 0);
    parse_str(m, &f);
    ck_assert_int_eq(f.method, IMIP_NONE);
    message_facts_free(&f);
    free(m);
}
END_TEST

START_TEST(test_timezones)
{
    struct message_facts f;
    char *msg = parse_file("berlin.eml", 0, &f, NULL);
    /* 09:30 Europe/Berlin in January (CET, +01:00) = 08:30Z */
    ck_assert_int_eq((long long)f.dtstart, 1736929800LL);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    message_facts_free(&f);
    free(msg);

    /* octet-stream named *.ICS (RFC 2231 filename), base64 without
     * padding, DATE start = midnight UTC */
    msg = parse_file("octet-ics.eml", 1, &f, NULL);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_str_eq(f.summary, "All-day workshop");
    ck_assert_int_eq((long long)f.dtstart, 1757030400LL);
    message_facts_free(&f);
    free(msg);

    /* floating time = UTC; unknown TZID = UTC */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:f\n"
              "DTSTART:20250115T093000\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq((long long)f.dtstart, 1736933400LL);
    message_facts_free(&f);
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:f\n"
              "DTSTART;TZID=Nowhere/Atlantis:20250115T093000\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq((long long)f.dtstart, 1736933400LL);
    message_facts_free(&f);
    /* a DATE is midnight UTC even with a TZID */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:f\n"
              "DTSTART;VALUE=DATE;TZID=Europe/Berlin:20250905\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq((long long)f.dtstart, 1757030400LL);
    message_facts_free(&f);
    /* VTODO when there is no VEVENT */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VTODO\n"
              "UID:t\nSUMMARY:Todo\nDTSTART:20250115T093000Z\nEND:VTODO\nEND:VCALENDAR\n", &f);
    ck_assert_str_eq(f.summary, "Todo");
    ck_assert_int_eq((long long)f.dtstart, 1736933400LL);
    message_facts_free(&f);
}
END_TEST

START_TEST(test_8bit_untouched)
{
    static const char *files[] = {
        "plain.eml", "outlook-request.eml", "google-ics.eml", "google-both.eml",
        "reply.eml", "cancel.eml", "qp-request.eml", "method-mismatch.eml",
        "malformed.eml", "berlin.eml", "octet-ics.eml", "hostile-tz.eml",
        "exchange-recurring.eml", "google-occurrence-cancel.eml", "thunderbird-recurring.eml",
        "apple-request.eml",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        for (int crlf = 0; crlf < 2; crlf++) {
            struct message_facts f;
            /* parse_file asserts the buffer is byte-identical afterwards */
            char *msg = parse_file(files[i], crlf, &f, NULL);
            message_facts_free(&f);
            free(msg);
        }
    size_t len;
    struct message_facts f;
    char *msg = parse_file("plain.eml", 0, &f, &len);
    ck_assert_ptr_nonnull(memmem(msg, len, "Gr\xfc\xdf" "e, see you in M\xfcnchen.\n", 27));
    message_facts_free(&f);
    free(msg);
}
END_TEST

START_TEST(test_header_bounds)
{
    struct message_facts f;
    size_t n = 70 * 1024;
    char *m = malloc(n + 128);
    ck_assert_ptr_nonnull(m);
    size_t o = (size_t)sprintf(m, "Subject: x\nX-Long: ");
    size_t long_at = 11;
    memset(m + o, 'A', n);
    o += n;
    o += (size_t)sprintf(m + o, "\nFrom: a@b.example\n\nbody\n");
    ck_assert_int_eq(message_parse(m, o, DELIMS, &f), 0);
    ck_assert_uint_eq(f.header_len, long_at);
    ck_assert_str_eq(f.subject, "x");
    ck_assert_ptr_null(f.from);                  /* after the end of headers */
    message_facts_free(&f);
    free(m);

    /* a section over 1 MiB of (short) lines */
    size_t lines = 12000, cap = lines * 100 + 128;
    m = malloc(cap);
    ck_assert_ptr_nonnull(m);
    o = (size_t)sprintf(m, "Subject: big\n");
    for (size_t i = 0; i < lines; i++) {
        o += (size_t)sprintf(m + o, "X-Filler-%05zu: ", i);
        memset(m + o, 'b', 80);
        o += 80;
        m[o++] = '\n';
    }
    o += (size_t)sprintf(m + o, "From: a@b.example\n\nbody\n");
    ck_assert_int_eq(message_parse(m, o, DELIMS, &f), 0);
    ck_assert_uint_le(f.header_len, 1024 * 1024);
    ck_assert_uint_gt(f.header_len, 1000 * 1000);
    ck_assert_str_eq(f.subject, "big");
    ck_assert_ptr_null(f.from);
    message_facts_free(&f);
    free(m);
}
END_TEST

/* Seconds of CLOCK_MONOTONIC since t0 (bounded-work tests). */

/* Issue 18.1: a VTIMEZONE in the message with FREQ=MINUTELY observances
 * made libical expand every minute up to 2037 when DTSTART was converted
 * (minutes of CPU, gigabytes). Now: read without expansion, in no time. */
START_TEST(test_hostile_vtimezone)
{
    struct message_facts f;
    char *msg = parse_file("hostile-tz.eml", 0, &f, NULL);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_str_eq(f.ical_uid, "hostile-0001@vendor.example");
    /* 09:30 at the zone's +01:00 */
    ck_assert_int_eq((long long)f.dtstart, 1817109000LL);
    ck_assert_int_eq((long long)f.ical_last, 1817109000LL);
    message_facts_free(&f);
    free(msg);

    /* HOURLY, and a rule that never matches, in the event and the zone */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:REQUEST\n"
              "BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:16010101T000000\n"
              "RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30\nTZOFFSETFROM:+0000\n"
              "TZOFFSETTO:-0500\nEND:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:19700101T000000\n"
              "RRULE:FREQ=HOURLY\nTZOFFSETFROM:-0500\nTZOFFSETTO:-0400\nEND:DAYLIGHT\n"
              "END:VTIMEZONE\nBEGIN:VEVENT\nUID:h\nDTSTART;TZID=X:20270801T093000\n"
              "RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=29;COUNT=3\n"
              "RDATE;TZID=X:20270901T093000\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    /* the DAYLIGHT onset (1970) is the latest one before August 2027 */
    ck_assert_int_eq((long long)f.dtstart, 1817109000LL + 5 * 3600);
    ck_assert_int_eq((long long)f.ical_last, (long long)IMIP_OPEN_ENDED);
    message_facts_free(&f);

    /* COUNT rules: a rare one (once in 28 years) is not followed; the
     * densest ones allowed, at the step cap, are cheap */
    static const char *const rules[] = {
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;COUNT=900",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;COUNT=900",
        "FREQ=DAILY;BYDAY=MO;COUNT=1000",
        "FREQ=MONTHLY;BYDAY=-4SU;COUNT=1000",
        "FREQ=MONTHLY;BYMONTHDAY=28;COUNT=1000",
        "FREQ=YEARLY;BYMONTH=2,3;BYDAY=MO;COUNT=1000",
        "FREQ=WEEKLY;BYDAY=MO,TU;BYHOUR=1,2,3;COUNT=1000",
    };
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nBEGIN:VEVENT\n"
                 "UID:d\nDTSTART:20270801T093000Z\nRRULE:%s\nEND:VEVENT\nEND:VCALENDAR\n", rules[i]);
        parse_str(buf, &f);
        ck_assert_int_ne((long long)f.ical_last, 0);
        message_facts_free(&f);
    }
    /* many events, each with a rule at the step cap: one budget for all */
    size_t cap = 600 * 1024, o = 0;
    char *big = malloc(cap);
    ck_assert_ptr_nonnull(big);
    o += (size_t)snprintf(big, cap, "Content-Type: text/calendar\n\nBEGIN:VCALENDAR\n");
    for (int i = 0; i < 1000 && o + 200 < cap; i++)
        o += (size_t)snprintf(big + o, cap - o, "BEGIN:VEVENT\nUID:m\nRECURRENCE-ID:2027%04dT0900Z\n"
                              "DTSTART:20270801T093000Z\nRRULE:FREQ=DAILY;COUNT=1000\nEND:VEVENT\n",
                              i + 101);
    o += (size_t)snprintf(big + o, cap - o, "END:VCALENDAR\n");
    ck_assert_int_eq(message_parse(big, o, DELIMS, &f), 0);
    ck_assert_int_eq((long long)f.ical_last, (long long)IMIP_OPEN_ENDED);
    message_facts_free(&f);
    free(big);
}
END_TEST

/* Exchange writes Windows zone names with their own VTIMEZONE: read its
 * yearly rules (last Sunday of March / October) without libical. */
START_TEST(test_exchange_vtimezone)
{
    struct message_facts f;
    char *msg = parse_file("exchange-recurring.eml", 1, &f, NULL);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    /* 10:00 W. Europe in July = CEST, +02:00 */
    ck_assert_int_eq((long long)f.dtstart, 1751356800LL);
    /* every Tuesday, no end */
    ck_assert_int_eq((long long)f.ical_last, (long long)IMIP_OPEN_ENDED);
    ck_assert_ptr_null(f.ical_recurrence_id);
    /* DESCRIPTION;LANGUAGE=en-US: and LOCATION;LANGUAGE=en-US: are empty */
    ck_assert_int_eq(f.ical_errors, 0);
    ck_assert_int_eq(f.ical_ignored, 2);
    ck_assert(has_attendee(&f, "jane.customer@client.example"));
    message_facts_free(&f);
    free(msg);

    static const struct { const char *at; long long want; } cases[] = {
        { "20250107T100000", 1736240400LL },    /* January: +01:00 */
        { "20250330T010000", 1743292800LL },    /* before 02:00 on 30 March */
        { "20250330T040000", 1743300000LL },    /* after: +02:00 */
        { "20251026T040000", 1761447600LL },    /* after 03:00 on 26 October */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[2048];
        snprintf(buf, sizeof buf, "Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:REQUEST\n"
                 "BEGIN:VTIMEZONE\nTZID:W. Europe Standard Time\nBEGIN:STANDARD\n"
                 "DTSTART:16010101T030000\nTZOFFSETFROM:+0200\nTZOFFSETTO:+0100\n"
                 "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\nEND:STANDARD\n"
                 "BEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\n"
                 "RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\nEND:DAYLIGHT\nEND:VTIMEZONE\n"
                 "BEGIN:VEVENT\nUID:x\nDTSTART;TZID=W. Europe Standard Time:%s\nEND:VEVENT\n"
                 "END:VCALENDAR\n", cases[i].at);
        parse_str(buf, &f);
        ck_assert_msg((long long)f.dtstart == cases[i].want, "%s: %lld", cases[i].at,
                      (long long)f.dtstart);
        message_facts_free(&f);
    }
    /* US rules: second Sunday of March, first Sunday of November */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nBEGIN:VTIMEZONE\n"
              "TZID:Eastern Standard Time\nBEGIN:STANDARD\nDTSTART:16010101T020000\n"
              "TZOFFSETFROM:-0400\nTZOFFSETTO:-0500\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\n"
              "END:STANDARD\nBEGIN:DAYLIGHT\nDTSTART:16010101T020000\nTZOFFSETFROM:-0500\n"
              "TZOFFSETTO:-0400\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\nEND:DAYLIGHT\n"
              "END:VTIMEZONE\nBEGIN:VEVENT\nUID:x\n"
              "DTSTART;TZID=Eastern Standard Time:20250310T090000\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq((long long)f.dtstart, 1741611600LL);   /* 13:00Z: EDT */
    message_facts_free(&f);
}
END_TEST

/* Issue 11.16: empty properties are routine (Google, Outlook, Teams):
 * not counted as errors; an error in what untild decides on still is. */
START_TEST(test_empty_properties_not_errors)
{
    struct message_facts f;
    /* Teams: empty LOCATION and DESCRIPTION, X-MICROSOFT-* noise */
    parse_str("Content-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR\n"
              "METHOD:REQUEST\nPRODID:Microsoft Exchange Server 2010\nVERSION:2.0\n"
              "BEGIN:VEVENT\nUID:teams-1\nSUMMARY;LANGUAGE=en-US:Call\nLOCATION;LANGUAGE=en-US:\n"
              "DESCRIPTION;LANGUAGE=en-US:\nDTSTART:20270801T090000Z\n"
              "ORGANIZER:mailto:a@vendor.example\nATTENDEE:mailto:j@client.example\n"
              "X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.example/l/x\n"
              "END:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq(f.ical_part, MSG_ICAL_USED);
    ck_assert_int_eq(f.ical_errors, 0);
    ck_assert_int_eq(f.ical_ignored, 2);
    message_facts_free(&f);

    /* an unreadable DTSTART does change a decision (staleness) */
    struct message_facts g;
    char *msg = parse_file("malformed.eml", 0, &g, NULL);
    ck_assert_int_ge(g.ical_errors, 1);
    ck_assert_str_eq(g.ical_error_prop, "DTSTART");
    ck_assert_int_eq(g.ical_part, MSG_ICAL_USED);
    message_facts_free(&g);
    free(msg);

    /* not iCalendar at all */
    parse_str("Content-Type: text/calendar\n\nnot a calendar\n", &f);
    ck_assert_int_eq(f.ical_part, MSG_ICAL_UNUSABLE);
    ck_assert_int_eq(f.ical_errors, 1);
    message_facts_free(&f);
}
END_TEST

/* Issue 18.2: a calendar part over the cap is not parsed: plain mail. */
START_TEST(test_calendar_cap)
{
    const char *head = "From: a@vendor.example\nContent-Type: multipart/mixed; boundary=b\n\n"
                       "--b\nContent-Type: text/calendar; method=REPLY\n\nBEGIN:VCALENDAR\n"
                       "METHOD:REPLY\nBEGIN:VEVENT\nUID:big\nORGANIZER:mailto:j@client.example\n";
    size_t fill = 3u * 1024 * 1024, hl = strlen(head);
    char *m = malloc(hl + fill + 200);
    ck_assert_ptr_nonnull(m);
    memcpy(m, head, hl);
    size_t o = hl;
    while (o < hl + fill)
        o += (size_t)sprintf(m + o, "X-PAD:%070d\n", 0);
    o += (size_t)sprintf(m + o, "END:VEVENT\nEND:VCALENDAR\n--b--\n");
    struct message_facts f;
    ck_assert_int_eq(message_parse(m, o, DELIMS, &f), 0);      /* default 1 MiB */
    ck_assert_int_eq(f.ical_part, MSG_ICAL_TOO_LARGE);
    ck_assert_int_eq(f.method, IMIP_NONE);
    ck_assert_ptr_null(f.ical_uid);
    ck_assert_ptr_null(f.ical_data);
    ck_assert_uint_gt(f.ical_size, 3u * 1024 * 1024);
    message_facts_free(&f);
    /* a larger cap lets it through */
    ck_assert_int_eq(message_parse_max(m, o, DELIMS, 8u * 1024 * 1024, &f), 0);
    ck_assert_int_eq(f.ical_part, MSG_ICAL_USED);
    ck_assert_int_eq(f.method, IMIP_REPLY);
    message_facts_free(&f);
    /* a small cap also counts the parts before the one used */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:CANCEL\nBEGIN:VEVENT\n"
              "UID:s\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_int_eq(f.method, IMIP_CANCEL);
    message_facts_free(&f);
    const char *small = "Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:CANCEL\n"
                        "BEGIN:VEVENT\nUID:s\nEND:VEVENT\nEND:VCALENDAR\n";
    ck_assert_int_eq(message_parse_max(small, strlen(small), DELIMS, 20, &f), 0);
    ck_assert_int_eq(f.ical_part, MSG_ICAL_TOO_LARGE);
    ck_assert_int_eq(f.method, IMIP_NONE);
    message_facts_free(&f);
    free(m);
}
END_TEST

/* Issue 11.14: a message about one occurrence carries its RECURRENCE-ID,
 * as the same UTC key whatever the zone form. */
START_TEST(test_recurrence_id)
{
    struct message_facts f;
    char *msg = parse_file("google-occurrence-cancel.eml", 1, &f, NULL);
    ck_assert_int_eq(f.method, IMIP_CANCEL);
    ck_assert_str_eq(f.ical_uid, "5h3j2k1l0m9n8b7v6c5x4z3a2s@google.com");
    ck_assert_str_eq(f.ical_recurrence_id, "20270803T070000Z");
    ck_assert_int_eq((long long)f.dtstart, 1817276400LL);
    ck_assert_int_eq(f.ical_errors, 0);     /* DESCRIPTION:, LOCATION: */
    ck_assert_int_eq(f.ical_ignored, 2);
    message_facts_free(&f);
    free(msg);
    /* the same occurrence in UTC (Outlook writes it so) */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\n"
              "UID:5h3j2k1l0m9n8b7v6c5x4z3a2s@google.com\nRECURRENCE-ID:20270803T070000Z\n"
              "DTSTART:20270803T080000Z\nEND:VEVENT\nEND:VCALENDAR\n", &f);
    ck_assert_str_eq(f.ical_recurrence_id, "20270803T070000Z");
    message_facts_free(&f);
    /* a series with an override: about the series */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\n"
              "UID:s\nRECURRENCE-ID:20270803T070000Z\nDTSTART:20270803T080000Z\nEND:VEVENT\n"
              "BEGIN:VEVENT\nUID:s\nDTSTART:20270801T070000Z\nRRULE:FREQ=DAILY\nEND:VEVENT\n"
              "END:VCALENDAR\n", &f);
    ck_assert_ptr_null(f.ical_recurrence_id);
    ck_assert_int_eq((long long)f.dtstart, 1817103600LL);
    message_facts_free(&f);
    /* a DATE occurrence */
    parse_str("Content-Type: text/calendar\n\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:d\n"
              "RECURRENCE-ID;VALUE=DATE:20270803\nDTSTART;VALUE=DATE:20270803\nEND:VEVENT\n"
              "END:VCALENDAR\n", &f);
    ck_assert_str_eq(f.ical_recurrence_id, "20270803");
    message_facts_free(&f);
}
END_TEST

/* Issue 11.15: the start of the last occurrence, or open-ended. */
START_TEST(test_last_occurrence)
{
    struct message_facts f;
    char *msg = parse_file("thunderbird-recurring.eml", 0, &f, NULL);
    ck_assert_int_eq((long long)f.dtstart, 1814788800LL);     /* 14:00 CEST */
    ck_assert_int_eq((long long)f.ical_last, 1815134400LL);   /* 5th day */
    message_facts_free(&f);
    free(msg);
    msg = parse_file("google-ics.eml", 0, &f, NULL);           /* single event */
    ck_assert_int_eq((long long)f.ical_last, (long long)f.dtstart);
    message_facts_free(&f);
    free(msg);
    static const struct { const char *rule; long long want; } cases[] = {
        { "RRULE:FREQ=WEEKLY;BYDAY=MO", (long long)IMIP_OPEN_ENDED },
        { "RRULE:FREQ=WEEKLY;UNTIL=20271231T235959Z", 1830297599LL },
        { "RRULE:FREQ=MONTHLY;COUNT=3", 1822381200LL },         /* 2027-10-01 */
        { "RRULE:FREQ=HOURLY;COUNT=3", 1817110800LL + 7200 },
        { "RRULE:FREQ=MINUTELY;BYHOUR=9;COUNT=3", (long long)IMIP_OPEN_ENDED },
        { "RRULE:FREQ=DAILY;COUNT=2\nRDATE:20280101T090000Z", 1830330000LL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, "Content-Type: text/calendar\n\nBEGIN:VCALENDAR\n"
                 "METHOD:REQUEST\nBEGIN:VEVENT\nUID:r\nDTSTART:20270801T090000Z\n%s\n"
                 "END:VEVENT\nEND:VCALENDAR\n", cases[i].rule);
        parse_str(buf, &f);
        ck_assert_msg((long long)f.ical_last == cases[i].want, "%s: %lld", cases[i].rule,
                      (long long)f.ical_last);
        message_facts_free(&f);
    }
}
END_TEST

/* Apple Mail / macOS Calendar: the invitation as a quoted-printable
 * text/calendar attachment (soft line breaks mid-address), parameters on
 * folded lines, a comment with quoted parentheses in Mime-Version. */
START_TEST(test_apple_request)
{
    for (int crlf = 0; crlf < 2; crlf++) {
        struct message_facts f;
        char *msg = parse_file("apple-request.eml", crlf, &f, NULL);
        ck_assert_str_eq(f.subject, "Invitation: Kick-off \xe2\x80\x93 Q3");
        ck_assert_str_eq(f.from, "sales.rep@vendor.example");
        ck_assert_str_eq(f.message_id, "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF@vendor.example");
        ck_assert_int_eq(f.method, IMIP_REQUEST);
        ck_assert_int_eq(f.ical_part, MSG_ICAL_USED);
        ck_assert_int_eq(f.ical_errors, 0);
        ck_assert_str_eq(f.ical_uid, "5C0D9A1E-7B3F-4E2A-A1C4-D8E9F0A1B2C3");
        ck_assert_str_eq(f.organizer, "sales.rep@vendor.example");
        ck_assert_uint_eq(f.nattendees, 2);
        ck_assert(has_attendee(&f, "jane.customer@client.example"));
        ck_assert_str_eq(f.summary, "Kick-off \xe2\x80\x93 Q3");
        ck_assert_int_eq((long long)f.dtstart, 1751356800LL);   /* 10:00 CEST */
        message_facts_free(&f);
        free(msg);
    }
}
END_TEST

/* Issue 15: encoded words in the charsets of real mail come out as UTF-8
 * (libetpan's decoder through iconv), also when each word is padded on its
 * own (Debian 12's GMime 3.2.13 loses the second word there). */
START_TEST(test_charset_subjects)
{
    static const struct { const char *in, *out; } cases[] = {
        { "=?windows-1252?B?QW5nZWJvdCCWIIRQcmVpc5MgNTAggA==?=",
          "Angebot \xe2\x80\x93 \xe2\x80\x9ePreis\xe2\x80\x9c 50 \xe2\x82\xac" },
        { "=?ISO-8859-15?Q?Prix:_50_=A4_=BDuvre?=", "Prix: 50 \xe2\x82\xac \xc5\x93uvre" },
        { "=?ISO-2022-JP?B?GyRCMnE1RCROPjdCVD51GyhC?=",
          "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae\xe6\x8b\x9b\xe5\xbe\x85\xe7\x8a\xb6" },
        { "=?Shift_JIS?B?ie+LY4LMj7WR0o/z?=",
          "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae\xe6\x8b\x9b\xe5\xbe\x85\xe7\x8a\xb6" },
        { "=?GB2312?B?u+HS6dH7x+s=?=", "\xe4\xbc\x9a\xe8\xae\xae\xe9\x82\x80\xe8\xaf\xb7" },
        { "=?KOI8-R?B?8NLJx8zB28XOycUgzsEg19PU0sXe1Q==?=",
          "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb3\xd0\xbb\xd0\xb0\xd1\x88\xd0\xb5\xd0\xbd\xd0\xb8\xd0\xb5 "
          "\xd0\xbd\xd0\xb0 \xd0\xb2\xd1\x81\xd1\x82\xd1\x80\xd0\xb5\xd1\x87\xd1\x83" },
        { "=?UTF-8?B?SGVsbG8=?=\r\n =?UTF-8?B?IHdvcmxk?=", "Hello world" },
        { "Re: =?iso-8859-15?q?=A4?= =?koi8-r?b?8MHS?=", "Re: \xe2\x82\xac\xd0\x9f\xd0\xb0\xd1\x80" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[512];
        struct message_facts f;
        snprintf(msg, sizeof msg, "Subject: %s\r\nFrom: %s <Rep@Vendor.Example>\r\n\r\nbody\r\n",
                 cases[i].in, cases[i].in);
        parse_str(msg, &f);
        ck_assert_msg(f.subject && strcmp(f.subject, cases[i].out) == 0,
                      "case %zu: got '%s'", i, f.subject ? f.subject : "(null)");
        ck_assert_msg(f.from && strcmp(f.from, "rep@vendor.example") == 0,
                      "case %zu: from '%s'", i, f.from ? f.from : "(null)");
        message_facts_free(&f);
    }
}
END_TEST

/* A calendar part in an 8-bit charset is converted to UTF-8 (GMime's
 * charset filter), whatever its transfer encoding. */
START_TEST(test_calendar_charset)
{
    static const struct { const char *cs, *cte, *summary, *out; } cases[] = {
        { "windows-1252", "8bit", "50 \x80 \x93ok\x94", "50 \xe2\x82\xac \xe2\x80\x9cok\xe2\x80\x9d" },
        { "iso-8859-15", "quoted-printable", "50 =A4", "50 \xe2\x82\xac" },
        { "koi8-r", "base64", "8MHS", "\xd0\x9f\xd0\xb0\xd1\x80" },   /* the whole body, below */
        { "x-no-such-charset", "8bit", "caf\xc3\xa9", "caf\xc3\xa9" },
    };
    /* an empty calendar part (found by fuzz_message under UBSan) */
    struct message_facts e;
    parse_str("Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: text/calendar\n\n--m--\n", &e);
    ck_assert_int_eq(e.ical_part, MSG_ICAL_UNUSABLE);
    message_facts_free(&e);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[1024], body[512];
        struct message_facts f;
        snprintf(body, sizeof body, "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:cs\r\n"
                 "SUMMARY:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", cases[i].summary);
        if (strcmp(cases[i].cte, "base64") == 0)    /* SUMMARY:\xf0\xc1\xd2 in KOI8-R */
            snprintf(body, sizeof body, "QkVHSU46VkNBTEVOREFSDQpNRVRIT0Q6UkVRVUVTVA0KQkVHSU46VkVWRU5UDQpV\r\n"
                     "SUQ6Y3MNClNVTU1BUlk68MHSDQpFTkQ6VkVWRU5UDQpFTkQ6VkNBTEVOREFSDQo=\r\n");
        snprintf(msg, sizeof msg, "Subject: cs\r\nContent-Type: text/calendar; charset=%s\r\n"
                 "Content-Transfer-Encoding: %s\r\n\r\n%s", cases[i].cs, cases[i].cte, body);
        parse_str(msg, &f);
        ck_assert_int_eq(f.method, IMIP_REQUEST);
        ck_assert_msg(f.summary && strcmp(f.summary, cases[i].out) == 0,
                      "case %zu: got '%s'", i, f.summary ? f.summary : "(null)");
        message_facts_free(&f);
    }
}
END_TEST

/* Budgets below are for a plain -O2 build; sanitizers and valgrind run
 * the same code much slower, with allocators of their own (0: memory is
 * not measured then). */
static double slow(int *mem_measured)
{
    double f = 1;
    *mem_measured = 1;
#if defined(__SANITIZE_ADDRESS__)
    f = 5;
    *mem_measured = 0;
#endif
#if defined(RUNNING_ON_VALGRIND)
    if (RUNNING_ON_VALGRIND) {
        f *= 80;
        *mem_measured = 0;
    }
#endif
    return f;
}

#define CAL_MIN "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:min\nEND:VEVENT\nEND:VCALENDAR\n"

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Header floods: GMime keeps every field it is shown, so 1 MiB of tiny
 * header lines, or 20 MB of them in one part's header section, must not
 * reach it whole. Lines after a "-- " signature are part of a text part
 * and may be left out; the calendar after them is still found. */
START_TEST(test_hostile_headers_bounded)
{
    struct message_facts f;
    int mem;
    (void)slow(&mem);    /* speed is the bench's (mime_compare), memory is checked here */
    size_t cap = (20u << 20) + 4096, o;
    char *m = malloc(cap);
    ck_assert_ptr_nonnull(m);

    o = (size_t)sprintf(m, "Subject: flood\n");
    while (o < (1u << 20) - 64)
        o += (size_t)sprintf(m + o, "X-A: b\n");
    o += (size_t)sprintf(m + o, "\nbody\n");
    ck_assert_int_eq(message_parse(m, o, DELIMS, &f), 0);
    ck_assert_str_eq(f.subject, "flood");
    message_facts_free(&f);

    o = (size_t)sprintf(m, "Subject: part flood\nContent-Type: multipart/mixed; boundary=p\n\n"
                           "--p\nContent-Type: text/calendar\n\n" CAL_MIN "--p\n");
    while (o < (20u << 20) - 64)
        o += (size_t)sprintf(m + o, "X-A: b\n");
    o += (size_t)sprintf(m + o, "\nbody\n--p--\n");
    long before = maxrss_kb();
    ck_assert_int_eq(message_parse(m, o, DELIMS, &f), 0);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_msg(!mem || maxrss_kb() - before < (long)(3 * o / 1024), "%ld KiB", maxrss_kb() - before);
    message_facts_free(&f);

    o = (size_t)sprintf(m, "Content-Type: multipart/mixed; boundary=p\n\n--p\nContent-Type: text/plain\n\n"
                           "Regards,\n-- \n");
    for (int i = 0; i < 3000; i++)
        o += (size_t)sprintf(m + o, "signature line %d\n", i);
    o += (size_t)sprintf(m + o, "--p\nContent-Type: text/calendar\n\n" CAL_MIN "--p--\n");
    ck_assert_int_eq(message_parse(m, o, DELIMS, &f), 0);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_str_eq(f.ical_uid, "min");
    message_facts_free(&f);
    free(m);
}
END_TEST

/* Hostile MIME past the bounds costs little: 20 MB of parts, 100,000
 * nested multiparts, deep nesting around 20 MB of text. Time and peak
 * memory (this test runs in its own process) stay bounded. */
START_TEST(test_hostile_mime_bounded)
{
    struct message_facts f;
    char *m = many_parts(0, 200000);             /* the calendar first */
    int mem;
    (void)slow(&mem);    /* speed is the bench's (mime_compare), memory is checked here */
    long before = maxrss_kb();
    size_t len = strlen(m);
    parse_str(m, &f);
    ck_assert_int_eq(f.method, IMIP_REQUEST);
    ck_assert_msg(!mem || maxrss_kb() - before < (long)(3 * len / 1024),
                  "200,000 parts (%zu KiB): %ld KiB", len / 1024, maxrss_kb() - before);
    message_facts_free(&f);
    free(m);

    m = nested(100000);
    parse_str(m, &f);
    ck_assert_int_eq(f.method, IMIP_NONE);
    ck_assert_str_eq(f.subject, "deep");
    message_facts_free(&f);
    free(m);

    /* 1000 levels around 20 MB of text: linear, not depth x size */
    size_t text = 20u << 20, cap = text + 1000 * 80 + 512, o = 0;
    m = malloc(cap);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < 1000; i++)
        o += (size_t)snprintf(m + o, cap - o, "Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n", i, i);
    o += (size_t)snprintf(m + o, cap - o, "Content-Type: text/plain\n\n");
    for (size_t k = 0; k + 64 < text; k += 64) {
        memset(m + o, 'x', 63);
        m[o + 63] = '\n';
        o += 64;
    }
    for (int i = 999; i >= 0; i--)
        o += (size_t)snprintf(m + o, cap - o, "--b%d--\n", i);
    ck_assert_uint_lt(o, cap);
    before = maxrss_kb();
    ck_assert_int_eq(message_parse(m, o, DELIMS, &f), 0);
    ck_assert_int_eq(f.method, IMIP_NONE);
    ck_assert_msg(!mem || maxrss_kb() - before < (long)(3 * o / 1024), "%ld KiB", maxrss_kb() - before);
    message_facts_free(&f);
    free(m);
}
END_TEST

static Suite *message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_plain_headers);
    tcase_add_test(tc, test_rfc2047_subject);
    tcase_add_test(tc, test_outlook_alternative);
    tcase_add_test(tc, test_google_ics_only);
    tcase_add_test(tc, test_both_parts);
    tcase_add_test(tc, test_reply);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_quoted_printable);
    tcase_add_test(tc, test_method_from_data);
    tcase_add_test(tc, test_malformed_ical);
    tcase_add_test(tc, test_degenerate_messages);
    tcase_add_test(tc, test_from_forms);
    tcase_add_test(tc, test_nesting_bound);
    tcase_add_test(tc, test_part_bound);
    tcase_add_test(tc, test_timezones);
    tcase_add_test(tc, test_8bit_untouched);
    tcase_add_test(tc, test_header_bounds);
    tcase_add_test(tc, test_exchange_vtimezone);
    tcase_add_test(tc, test_empty_properties_not_errors);
    tcase_add_test(tc, test_recurrence_id);
    tcase_add_test(tc, test_last_occurrence);
    tcase_add_test(tc, test_charset_subjects);
    tcase_add_test(tc, test_apple_request);
    tcase_add_test(tc, test_calendar_charset);
    suite_add_tcase(s, tc);
    /* Bounded work: before the fix these ran for minutes (issue 18). */
    TCase *tb = tcase_create("bounded");
    tcase_set_timeout(tb, 5);
    tcase_add_test(tb, test_hostile_vtimezone);
    tcase_add_test(tb, test_calendar_cap);
    tcase_add_test(tb, test_hostile_mime_bounded);
    tcase_add_test(tb, test_hostile_headers_bounded);
    suite_add_tcase(s, tb);
    return s;
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    SRunner *sr = srunner_create(message_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
