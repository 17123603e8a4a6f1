/* test_dav_xml.c - WebDAV multistatus bodies as real servers send them
 * (Radicale's D:, SabreDAV/Apple-style d:, a default namespace), matched on
 * namespace URI + local name; hostile and broken bodies are refused. */
#include "untild/dav_xml.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int parse(const char *s, struct dav_multistatus *ms, char *err, size_t errsz)
{
    err[0] = '\0';
    return dav_xml_parse(s, strlen(s), ms, err, errsz);
}

/* Radicale 3.1 (DAV: as the default namespace), PROPFIND Depth 0 on the
 * server root: the discovery answer, as captured. */
START_TEST(radicale_discovery)
{
    static const char body[] =
        "<?xml version='1.0' encoding='utf-8'?>\n"
        "<multistatus xmlns=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\" "
        "xmlns:CS=\"http://calendarserver.org/ns/\"><response><href>/</href><propstat><prop><resourcetype>"
        "<collection /></resourcetype><current-user-principal><href>/rep/</href></current-user-principal>"
        "</prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><displayname /><sync-token />"
        "<CS:getctag /><C:calendar-home-set /></prop><status>HTTP/1.1 404 Not Found</status></propstat>"
        "</response></multistatus>";
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 1);
    ck_assert_str_eq(ms.r[0].href, "/");
    ck_assert_int_eq(ms.r[0].ok, 1);
    ck_assert_int_eq(ms.r[0].status, 0);
    ck_assert_str_eq(ms.r[0].principal, "/rep/");
    ck_assert_ptr_null(ms.r[0].home);
    ck_assert_ptr_null(ms.r[0].displayname);
    ck_assert_uint_eq(ms.r[0].restype, DAV_RT_COLLECTION);
    dav_xml_free(&ms);
}
END_TEST

/* Radicale 3.1, PROPFIND Depth 1 on the principal: the home and a
 * calendar, as captured. */
START_TEST(radicale_home_listing)
{
    static const char body[] =
        "<?xml version='1.0' encoding='utf-8'?>\n"
        "<multistatus xmlns=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\" "
        "xmlns:CS=\"http://calendarserver.org/ns/\"><response><href>/rep/</href><propstat><prop><resourcetype>"
        "<principal /><collection /></resourcetype><current-user-principal><href>/rep/</href>"
        "</current-user-principal><C:calendar-home-set><href>/rep/</href></C:calendar-home-set></prop>"
        "<status>HTTP/1.1 200 OK</status></propstat><propstat><prop><displayname /><sync-token />"
        "<CS:getctag /></prop><status>HTTP/1.1 404 Not Found</status></propstat></response><response>"
        "<href>/rep/work/</href><propstat><prop><resourcetype><C:calendar /><collection /></resourcetype>"
        "<displayname>Work</displayname><sync-token>http://radicale.org/ns/sync/e3b0c44298fc1c149afbf4c8996f"
        "</sync-token><CS:getctag>\"4f35ed36af72\"</CS:getctag><current-user-principal><href>/rep/</href>"
        "</current-user-principal></prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop>"
        "<C:calendar-home-set /></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>"
        "</multistatus>";
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 2);
    ck_assert_str_eq(ms.r[0].home, "/rep/");
    ck_assert_str_eq(ms.r[0].principal, "/rep/");
    ck_assert_uint_eq(ms.r[0].restype, DAV_RT_COLLECTION);
    ck_assert_str_eq(ms.r[1].href, "/rep/work/");
    ck_assert_uint_eq(ms.r[1].restype, DAV_RT_COLLECTION | DAV_RT_CALENDAR);
    ck_assert_str_eq(ms.r[1].displayname, "Work");
    ck_assert_str_eq(ms.r[1].sync_token, "http://radicale.org/ns/sync/e3b0c44298fc1c149afbf4c8996f");
    ck_assert_str_eq(ms.r[1].ctag, "\"4f35ed36af72\"");
    ck_assert_ptr_null(ms.r[1].home);   /* its calendar-home-set is in the 404 propstat */
    dav_xml_free(&ms);
}
END_TEST

/* Upper-case D: (Google, Cyrus), pretty-printed: the whitespace around
 * values is not part of them. */
START_TEST(uppercase_prefix_pretty_printed)
{
    static const char body[] =
        "<?xml version='1.0' encoding='utf-8'?>\n"
        "<D:multistatus xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:CS=\"http://calendarserver.org/ns/\"\n"
        "    xmlns:D=\"DAV:\">\n"
        "  <D:response>\n    <D:href>/bob/</D:href>\n    <D:propstat>\n      <D:prop>\n"
        "        <D:resourcetype>\n          <D:principal />\n          <D:collection />\n"
        "        </D:resourcetype>\n      </D:prop>\n      <D:status>HTTP/1.1 200 OK</D:status>\n"
        "    </D:propstat>\n    <D:propstat>\n      <D:prop>\n        <D:displayname />\n"
        "        <D:sync-token />\n        <CS:getctag />\n      </D:prop>\n"
        "      <D:status>HTTP/1.1 404 Not Found</D:status>\n    </D:propstat>\n  </D:response>\n"
        "  <D:response>\n    <D:href>/bob/work/</D:href>\n    <D:propstat>\n      <D:prop>\n"
        "        <D:resourcetype>\n          <C:calendar />\n          <D:collection />\n"
        "        </D:resourcetype>\n        <D:displayname>Work</D:displayname>\n"
        "        <D:sync-token>http://radicale.org/ns/sync/7c1b</D:sync-token>\n"
        "        <CS:getctag>\"a4e1\"</CS:getctag>\n      </D:prop>\n"
        "      <D:status>HTTP/1.1 200 OK</D:status>\n    </D:propstat>\n  </D:response>\n"
        "</D:multistatus>\n";
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 2);
    ck_assert_str_eq(ms.r[0].href, "/bob/");
    ck_assert_uint_eq(ms.r[0].restype, DAV_RT_COLLECTION);
    ck_assert_ptr_null(ms.r[0].displayname);
    ck_assert_ptr_null(ms.r[0].ctag);
    ck_assert_str_eq(ms.r[1].href, "/bob/work/");
    ck_assert_uint_eq(ms.r[1].restype, DAV_RT_COLLECTION | DAV_RT_CALENDAR);
    ck_assert_str_eq(ms.r[1].displayname, "Work");
    ck_assert_str_eq(ms.r[1].sync_token, "http://radicale.org/ns/sync/7c1b");
    ck_assert_str_eq(ms.r[1].ctag, "\"a4e1\"");
    ck_assert_ptr_null(ms.sync_token);
    dav_xml_free(&ms);
}
END_TEST

/* Lower-case d: and cal: (SabreDAV, Apple), sync-collection answer:
 * a changed object, a deleted one (response-level 404), a 507 and the
 * multistatus's own sync-token. */
START_TEST(lowercase_prefix_sync_collection)
{
    static const char body[] =
        "<?xml version=\"1.0\"?>\n"
        "<d:multistatus xmlns:d=\"DAV:\" xmlns:s=\"http://sabredav.org/ns\" "
        "xmlns:cal=\"urn:ietf:params:xml:ns:caldav\" xmlns:cs=\"http://calendarserver.org/ns/\">"
        "<d:response><d:href>/calendars/bob/home/a.ics</d:href><d:propstat><d:prop>"
        "<d:getetag>&quot;e1&quot;</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        "</d:response>"
        "<d:response><d:href>/calendars/bob/home/gone.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status>"
        "</d:response>"
        "<d:response><d:href>/calendars/bob/home/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status>"
        "</d:response>"
        "<d:sync-token>http://sabre.io/ns/sync/42</d:sync-token></d:multistatus>";
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 3);
    ck_assert_str_eq(ms.r[0].etag, "\"e1\"");
    ck_assert_int_eq(ms.r[0].ok, 1);
    ck_assert_int_eq(ms.r[1].status, 404);
    ck_assert_int_eq(ms.r[1].ok, 0);
    ck_assert_int_eq(ms.r[2].status, 507);
    ck_assert_str_eq(ms.sync_token, "http://sabre.io/ns/sync/42");
    dav_xml_free(&ms);
}
END_TEST

/* A default namespace (iCloud style) with CalDAV's own default
 * namespace on calendar-data, and calendar-data in CDATA. */
START_TEST(default_namespace_and_cdata)
{
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<multistatus xmlns=\"DAV:\"><response><href>/1/calendars/home/e.ics</href><propstat><prop>"
        "<getetag>\"C=1@U=2\"</getetag>"
        "<calendar-data xmlns=\"urn:ietf:params:xml:ns:caldav\"><![CDATA[BEGIN:VCALENDAR\r\n"
        "SUMMARY:a <b> & c ]] d\r\nEND:VCALENDAR\r\n]]></calendar-data>"
        "</prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>";
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 1);
    ck_assert_str_eq(ms.r[0].href, "/1/calendars/home/e.ics");
    ck_assert_str_eq(ms.r[0].etag, "\"C=1@U=2\"");
    /* XML end-of-line handling: a raw CRLF arrives as LF, CDATA or not */
    ck_assert_str_eq(ms.r[0].calendar_data, "BEGIN:VCALENDAR\nSUMMARY:a <b> & c ]] d\nEND:VCALENDAR");
    dav_xml_free(&ms);
}
END_TEST

/* Escaped calendar-data (Radicale), entities and character references in
 * hrefs. */
START_TEST(entities_in_text)
{
    static const char body[] =
        "<D:multistatus xmlns:D=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><D:response>"
        "<D:href>/bob/cal/a&amp;b%20c&#x20AC;&#233;.ics</D:href><D:propstat><D:prop>"
        "<C:calendar-data>BEGIN:VCALENDAR&#13;\nSUMMARY:x &lt;y&gt; &amp; &apos;z&apos;&#13;\n"
        "END:VCALENDAR&#13;\n</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        "</D:response></D:multistatus>";
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), 0);
    ck_assert_str_eq(ms.r[0].href, "/bob/cal/a&b%20c\xe2\x82\xac\xc3\xa9.ics");
    ck_assert_str_eq(ms.r[0].calendar_data, "BEGIN:VCALENDAR\r\nSUMMARY:x <y> & 'z'\r\nEND:VCALENDAR");
    dav_xml_free(&ms);
}
END_TEST

/* Another namespace's href, calendar, getetag or un-namespaced elements
 * are never taken for DAV's or CalDAV's. */
START_TEST(foreign_namespace_not_taken)
{
    static const char body[] =
        "<D:multistatus xmlns:D=\"DAV:\" xmlns:X=\"urn:evil\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">"
        "<D:response><X:href>/evil/</X:href><D:href>/good/</D:href><D:propstat><D:prop>"
        "<D:resourcetype><X:calendar/><D:collection/></D:resourcetype><X:getetag>bad</X:getetag>"
        "<C:calendar-home-set><X:href>/evil-home/</X:href><D:href>/home/</D:href></C:calendar-home-set>"
        "<D:current-user-principal><href>/nons/</href></D:current-user-principal>"
        "<X:displayname>evil</X:displayname></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        "</D:response><X:response><D:href>/evil2/</D:href></X:response></D:multistatus>";
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 1);
    ck_assert_str_eq(ms.r[0].href, "/good/");
    ck_assert_uint_eq(ms.r[0].restype, DAV_RT_COLLECTION);
    ck_assert_ptr_null(ms.r[0].etag);
    ck_assert_str_eq(ms.r[0].home, "/home/");
    ck_assert_ptr_null(ms.r[0].principal);
    ck_assert_ptr_null(ms.r[0].displayname);
    dav_xml_free(&ms);
}
END_TEST

START_TEST(root_must_be_dav_multistatus)
{
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse("<X:multistatus xmlns:X=\"urn:x\"/>", &ms, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not DAV:multistatus"));
    ck_assert_int_eq(parse("<multistatus/>", &ms, err, sizeof err), -1);
    ck_assert_int_eq(parse("<D:error xmlns:D=\"DAV:\"><D:valid-sync-token/></D:error>", &ms, err, sizeof err), -1);
    ck_assert_int_eq(parse("<D:multistatus xmlns:D=\"DAV:\"/>", &ms, err, sizeof err), 0);
    ck_assert_uint_eq(ms.n, 0);
    dav_xml_free(&ms);
}
END_TEST

/* Billion laughs: refused at the DOCTYPE, at once. */
START_TEST(billion_laughs_refused)
{
    static const char body[] =
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n"
        "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&lol9;</D:href></D:response>"
        "</D:multistatus>";
    struct dav_multistatus ms;
    char err[256];
    time_t t0 = time(NULL);
    ck_assert_int_eq(parse(body, &ms, err, sizeof err), -1);
    ck_assert_int_le(time(NULL) - t0, 1);
    ck_assert_ptr_nonnull(strstr(err, "DOCTYPE"));
    ck_assert_ptr_null(ms.r);
}
END_TEST

/* XXE: an external entity (file or network) is never read. */
START_TEST(external_entity_refused)
{
    static const char *const bodies[] = {
        "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&x;</D:href></D:response></D:multistatus>",
        "<?xml version=\"1.0\"?><!DOCTYPE D:multistatus SYSTEM \"http://127.0.0.1:1/dav.dtd\">"
        "<D:multistatus xmlns:D=\"DAV:\"/>",
        "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>"
        "<D:multistatus xmlns:D=\"DAV:\"/>",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct dav_multistatus ms;
        char err[256];
        ck_assert_int_eq(parse(bodies[i], &ms, err, sizeof err), -1);
        ck_assert_ptr_nonnull(strstr(err, "DOCTYPE"));
    }
}
END_TEST

/* An entity nobody declared is an error, not text. */
START_TEST(undeclared_entity_is_malformed)
{
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(parse("<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&x;</D:href></D:response>"
                           "</D:multistatus>", &ms, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
}
END_TEST

START_TEST(malformed_refused_with_reason)
{
    static const char good[] =
        "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/a</D:href><D:propstat><D:prop>"
        "<D:getetag>e</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
        "</D:response></D:multistatus>";
    static const char *const bad[] = {
        "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/a</D:response></D:multistatus>",
        "<D:multistatus xmlns:D=\"DAV:\"><Q:response><D:href>/a</D:href></Q:response></D:multistatus>",
        "<D:multistatus xmlns:D=\"DAV:\">",
        "<html><body>502 Bad Gateway</body>",
        "not xml at all",
        "<D:multistatus xmlns:D=\"DAV:\"/><D:multistatus xmlns:D=\"DAV:\"/>",
        "<D:multistatus xmlns:D=\"DAV:\"><D:href a=\"1\" a=\"2\">x</D:href></D:multistatus>",
        "\xff\xfe<\x00",
    };
    struct dav_multistatus ms;
    char err[256];
    /* every truncation of a good body */
    for (size_t n = 1; n < strlen(good); n++) {
        ck_assert_int_eq(dav_xml_parse(good, n, &ms, err, sizeof err), -1);
        ck_assert_ptr_null(ms.r);
        ck_assert_int_gt((int)strlen(err), 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_msg(parse(bad[i], &ms, err, sizeof err) == -1, "accepted: %s", bad[i]);
        ck_assert_int_gt((int)strlen(err), 0);
        ck_assert_ptr_null(strchr(err, '\n'));
    }
    ck_assert_int_eq(dav_xml_parse(NULL, 0, &ms, err, sizeof err), -1);
    ck_assert_int_eq(dav_xml_parse("", 0, &ms, err, sizeof err), -1);
}
END_TEST

/* The body limit is checked before a byte is read. */
START_TEST(size_limit)
{
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(dav_xml_parse("<", (size_t)DAV_XML_MAX_BODY + 1, &ms, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "over the limit"));
}
END_TEST

/* A deep nesting bomb stops at libxml2's depth limit, no crash. */
START_TEST(deep_nesting)
{
    size_t depth = 100000, n = 0;
    char *s = malloc(depth * 7 + 64);
    ck_assert_ptr_nonnull(s);
    n += (size_t)sprintf(s, "<D:multistatus xmlns:D=\"DAV:\">");
    for (size_t i = 0; i < depth; i++)
        n += (size_t)sprintf(s + n, "<D:x>");
    struct dav_multistatus ms;
    char err[256];
    ck_assert_int_eq(dav_xml_parse(s, n, &ms, err, sizeof err), -1);
    free(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dav_xml");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, radicale_discovery);
    tcase_add_test(tc, radicale_home_listing);
    tcase_add_test(tc, uppercase_prefix_pretty_printed);
    tcase_add_test(tc, lowercase_prefix_sync_collection);
    tcase_add_test(tc, default_namespace_and_cdata);
    tcase_add_test(tc, entities_in_text);
    tcase_add_test(tc, foreign_namespace_not_taken);
    tcase_add_test(tc, root_must_be_dav_multistatus);
    tcase_add_test(tc, billion_laughs_refused);
    tcase_add_test(tc, external_entity_refused);
    tcase_add_test(tc, undeclared_entity_is_malformed);
    tcase_add_test(tc, malformed_refused_with_reason);
    tcase_add_test(tc, size_limit);
    tcase_add_test(tc, deep_nesting);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    dav_xml_init();
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
