/* http_api.h - the HTTP JSON API (issue 14, [http] in untild.conf;
 * docs/openapi.yaml): /api/v1 status, windows, check, held mail, for
 * callers with an API token (tokens.h). libmicrohttpd runs it on its own
 * threads; everything that touches the daemon's state runs on the loop
 * (loop_post), through the control socket's verbs (control_exec_page),
 * so the API decides, authorises and audits exactly as untilctl does. */
#ifndef UNTILD_HTTP_API_H
#define UNTILD_HTTP_API_H

struct untild;
struct http_api;

/* Loop thread, at start-up: listen on [http] listen (HTTPS with
 * tls_cert/tls_key). NULL on failure (logged): the daemon does not start. */
struct http_api *http_api_start(struct untild *u);
/* Loop thread, at shutdown: stop accepting, answer waiting requests 503,
 * join the connection threads. Work still queued on the loop frees itself
 * when run (loop_run_pending). NULL is fine. */
void http_api_stop(struct http_api *a);

/* Any thread. 1 if the [http] settings of a and b differ (they take
 * effect at start only: a reload says so). */
struct config;
int http_api_config_changed(const struct config *a, const struct config *b);

#endif
