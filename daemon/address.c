/* address.c - e-mail address normalisation (docs/DESIGN.md "Matching").
 *
 * Windows name people ("jane@acme.com") and domains ("@acme.com"); the
 * envelope names them however the mail client felt like: with angle
 * brackets, a source route, a trailing dot, upper case, a U-label domain, a
 * quoted local part, a sub-address. Everything that compares addresses goes
 * through here so that all of those spellings meet in one canonical form:
 * "local@domain", local part ASCII lower-case, unquoted when it can be, cut
 * at the first sub-address delimiter; domain lower-case A-labels (libidn2,
 * UTS #46 non-transitional, so "straße" stays distinct from "strasse").
 *
 * A routed local part ("jane%acme.com@relay", "acme.com!jane@relay",
 * "\"jane@acme.com\"@relay") is read as the address it finally routes to,
 * since an upstream delivers it there; the facts say it was routed, so the
 * SMTP gate and the policy service can refuse it (DESIGN.md "Matching").
 *
 * Diagnostics: functions return -1 and a short static reason.
 */
#include "untild/address.h"

#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#define LOCAL_MAX 64     /* RFC 5321 4.5.3.1.1 */
#define DOMAIN_MAX 255   /* RFC 5321 4.5.3.1.2 */
#define LABEL_MAX 63

static void set_why(const char **why, const char *reason)
{
    if (why)
        *why = reason;
}

static int is_ascii_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }

static unsigned char ascii_lower(unsigned char c)
{
    return is_ascii_upper(c) ? (unsigned char)(c + 32) : c;
}

/* RFC 5322 atext, plus UTF-8 octets (RFC 6531 SMTPUTF8 local parts). */
static int is_atext(unsigned char c)
{
    if (c >= 0x80)
        return 1;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Can this (unescaped) local part be written without quotes? Dots are
 * accepted anywhere: mailbox providers hand out "john..doe" and such, and
 * matching must work for whatever the client sent. */
static int local_is_atom(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_atext((unsigned char)s[i]) && s[i] != '.')
            return 0;
    return 1;
}

/* Domain part, ASCII or UTF-8, without '@'; n octets at in. */
static int domain_norm(const char *in, size_t n, char *out, size_t outsz,
                       const char **why)
{
    char buf[1024];   /* U-labels may be longer than their A-labels */

    if (n > 0 && in[n - 1] == '.')     /* absolute form "acme.com." */
        n--;
    if (n == 0) {
        set_why(why, "empty domain");
        return -1;
    }
    if (in[0] == '[') {
        /* Address literal: kept as written (only brackets and a sane
         * character set are checked; nobody sub-addresses an IP). */
        if (in[n - 1] != ']' || n < 3) {
            set_why(why, "bad address literal");
            return -1;
        }
        for (size_t i = 1; i + 1 < n; i++) {
            unsigned char c = (unsigned char)in[i];
            if (c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '\\') {
                set_why(why, "bad address literal");
                return -1;
            }
        }
        if (n > DOMAIN_MAX) {
            set_why(why, "domain too long");
            return -1;
        }
        if (n + 1 > outsz) {
            set_why(why, "address too long");
            return -1;
        }
        memcpy(out, in, n);
        out[n] = '\0';
        return 0;
    }
    if (n > sizeof buf - 1) {
        set_why(why, "domain too long");
        return -1;
    }

    int ascii = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80)
            ascii = 0;
        else if (c <= ' ' || c == 0x7f)
            goto bad;
        buf[i] = (char)ascii_lower(c);
    }
    buf[n] = '\0';

    const char *dom = buf;
    char *idn = NULL;
    if (!ascii) {
        /* U-labels -> A-labels. NONTRANSITIONAL keeps ß and friends;
         * NFC_INPUT so decomposed input meets composed input. */
        int rc = idn2_to_ascii_8z(buf, &idn,
                                  IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
        if (rc != IDN2_OK) {
            set_why(why, "bad international domain");
            return -1;
        }
        dom = idn;
    }

    /* Label syntax: letters, digits, '-', '_' (seen in real host names),
     * 1..63 octets, no empty labels. */
    size_t len = strlen(dom), lab = 0;
    int ok = len > 0;
    for (size_t i = 0; ok && i <= len; i++) {
        char c = dom[i];
        if (c == '.' || c == '\0') {
            ok = lab > 0 && lab <= LABEL_MAX;
            lab = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            lab++;
        } else {
            ok = 0;
        }
    }
    if (!ok) {
        free(idn);
        goto bad;
    }
    if (len > DOMAIN_MAX) {
        free(idn);
        set_why(why, "domain too long");
        return -1;
    }
    if (len + 1 > outsz) {
        free(idn);
        set_why(why, "address too long");
        return -1;
    }
    memcpy(out, dom, len + 1);
    free(idn);
    return 0;
bad:
    set_why(why, "bad domain");
    return -1;
}

int address_domain_normalize(const char *in, char *out, size_t outsz,
                             const char **why)
{
    if (!in || !out || outsz == 0) {
        set_why(why, "no domain");
        return -1;
    }
    if (*in == '@')
        in++;
    return domain_norm(in, strlen(in), out, outsz, why);
}

/* Skip a source route "@a.example,@b.example:" at *p, if any. */
static int skip_route(const char **p, const char *end, unsigned *facts,
                      const char **why)
{
    const char *s = *p;
    if (s >= end || *s != '@')
        return 0;
    const char *colon = memchr(s, ':', (size_t)(end - s));
    if (!colon)
        return 0;   /* "@acme.com": no route, just no local part */
    /* Each hop is "@domain", separated by ','. Only the shape is checked:
     * the route is discarded anyway (RFC 5321 says ignore it). */
    for (const char *q = s; q < colon; q++)
        if ((unsigned char)*q <= ' ' || *q == '<' || *q == '>' || *q == '"') {
            set_why(why, "bad source route");
            return -1;
        }
    *facts |= ADDRESS_SOURCE_ROUTE;
    *p = colon + 1;
    return 0;
}

/* The extent of the address proper at *p: inside <...> (anything after
 * '>' is DSN / ESMTP parameters), or up to the first unquoted blank. */
static int find_extent(const char **p, const char **endp, const char **why)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    int bracket = *s == '<';
    if (bracket)
        s++;
    int inq = 0;
    const char *q = s;
    for (; *q; q++) {
        if (inq) {
            if (*q == '\\' && q[1])
                q++;
            else if (*q == '"')
                inq = 0;
        } else if (*q == '"') {
            inq = 1;
        } else if (bracket ? *q == '>'
                           : (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) {
            break;
        }
    }
    if (inq) {
        set_why(why, "unterminated quote");
        return -1;
    }
    if (bracket && *q != '>') {
        set_why(why, "missing '>'");
        return -1;
    }
    if (q == s) {
        set_why(why, bracket ? "empty reverse path" : "empty address");
        return -1;
    }
    *p = s;
    *endp = q;
    return 0;
}

/* Local part at *p (quoted-string or dot-atom-ish text), unescaped and
 * ASCII lower-cased into lp (NUL-terminated); *p is left on the '@'. */
static int parse_local(const char **pp, const char *end, char *lp, size_t lpsz,
                       size_t *lnp, int *quotedp, const char **why)
{
    const char *p = *pp;
    size_t ln = 0;
    int quoted = 0;
    if (p < end && *p == '"') {
        quoted = 1;
        for (p++; p < end && *p != '"'; p++) {
            if (*p == '\\' && p + 1 < end)
                p++;
            unsigned char c = (unsigned char)*p;
            if (c == '\r' || c == '\n' || c == '\0') {
                set_why(why, "bad local part");
                return -1;
            }
            if (ln >= lpsz - 1) {
                set_why(why, "local part too long");
                return -1;
            }
            lp[ln++] = (char)ascii_lower(c);
        }
        if (p >= end) {
            set_why(why, "unterminated quote");
            return -1;
        }
        p++;   /* closing quote */
    } else {
        for (; p < end && *p != '@'; p++) {
            unsigned char c = (unsigned char)*p;
            if (!is_atext(c) && c != '.') {
                set_why(why, "bad local part");
                return -1;
            }
            if (ln >= lpsz - 1) {
                set_why(why, "local part too long");
                return -1;
            }
            lp[ln++] = (char)ascii_lower(c);
        }
    }
    lp[ln] = '\0';
    *pp = p;
    *lnp = ln;
    *quotedp = quoted;
    return 0;
}

/* Resolve a routed local part to the address it finally routes to, as
 * Postfix's trivial-rewrite does at each host that takes the message as
 * its own (allow_percent_hack, swap_bangpath, resolve_dequoted_address,
 * all on by default): a '@' (only possible quoted) splits at the
 * rightmost one; else "site!rest" becomes rest@site at the leftmost '!';
 * else "rest%site" becomes rest@site at the rightmost '%'. Repeated until
 * the local part routes no further; dom receives each new domain. Every
 * step shortens lp, so this ends. */
static int resolve_route(char *lp, size_t *lnp, char *dom, size_t domsz,
                         unsigned *facts, const char **why)
{
    for (;;) {
        char *op, *site;
        if ((op = strrchr(lp, '@')) || (!strchr(lp, '!') && (op = strrchr(lp, '%')))) {
            *op = '\0';
            site = op + 1;
        } else if ((op = strchr(lp, '!'))) {
            *op = '\0';
            site = lp;
        } else {
            break;
        }
        *facts |= ADDRESS_ROUTED;
        if (domain_norm(site, strlen(site), dom, domsz, why) < 0) {
            set_why(why, "unroutable address");
            return -1;
        }
        if (dom[0] == '[')
            *facts |= ADDRESS_LITERAL;
        if (site == lp)
            memmove(lp, op + 1, strlen(op + 1) + 1);
    }
    *lnp = strlen(lp);
    if (*lnp == 0) {
        set_why(why, "empty local part");
        return -1;
    }
    return 0;
}

/* Length of a local part as it would be written (quotes, escapes). */
static size_t written_len(const char *lp, size_t ln, int atom)
{
    size_t w = ln;
    if (!atom) {
        w += 2;
        for (size_t i = 0; i < ln; i++)
            if (lp[i] == '"' || lp[i] == '\\')
                w++;
    }
    return w;
}

/* "local@dom" into out, the local part quoted when it must be. */
static int assemble(const char *lp, size_t ln, const char *dom, char *out,
                    size_t outsz, const char **why)
{
    int atom = local_is_atom(lp, ln);
    size_t o = 0, dl = strlen(dom);
    if (written_len(lp, ln, atom) + 1 + dl + 1 > outsz) {
        set_why(why, "address too long");
        return -1;
    }
    if (!atom)
        out[o++] = '"';
    for (size_t i = 0; i < ln; i++) {
        if (!atom && (lp[i] == '"' || lp[i] == '\\'))
            out[o++] = '\\';
        out[o++] = lp[i];
    }
    if (!atom)
        out[o++] = '"';
    out[o++] = '@';
    memcpy(out + o, dom, dl + 1);
    return 0;
}

int address_normalize_ex(const char *in, const char *delims, char *out,
                         size_t outsz, unsigned *facts, const char **why)
{
    unsigned f = 0;
    if (facts)
        *facts = 0;
    if (!in || !out || outsz == 0) {
        set_why(why, "no address");
        return -1;
    }
    const char *p = in, *end;
    if (find_extent(&p, &end, why) < 0)
        return -1;
    int rc = -1;
    char lp[LOCAL_MAX * 2 + 2];
    size_t ln = 0;
    int quoted = 0;
    if (skip_route(&p, end, &f, why) < 0 ||
        parse_local(&p, end, lp, sizeof lp, &ln, &quoted, why) < 0)
        goto out;
    /* known as routed before any other complaint: "acme.com!jane" with no
     * domain at all is still a way to jane@acme.com */
    if (strpbrk(lp, "%!@"))
        f |= ADDRESS_ROUTED;
    if (p >= end || *p != '@') {
        set_why(why, quoted ? "bad local part" : "no '@'");
        goto out;
    }
    if (ln == 0) {
        set_why(why, "empty local part");
        goto out;
    }
    p++;   /* '@' */
    if (written_len(lp, ln, local_is_atom(lp, ln)) > LOCAL_MAX) {
        set_why(why, "local part too long");
        goto out;
    }
    char dom[DOMAIN_MAX + 1];
    if (domain_norm(p, (size_t)(end - p), dom, sizeof dom, why) < 0)
        goto out;
    if (dom[0] == '[')
        f |= ADDRESS_LITERAL;
    if (resolve_route(lp, &ln, dom, sizeof dom, &f, why) < 0)
        goto out;
    /* Sub-address: cut at the first delimiter, unless the local part
     * starts with one (as Postfix does: "+x" is a name, not a suffix). */
    if (delims && *delims) {
        size_t cut = strcspn(lp, delims);
        if (cut > 0 && cut < ln)
            ln = cut;
    }
    rc = assemble(lp, ln, dom, out, outsz, why);
out:
    if (facts)
        *facts = f;
    return rc;
}

int address_normalize(const char *in, const char *delims, char *out,
                      size_t outsz, const char **why)
{
    return address_normalize_ex(in, delims, out, outsz, NULL, why);
}

int address_from_internal(const char *in, char *out, size_t outsz)
{
    if (!in || !out || outsz == 0)
        return -1;
    size_t o = 0, n = strlen(in);
    if (in[0] == '<' || in[0] == '"') {
        if (n + 1 > outsz)
            return -1;
        memcpy(out, in, n + 1);
        return 0;
    }
    /* a source route "@a,@b:" stays as it is, in front */
    const char *lp = in;
    if (in[0] == '@' && strchr(in, ':'))
        lp = strchr(in, ':') + 1;
    const char *at = strrchr(lp, '@');
    size_t rl = (size_t)(lp - in), ln = at ? (size_t)(at - lp) : strlen(lp);
    size_t dl = at ? strlen(at) : 0;
    int atom = local_is_atom(lp, ln);
    if (rl + written_len(lp, ln, atom) + dl + 1 > outsz)
        return -1;
    memcpy(out, in, rl);
    o = rl;
    if (!atom)
        out[o++] = '"';
    for (size_t i = 0; i < ln; i++) {
        if (!atom && (lp[i] == '"' || lp[i] == '\\'))
            out[o++] = '\\';
        out[o++] = lp[i];
    }
    if (!atom)
        out[o++] = '"';
    memcpy(out + o, at ? at : "", dl + 1);
    return 0;
}

int address_who_normalize(const char *in, const char *delims, char *out,
                          size_t outsz, const char **why)
{
    if (!in || !out || outsz == 0) {
        set_why(why, "no address");
        return -1;
    }
    /* "@domain" is a domain key; "@a:jane@x" is a source route. */
    if (in[0] == '@' && !strchr(in + 1, '@') && !strchr(in, ':')) {
        if (outsz < 2) {
            set_why(why, "address too long");
            return -1;
        }
        out[0] = '@';
        return domain_norm(in + 1, strlen(in + 1), out + 1, outsz - 1, why);
    }
    return address_normalize(in, delims, out, outsz, why);
}

const char *address_domain(const char *norm)
{
    const char *at = strrchr(norm, '@');
    return at ? at + 1 : norm;
}
