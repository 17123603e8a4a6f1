/* test_notice.c - generated mail within RFC 5322's limits (notice.c):
 * headers folded, non-ASCII subjects as RFC 2047 encoded-words of whole
 * characters, body lines wrapped, an attachment with over-long lines sent
 * as base64; whatever the content, no line over 998 octets. Encoded words
 * are decoded again here to prove nothing is lost or split inside a
 * character. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "untild/notice.h"
#include "untild/notice_kind.h"
#include "untild/strbuf.h"

static const time_t T0 = 1800000000;

/* Every line ends with CRLF, none is longer than max octets (CRLF not
 * counted), and there is no bare CR or LF. */
static void assert_lines(const char *m, size_t len, size_t max)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (m[i] == '\r') {
            ck_assert_msg(i + 1 < len && m[i + 1] == '\n', "bare CR at %zu", i);
            ck_assert_msg(i - start <= max, "line of %zu octets at %zu: %.60s", i - start, start,
                          m + start);
            start = i + 2;
            i++;
        } else {
            ck_assert_msg(m[i] != '\n', "bare LF at %zu", i);
        }
    }
    ck_assert_uint_eq(start, len);
}

/* The header block, unfolded header by header. Returns the value of name
 * (malloc'd) or NULL. */
static char *header(const char *m, const char *name)
{
    const char *end = strstr(m, "\r\n\r\n");
    size_t nl = strlen(name);
    for (const char *p = m; p && p < end; p = strstr(p, "\r\n") + 2) {
        if (strncasecmp(p, name, nl) || p[nl] != ':')
            continue;
        struct strbuf b = { 0 };
        const char *q = p + nl + 1;
        while (*q == ' ')
            q++;
        for (;;) {
            const char *e = strstr(q, "\r\n");
            sb_add(&b, q, (size_t)(e - q));
            if (e[2] != ' ' && e[2] != '\t')
                break;
            q = e + 2;          /* unfold: CRLF removed, the WSP kept */
        }
        return sb_take(&b, NULL);
    }
    return NULL;
}

static int b64val(char c)
{
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(t, c);
    return p && c ? (int)(p - t) : -1;
}

/* Decode a value made of "=?UTF-8?B?...?=" words separated by white space
 * (RFC 2047 6.2: the space between adjacent words is dropped). Each word
 * must decode to whole UTF-8 characters. */
static char *decode_words(const char *v)
{
    struct strbuf b = { 0 };
    const char *p = v;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        ck_assert_msg(!strncmp(p, "=?UTF-8?B?", 10), "not an encoded-word: %.40s", p);
        const char *e = strstr(p + 10, "?=");
        ck_assert_ptr_nonnull(e);
        ck_assert_msg(e + 2 - p <= 75, "encoded-word of %d chars", (int)(e + 2 - p));
        unsigned char out[64];
        size_t n = 0;
        for (const char *q = p + 10; q < e; q += 4) {
            int a = b64val(q[0]), c = b64val(q[1]), d = q[2] == '=' ? 0 : b64val(q[2]),
                f = q[3] == '=' ? 0 : b64val(q[3]);
            unsigned v3 = (unsigned)a << 18 | (unsigned)c << 12 | (unsigned)d << 6 | (unsigned)f;
            out[n++] = (unsigned char)(v3 >> 16);
            if (q[2] != '=')
                out[n++] = (unsigned char)(v3 >> 8);
            if (q[3] != '=')
                out[n++] = (unsigned char)v3;
        }
        /* whole characters: no continuation byte first, none missing last */
        ck_assert_msg((out[0] & 0xc0) != 0x80, "word starts inside a character");
        size_t last = n - 1;
        while (last && (out[last] & 0xc0) == 0x80)
            last--;
        size_t want = out[last] < 0x80 ? 1 : out[last] >= 0xf0 ? 4 : out[last] >= 0xe0 ? 3 : 2;
        ck_assert_msg(n - last == want, "word ends inside a character");
        sb_add(&b, out, n);
        p = e + 2;
    }
    return sb_take(&b, NULL);
}

/* The one table of notice kinds (issue 16): every kind has a subject, the
 * [notify] events names are the documented ones, and the filter selects by
 * them; the kinds without a name are always sent. */
START_TEST(test_kind_table_names_subjects_and_filter)
{
    char names[256];
    notice_kind_names(names, sizeof names);
    ck_assert_str_eq(names, "held, flagged, released, failed, stale, status, followup, digest, all, none");
    for (int k = 0; k < NOTICE_KINDS; k++) {
        ck_assert_ptr_nonnull(notice_kind_subject((enum notice_kind)k));
        ck_assert_int_gt((int)strlen(notice_kind_subject((enum notice_kind)k)), 0);
        const char *n = notice_kind_name((enum notice_kind)k);
        if (n)
            ck_assert(notice_kind_known(n));
    }
    ck_assert(notice_kind_known("all"));
    ck_assert(notice_kind_known("none"));
    ck_assert(!notice_kind_known("bogus"));
    ck_assert_str_eq(notice_kind_name(NOTICE_FLAGGED_INVITATION), "flagged");
    ck_assert_str_eq(notice_kind_name(NOTICE_HELD_UPDATED), "held");
    ck_assert_ptr_null(notice_kind_name(NOTICE_RETURNED));
    /* the filter: NULL events = all; watchers' kinds filter like the gate's */
    ck_assert(notice_kind_wanted(NULL, NOTICE_FLAGGED));
    ck_assert(notice_kind_wanted("all", NOTICE_STALE));
    ck_assert(!notice_kind_wanted("held, failed", NOTICE_FLAGGED_INVITATION));
    ck_assert(notice_kind_wanted("held,failed", NOTICE_HOLD_FAILED));
    ck_assert(notice_kind_wanted("flagged", NOTICE_FLAGGED_INVITATION));
    ck_assert(!notice_kind_wanted("none", NOTICE_HELD));
    ck_assert(notice_kind_wanted("none", NOTICE_NOT_UNDERSTOOD));
    ck_assert(notice_kind_wanted("none", NOTICE_RETURNED));
}
END_TEST

START_TEST(test_short_notice_unchanged_shape)
{
    size_t len;
    char *m = notice_build("untild@example.com", "rep@example.com", "Held: your message waits",
                           "Line one\nLine two\n", NULL, 0, T0, &len);
    ck_assert_ptr_nonnull(m);
    assert_lines(m, len, 78);
    ck_assert_ptr_nonnull(strstr(m, "\r\nSubject: Held: your message waits\r\n"));
    ck_assert_ptr_nonnull(strstr(m, "From: untild <untild@example.com>\r\nTo: <rep@example.com>\r\n"));
    ck_assert_ptr_nonnull(strstr(m, "\r\n\r\nLine one\r\nLine two\r\n"));
    free(m);
}
END_TEST

START_TEST(test_three_hundred_recipients_on_one_line_are_wrapped)
{
    struct strbuf body = { 0 };
    sb_puts(&body, "Recipients:");
    for (int i = 0; i < 300; i++)
        sb_printf(&body, " customer%03d@acme.example", i);
    sb_puts(&body, "\nAnd a comma list: ");
    for (int i = 0; i < 300; i++)
        sb_printf(&body, "%sc%03d@acme.example", i ? "," : "", i);
    sb_puts(&body, "\n");
    size_t len;
    char *m = notice_build("untild@example.com", "rep@example.com", "Held", body.p, NULL, 0, T0, &len);
    ck_assert_ptr_nonnull(m);
    assert_lines(m, len, 78);
    /* Nothing lost: every address is there, whole, on some line. */
    for (int i = 0; i < 300; i++) {
        char a[64];
        snprintf(a, sizeof a, " customer%03d@acme.example\r\n", i);
        ck_assert_msg(strstr(m, a) || (snprintf(a, sizeof a, " customer%03d@acme.example ", i), strstr(m, a)),
                      "customer%03d lost or split", i);
        snprintf(a, sizeof a, "c%03d@acme.example,", i);
        if (i < 299)
            ck_assert_msg(strstr(m, a), "c%03d lost or split", i);
    }
    free(m);
    sb_free(&body);
}
END_TEST

START_TEST(test_unbreakable_line_cut_between_characters)
{
    struct strbuf body = { 0 };
    for (int i = 0; i < 1500; i++)
        sb_puts(&body, "\xc3\xa9");     /* é: 3000 octets, no space */
    size_t len;
    char *m = notice_build("u@example.com", "r@example.com", "x", body.p, NULL, 0, T0, &len);
    ck_assert_ptr_nonnull(m);
    assert_lines(m, len, 998);
    /* every line of the body starts on a character */
    for (const char *p = strstr(m, "\r\n\r\n") + 4; *p; p = strstr(p, "\r\n") + 2) {
        const char *q = p;
        while (*q == ' ')
            q++;
        ck_assert_msg(((unsigned char)*q & 0xc0) != 0x80, "line starts inside a character");
    }
    free(m);
    sb_free(&body);
}
END_TEST

START_TEST(test_long_non_ascii_subject_as_encoded_words)
{
    struct strbuf subj = { 0 };
    for (int i = 0; i < 400; i++)
        sb_puts(&subj, i % 3 ? "Grüße " : "日本語のテキスト ");
    sb_puts(&subj, "😀 end");
    size_t len;
    char *m = notice_build("u@example.com", "r@example.com", subj.p, "body\n", NULL, 0, T0, &len);
    ck_assert_ptr_nonnull(m);
    assert_lines(m, len, 76);
    char *v = header(m, "Subject");
    ck_assert_ptr_nonnull(v);
    char *d = decode_words(v);
    /* the trailing space of the input is not kept; all the rest is */
    ck_assert_str_eq(d, subj.p);
    free(d);
    free(v);
    free(m);
    sb_free(&subj);
}
END_TEST

START_TEST(test_long_ascii_subject_folded_and_control_characters_cleaned)
{
    struct strbuf subj = { 0 };
    for (int i = 0; i < 200; i++)
        sb_printf(&subj, "word%d ", i);
    sb_puts(&subj, "tail\r\nBcc: evil@example.com");
    size_t len;
    char *m = notice_build("u@example.com", "r@example.com", subj.p, "body\n", NULL, 0, T0, &len);
    ck_assert_ptr_nonnull(m);
    assert_lines(m, len, 78);
    ck_assert_ptr_null(strstr(m, "\r\nBcc:"));
    char *v = header(m, "Subject");
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(strstr(v, "word0 word1 "));
    ck_assert_ptr_nonnull(strstr(v, "word199 tail  Bcc: evil@example.com"));
    free(v);
    free(m);
    sb_free(&subj);
}
END_TEST

START_TEST(test_one_huge_word_subject_and_invalid_utf8)
{
    char subj[3001];
    memset(subj, 'x', 3000);
    subj[3000] = '\0';
    size_t len;
    char *m = notice_build("u@example.com", "r@example.com", subj, "b\n", NULL, 0, T0, &len);
    ck_assert_ptr_nonnull(m);
    assert_lines(m, len, 76);
    char *v = header(m, "Subject"), *d = decode_words(v);
    ck_assert_str_eq(d, subj);
    free(d);
    free(v);
    free(m);
    m = notice_build("u@example.com", "r@example.com", "bad \xff\xfe bytes \xc3", "b\n", NULL, 0, T0,
                     &len);
    v = header(m, "Subject");
    d = decode_words(v);
    ck_assert_str_eq(d, "bad \xef\xbf\xbd\xef\xbf\xbd bytes \xef\xbf\xbd");
    free(d);
    free(v);
    free(m);
}
END_TEST

START_TEST(test_attachment_with_long_lines_goes_as_base64)
{
    const char *ok = "Subject: short\r\n\r\nshort body\r\n";
    size_t len;
    char *m = notice_build("u@example.com", "r@example.com", "Failed", "text\n", ok, strlen(ok), T0, &len);
    ck_assert_ptr_nonnull(strstr(m, "Content-Type: message/rfc822\r\n"));
    ck_assert_ptr_nonnull(strstr(m, "\r\nshort body\r\n"));
    assert_lines(m, len, 998);
    free(m);
    struct strbuf att = { 0 };
    sb_puts(&att, "Subject: long\r\n\r\n");
    for (int i = 0; i < 2000; i++)
        sb_puts(&att, "y");
    sb_puts(&att, "\r\n");
    m = notice_build("u@example.com", "r@example.com", "Failed", "text\n", att.p, att.len, T0, &len);
    ck_assert_ptr_nonnull(m);
    assert_lines(m, len, 998);
    ck_assert_ptr_null(strstr(m, "message/rfc822"));
    ck_assert_ptr_nonnull(strstr(m, "Content-Transfer-Encoding: base64\r\n"));
    free(m);
    sb_free(&att);
}
END_TEST

START_TEST(test_header_helper_for_other_generated_mail)
{
    struct strbuf b = { 0 };
    notice_header(&b, "Subject", "Invitation: Réunion de lancement du projet très très très long "
                                 "avec beaucoup de mots pour dépasser la ligne");
    ck_assert_ptr_nonnull(b.p);
    assert_lines(b.p, b.len, 76);
    ck_assert(!strncmp(b.p, "Subject: =?UTF-8?B?", 19));
    sb_free(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("notice");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_short_notice_unchanged_shape);
    tcase_add_test(tc, test_three_hundred_recipients_on_one_line_are_wrapped);
    tcase_add_test(tc, test_unbreakable_line_cut_between_characters);
    tcase_add_test(tc, test_long_non_ascii_subject_as_encoded_words);
    tcase_add_test(tc, test_long_ascii_subject_folded_and_control_characters_cleaned);
    tcase_add_test(tc, test_one_huge_word_subject_and_invalid_utf8);
    tcase_add_test(tc, test_attachment_with_long_lines_goes_as_base64);
    tcase_add_test(tc, test_header_helper_for_other_generated_mail);
    tcase_add_test(tc, test_kind_table_names_subjects_and_filter);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
