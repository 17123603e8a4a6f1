/* smtp_dsn.h - one SMTP transaction that carries DSN parameters (RFC 3461)
 * to the upstream.
 *
 * libcurl 7.88 builds MAIL FROM / RCPT TO itself and cannot add
 * parameters, so for messages whose client asked for delivery status
 * notifications the transaction is spoken here: libcurl still does the
 * connection, TLS, EHLO and AUTH (CURLOPT_CONNECT_ONLY), and this module
 * sends MAIL (RET, ENVID), RCPT (NOTIFY, ORCPT), DATA with dot-stuffing,
 * and QUIT over curl_easy_send / curl_easy_recv. Only DSN parameters are
 * passed, and only when the upstream's EHLO offered DSN. */
#ifndef UNTILD_SMTP_DSN_H
#define UNTILD_SMTP_DSN_H

#include <stddef.h>
#include <curl/curl.h>

/* Does this parameter string hold a DSN parameter? */
int smtp_dsn_wanted(const char *params);

/* Keep only the DSN keywords of params (for MAIL: RET, ENVID; for RCPT:
 * NOTIFY, ORCPT) in out (" KEY=VALUE..." with a leading space, or "").
 * Values with characters outside xtext's printable range are dropped. */
void smtp_dsn_filter(const char *params, int rcpt, char *out, size_t outsz);

/* Is this reply line (ll octets, its CRLF or LF included) the last of its
 * reply: "NNN text" or "NNN" alone (RFC 5321 4.2: the text is optional),
 * not a continuation "NNN-text"? */
int smtp_dsn_last_line(const char *line, size_t ll);

struct relay_job;
struct relay_result;

/* Run the transaction on h, an easy handle already set up (URL, TLS,
 * credentials, timeouts) but not performed. timeout_s bounds each wait.
 * Fills res like the libcurl path does: ok, code, text, and rcpt_codes[i]
 * for each RCPT answered (the caller allocated job->nrcpts entries). The
 * connection is never reused: the caller cleans up h. */
void smtp_dsn_send(CURL *h, const struct relay_job *job, long timeout_s,
                   struct relay_result *res);

#endif
