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

/* The rep for a session: its AUTH user, else [daemon] owner, else NULL. */
struct smtp_session;
const char *gate_rep(const struct untild *u, const struct smtp_session *s);

#endif
