/* dav_xml.c - WebDAV multistatus bodies into flat records, with libxml2
 * (include/untild/dav_xml.h; the choice: docs/DECISIONS.md "WebDAV XML").
 *
 * One parser context per call (thread-safe after xmlInitParser). Parse
 * options: XML_PARSE_NONET (no network), XML_PARSE_NOCDATA (CDATA
 * calendar-data arrives as text), errors and warnings not printed; never
 * XML_PARSE_NOENT, XML_PARSE_DTDLOAD or XML_PARSE_HUGE, so libxml2's own
 * limits (10 MB per text node, depth 256) stay on. A DOCTYPE stops the
 * parser before its internal subset is read: a DAV body has none, and
 * every entity attack needs one. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include "untild/dav_xml.h"

#define NS_DAV    "DAV:"
#define NS_CALDAV "urn:ietf:params:xml:ns:caldav"
#define NS_CS     "http://calendarserver.org/ns/"

void dav_xml_init(void)
{
    xmlInitParser();
}

/* Is n the element {ns}local? */
static int is(const xmlNode *n, const char *ns, const char *local)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href && !strcmp((const char *)n->ns->href, ns)
           && !strcmp((const char *)n->name, local);
}

static const xmlNode *kid(const xmlNode *n, const char *ns, const char *local)
{
    for (const xmlNode *k = n ? n->children : NULL; k; k = k->next)
        if (is(k, ns, local))
            return k;
    return NULL;
}

/* The trimmed text directly inside n (CDATA included; entity reference
 * nodes, which only an undeclared entity could make, are not expanded).
 * 0 with *out (NULL if absent or empty), -1 on ENOMEM. */
static int text(const xmlNode *n, char **out)
{
    size_t len = 0;
    *out = NULL;
    for (const xmlNode *k = n ? n->children : NULL; k; k = k->next)
        if ((k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE) && k->content)
            len += strlen((const char *)k->content);
    if (!len)
        return 0;
    char *s = malloc(len + 1), *p = s;
    if (!s)
        return -1;
    for (const xmlNode *k = n->children; k; k = k->next) {
        if ((k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE) && k->content) {
            size_t l = strlen((const char *)k->content);
            memcpy(p, k->content, l);
            p += l;
        }
    }
    *p = '\0';
    char *b = s, *e = p;
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    if (e == b) {
        free(s);
        return 0;
    }
    memmove(s, b, (size_t)(e - b));
    s[e - b] = '\0';
    *out = s;
    return 0;
}

/* Set *dst from n's text unless already set (the first value wins). */
static int take(char **dst, const xmlNode *n)
{
    return *dst || !n ? 0 : text(n, dst);
}

/* The code in a DAV:status "HTTP/1.1 404 Not Found" (0 if none). */
static int status_code(const xmlNode *n)
{
    char *t = NULL;
    int code = 0;
    if (text(n, &t) == 0 && t) {
        const char *sp = strchr(t, ' ');
        if (sp)
            code = atoi(sp + 1);
    }
    free(t);
    return code;
}

static void response_free(struct dav_response *r)
{
    free(r->href);
    free(r->etag);
    free(r->displayname);
    free(r->sync_token);
    free(r->ctag);
    free(r->calendar_data);
    free(r->home);
    free(r->principal);
}

/* The properties of one 2xx DAV:prop into r. */
static int read_prop(const xmlNode *prop, struct dav_response *r)
{
    int rc = 0;
    for (const xmlNode *p = prop->children; p && rc == 0; p = p->next) {
        if (is(p, NS_DAV, "resourcetype")) {
            if (kid(p, NS_DAV, "collection"))
                r->restype |= DAV_RT_COLLECTION;
            if (kid(p, NS_CALDAV, "calendar"))
                r->restype |= DAV_RT_CALENDAR;
        } else if (is(p, NS_DAV, "getetag")) {
            rc = take(&r->etag, p);
        } else if (is(p, NS_DAV, "displayname")) {
            rc = take(&r->displayname, p);
        } else if (is(p, NS_DAV, "sync-token")) {
            rc = take(&r->sync_token, p);
        } else if (is(p, NS_CS, "getctag")) {
            rc = take(&r->ctag, p);
        } else if (is(p, NS_CALDAV, "calendar-data")) {
            rc = take(&r->calendar_data, p);
        } else if (is(p, NS_CALDAV, "calendar-home-set")) {
            rc = take(&r->home, kid(p, NS_DAV, "href"));
        } else if (is(p, NS_DAV, "current-user-principal")) {
            rc = take(&r->principal, kid(p, NS_DAV, "href"));
        }
    }
    return rc;
}

static int read_response(const xmlNode *resp, struct dav_response *r)
{
    int rc = take(&r->href, kid(resp, NS_DAV, "href"));
    r->status = status_code(kid(resp, NS_DAV, "status"));
    for (const xmlNode *ps = resp->children; ps && rc == 0; ps = ps->next) {
        const xmlNode *prop = kid(ps, NS_DAV, "prop");
        if (!is(ps, NS_DAV, "propstat") || status_code(kid(ps, NS_DAV, "status")) / 100 != 2)
            continue;
        r->ok = 1;
        if (prop)
            rc = read_prop(prop, r);
    }
    return rc;
}

static int read_multistatus(const xmlNode *ms, struct dav_multistatus *out)
{
    size_t cap = 0;
    for (const xmlNode *k = ms->children; k; k = k->next) {
        if (is(k, NS_DAV, "sync-token")) {
            if (take(&out->sync_token, k) < 0)
                return -1;
            continue;
        }
        if (!is(k, NS_DAV, "response"))
            continue;
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct dav_response *v = realloc(out->r, nc * sizeof *v);
            if (!v)
                return -1;
            out->r = v;
            cap = nc;
        }
        struct dav_response *r = &out->r[out->n++];
        memset(r, 0, sizeof *r);
        if (read_response(k, r) < 0)
            return -1;
    }
    return 0;
}

/* SAX internalSubset: a DOCTYPE. Stop before its subset is read. */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *eid, const xmlChar *sid)
{
    xmlParserCtxtPtr c = ctx;
    (void)name; (void)eid; (void)sid;
    *(int *)c->_private = 1;
    xmlStopParser(c);
}

/* Errors are reported through err, never printed by libxml2. */
static void quiet(void *ctx, xmlErrorPtr e)
{
    (void)ctx; (void)e;
}

static void reason(xmlParserCtxtPtr c, int doctype, char *err, size_t errsz)
{
    const xmlError *e = xmlCtxtGetLastError(c);
    if (doctype) {
        snprintf(err, errsz, "DOCTYPE refused (a WebDAV body has no DTD)");
    } else if (e && e->message) {
        size_t l = strlen(e->message);
        while (l && (e->message[l - 1] == '\n' || e->message[l - 1] == ' '))
            l--;
        snprintf(err, errsz, "line %d: %.*s", e->line, (int)(l > 200 ? 200 : l), e->message);
    } else {
        snprintf(err, errsz, "not well-formed");
    }
}

int dav_xml_parse(const char *body, size_t len, struct dav_multistatus *out, char *err, size_t errsz)
{
    int doctype = 0, rc = -1;
    memset(out, 0, sizeof *out);
    if (!body || !len) {
        snprintf(err, errsz, "empty body");
        return -1;
    }
    if (len > DAV_XML_MAX_BODY || len > INT_MAX) {
        snprintf(err, errsz, "body of %zu bytes is over the limit of %u", len, DAV_XML_MAX_BODY);
        return -1;
    }
    xmlParserCtxtPtr c = xmlNewParserCtxt();
    if (!c) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    c->_private = &doctype;
    c->sax->internalSubset = on_doctype;
    c->sax->externalSubset = NULL;
    c->sax->serror = quiet;
    xmlDocPtr doc = xmlCtxtReadMemory(c, body, (int)len, NULL, NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_NOERROR
                                      | XML_PARSE_NOWARNING);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!doc || doctype || !c->wellFormed || !c->nsWellFormed) {   /* an undeclared prefix too */
        reason(c, doctype, err, errsz);
    } else if (!is(root, NS_DAV, "multistatus")) {
        snprintf(err, errsz, "the root element is not DAV:multistatus (it is {%.100s}%.100s)",
                 root && root->ns ? (const char *)root->ns->href : "", root ? (const char *)root->name : "");
    } else if (read_multistatus(root, out) < 0) {
        snprintf(err, errsz, "out of memory");
    } else {
        rc = 0;
    }
    if (rc < 0)
        dav_xml_free(out);
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(c);
    return rc;
}

void dav_xml_free(struct dav_multistatus *ms)
{
    if (!ms)
        return;
    for (size_t i = 0; i < ms->n; i++)
        response_free(&ms->r[i]);
    free(ms->r);
    free(ms->sync_token);
    memset(ms, 0, sizeof *ms);
}
