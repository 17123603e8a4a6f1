/* gate.h - the SMTP gate's decisions: the hooks smtp_server calls.
 * Orders the work so the client's reply is never a lie: held part spooled
 * (fsynced) first, allowed part relayed synchronously, spool rolled back
 * if the relay fails. Command-domain addresses are handled here and never
 * relayed. */
#ifndef UNTILD_GATE_H
#define UNTILD_GATE_H

struct untild;
struct smtp_hooks;

void gate_hooks(struct untild *u, struct smtp_hooks *h);
/* Stop the AUTH and parse worker threads (at shutdown, before the SMTP server is
 * freed; then run loop_run_pending so their verdicts reach the sessions). */
void gate_stop(struct untild *u);

/* Loop thread. Check a rep's user and password as SMTP AUTH does ([smtp]
 * auth: the passwd file on the AUTH workers, or the upstream), under the
 * same failure counts per client address (addr) and per user. Returns 0:
 * done(arg, verdict) runs later on the loop (1 accepted, 0 refused, -1
 * could not be checked; a refusal is counted); GATE_AUTH_LIMITED: refused
 * unchecked, auth_max_failures reached (logged with what, e.g. "HTTP
 * login"); -1: not checked (no [smtp] auth, or out of memory). */
#define GATE_AUTH_LIMITED 1
typedef void (*gate_auth_fn)(void *arg, int verdict);
int gate_check_password(struct untild *u, const char *what, const char *addr, const char *user,
                        const char *pass, gate_auth_fn done, void *arg);

/* The rep for a session: its AUTH user, else [daemon] owner, else NULL. */
struct smtp_session;
const char *gate_rep(const struct untild *u, const struct smtp_session *s);

#endif
