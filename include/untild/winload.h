/* winload.h - build the window index for a reload on a worker thread, so
 * a SIGHUP with a million windows does not stop the loop for seconds.
 *
 * The worker reads and parses the window files (config_load_windows) with
 * when.c in its off-loop mode; zone names it meets that the loop has not
 * resolved yet are resolved on the loop afterwards and the files are read
 * once more (libical's lookup by name is not thread-safe). Back on the
 * loop thread the state database part runs (untild_finish_windows: one
 * query for the windows ended by hand, then the run-time windows), and
 * done() gets the new index. Main thread only, one build at a time. */
#ifndef UNTILD_WINLOAD_H
#define UNTILD_WINLOAD_H

#include "untild/config.h"
#include "untild/daemon.h"

/* c and ix (NULL on ENOMEM) are the callee's; e is freed after it returns. */
typedef void (*winload_done_fn)(struct untild *u, struct config *c,
                                struct windows *ix, struct config_errors *e);

/* Start building for config c (owned by the build until done). Returns 0,
 * or -1 (no thread: c is still the caller's). */
int winload_start(struct untild *u, struct config *c, winload_done_fn done);
/* Is a build running? */
int winload_busy(void);
/* Free a replaced index on a short-lived thread: giving 200 MB back to
 * the system takes tens of milliseconds. Nothing may point into ix. */
void winload_free_later(struct windows *ix);
/* Shutdown: wait for a running build and drop its result. */
void winload_cancel(void);

/* Start-up: read the window files for c on a thread while the caller
 * opens the spool; winload_startup_end joins it, resolves zone names the
 * thread could not (and reads the files again), applies the state
 * database (the store must be open by then) and returns the index (NULL
 * on ENOMEM), errors in *e (an empty list on entry). NULL from begin: no
 * thread; load synchronously (untild_load_windows). */
struct winload_startup;
struct winload_startup *winload_startup_begin(struct untild *u, const struct config *c);
struct windows *winload_startup_end(struct winload_startup *w, struct config_errors *e);

#endif
