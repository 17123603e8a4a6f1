/* control.h - the control socket (Unix domain) that untilctl talks to.
 *
 * Protocol: the client sends its arguments as NUL-terminated strings and
 * one empty string to end them; the daemon answers "<exit-status>\n" and
 * then the text to print, and closes. Peer credentials (SO_PEERCRED) decide
 * who is admin (root, the daemon's own uid, or the admin group) and which
 * rep a local user is (the rep whose address' local part is the user
 * name, or equals it). */
#ifndef UNTILD_CONTROL_H
#define UNTILD_CONTROL_H

#include <stddef.h>

struct untild;
struct control;

/* Bind and listen at "<path>.new" (while the process may still have the
 * privileges the socket's directory needs); nothing is accepted before the
 * loop runs. control_publish renames it to path: call it once the daemon
 * is ready, so the socket's presence means "ready". control_free removes
 * only the socket this daemon made. */
struct control *control_new(struct untild *u, const char *path);
int control_publish(struct control *c);
void control_free(struct control *c);

/* Run one request (exposed for tests and the fuzzer): argv with argc
 * words, as admin or as rep. Returns the exit status; *out is malloc'd. */
struct strbuf;
int control_exec(struct untild *u, int argc, char **argv, int admin,
                 const char *rep, char **out, size_t *outlen);

/* The same, and for a listing with more entries than its page (held list,
 * window list: --limit N, --after ID), the cursor for the next page (the
 * last id listed) in next; "" when the listing is complete. The socket
 * answer carries it as "<exit> next=<id>\n". */
#define NEXT_MAX 64
int control_exec_page(struct untild *u, int argc, char **argv, int admin,
                      const char *rep, char **out, size_t *outlen,
                      char next[NEXT_MAX]);

/* The --json shapes of a window and of a held message (window list,
 * held list/show; the HTTP API may answer the same): a json-c object to
 * json_object_put, NULL on ENOMEM. Text from mail is cleaned (json.h). */
struct json_object;
struct window;
struct release_view;
struct json_object *control_window_json(const struct untild *u, const struct window *w);
struct json_object *control_held_json(const struct untild *u, const struct release_view *v);

#endif
