/* address.h - e-mail address normalisation (docs/DESIGN.md "Matching").
 *
 * A normalised address is "local@domain" where:
 *  - a source route ("@a,@b:") and angle brackets are removed;
 *  - the domain is lower-cased, a trailing dot dropped, IDNA-normalised to
 *    its A-label form (libidn2, NONTRANSITIONAL), so U- and A-labels match;
 *  - the local part is lower-cased (ASCII), unquoted when the quotes are not
 *    needed (a quoted local part that is a valid dot-atom equals the atom),
 *    and cut at the first sub-address delimiter ("jane+x" -> "jane");
 *  - DSN / ESMTP parameters after the closing '>' are not part of it;
 *  - a routed local part (percent hack "jane%acme.com@relay", bang path
 *    "acme.com!jane@relay", a quoted '@' "\"jane@acme.com\"@relay", nested
 *    or mixed) is resolved to the address it finally routes to, the way
 *    Postfix rewrites it (after the unquoting: '@' rightmost first, then
 *    "site!rest" leftmost '!', then "rest%site" rightmost '%').
 * A domain key is "@domain" (normalised the same way). */
#ifndef UNTILD_ADDRESS_H
#define UNTILD_ADDRESS_H

#include <stddef.h>

#define ADDR_MAX 512   /* buffer size for a normalised address, with NUL */

/* Facts address_normalize_ex reports (a bit set). */
#define ADDRESS_ROUTED  0x1u  /* local part routes on: '%', '!' or a quoted '@' */
#define ADDRESS_LITERAL 0x2u  /* domain (final or on the route) is "[...]" */
#define ADDRESS_SOURCE_ROUTE 0x4u /* a source route "@a,@b:" was dropped */

/* Normalise an address (with or without <>, with or without a source
 * route). delims: sub-address delimiter characters (e.g. "+"), may be ""
 * or NULL. The empty reverse path "<>" is an error here.
 * Returns 0, or -1 with a static reason in *why (may be NULL). */
int address_normalize(const char *in, const char *delims, char *out,
                      size_t outsz, const char **why);

/* address_normalize, and the facts found in *facts (may be NULL; set
 * even when -1 is returned, so a routed form that resolves to nothing
 * valid is still known as routed). */
int address_normalize_ex(const char *in, const char *delims, char *out,
                         size_t outsz, unsigned *facts, const char **why);

/* Postfix's internal (unquoted) form, as its policy delegation protocol
 * hands it over ("jane doe@acme.com", "jane@acme.com@relay"), to RFC 5321
 * form: the local part (up to the last '@', after a source route) quoted
 * when it is not a dot-atom. "<...>" input is copied as it is.
 * Returns 0, or -1 if out is too small. */
int address_from_internal(const char *in, char *out, size_t outsz);

/* Normalise a domain ("Bücher.Example." -> "xn--bcher-kva.example").
 * Accepts an optional leading '@' (dropped). Returns 0 or -1. */
int address_domain_normalize(const char *in, char *out, size_t outsz,
                             const char **why);

/* Normalise a window "who" token: "@domain" -> "@domain-normalised",
 * otherwise like address_normalize. */
int address_who_normalize(const char *in, const char *delims, char *out,
                          size_t outsz, const char **why);

/* Pointer to the domain part of a normalised address (after '@'). */
const char *address_domain(const char *norm);

#endif
