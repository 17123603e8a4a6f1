/* dav_xml.h - WebDAV multistatus bodies (RFC 4918, RFC 6578 sync-collection,
 * RFC 4791 CalDAV) read with libxml2 into flat records.
 *
 * Elements are matched on namespace URI + local name, so any prefix works
 * ("D:", "d:", a default namespace) and another namespace's "href" is never
 * taken for DAV:href. The parser loads no DTD, expands no entities beyond
 * the five predefined ones and character references, never touches the
 * network, and refuses any body with a DOCTYPE (billion laughs, XXE).
 * Thread-safe after dav_xml_init(); each call has its own parser context. */
#ifndef UNTILD_DAV_XML_H
#define UNTILD_DAV_XML_H

#include <stddef.h>

/* Largest body dav_xml_parse() reads (the CalDAV client's HTTP response
 * limit is the same number, so nothing it receives is refused here). */
#define DAV_XML_MAX_BODY (64u << 20)

/* dav_response.restype bits (DAV:resourcetype children). */
#define DAV_RT_COLLECTION 1u   /* DAV:collection */
#define DAV_RT_CALENDAR   2u   /* urn:ietf:params:xml:ns:caldav calendar */

/* One DAV:response. Strings are malloc'd, whitespace-trimmed, and NULL when
 * absent or empty. Properties come from the response's 2xx propstats (the
 * first value found wins); a 404 propstat's empty elements are ignored. */
struct dav_response {
    char *href;            /* the first DAV:href child */
    int status;            /* response-level DAV:status code (0: none) */
    int ok;                /* has a propstat with a 2xx status */
    unsigned restype;      /* DAV_RT_* */
    char *etag;            /* DAV:getetag */
    char *displayname;     /* DAV:displayname */
    char *sync_token;      /* DAV:sync-token as a property */
    char *ctag;            /* http://calendarserver.org/ns/ getctag */
    char *calendar_data;   /* CalDAV calendar-data (CDATA or escaped text) */
    char *home;            /* CalDAV calendar-home-set / DAV:href */
    char *principal;       /* DAV:current-user-principal / DAV:href */
};

struct dav_multistatus {
    struct dav_response *r;
    size_t n;
    char *sync_token;      /* the multistatus's own DAV:sync-token (RFC 6578) */
};

/* libxml2's global initialisation: once, on the main thread, before any
 * worker thread parses. */
void dav_xml_init(void);

/* Parse a DAV:multistatus body of len bytes into *out (zeroed first).
 * Returns 0, or -1 with a one-line reason in err (not well-formed, a
 * DOCTYPE, over DAV_XML_MAX_BODY, root not DAV:multistatus, no memory);
 * on -1 *out holds nothing to free. */
int dav_xml_parse(const char *body, size_t len, struct dav_multistatus *out, char *err, size_t errsz);

void dav_xml_free(struct dav_multistatus *ms);

#endif
