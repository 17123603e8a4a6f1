/* auth.h - checking a rep's password against a passwd file
 * ("user:crypt-hash" lines, as made by mkpasswd; '#' comments), off the
 * event loop, and counting failures the way Postfix's anvil does. */
#ifndef UNTILD_AUTH_H
#define UNTILD_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* 1 accepted, 0 refused (unknown user or wrong password), -1 file error.
 * An unknown user costs what a known one does: the password is hashed
 * against the file's first hash (or a built-in one), so timing does not
 * tell which users exist. Blocking (crypt is slow by design): call it from
 * a worker, not from the loop. */
int auth_passwd_check(const char *file, const char *user, const char *pass);

/* Worker threads that run auth_passwd_check and report on the loop
 * thread (loop_post), as the holder's writers do. */
struct loop;
struct auth_pool;
typedef void (*auth_done_fn)(void *arg, int verdict);

struct auth_pool *auth_pool_new(struct loop *l, int nthreads);
/* Queue a check; file, user and pass are copied (the copies are wiped).
 * done(arg, verdict) runs later on the loop thread. Returns 0 or -1. */
int auth_pool_submit(struct auth_pool *p, const char *file, const char *user,
                     const char *pass, auth_done_fn done, void *arg);
/* Finish the queued checks (their results are posted to the loop: run
 * loop_run_pending after this), join the threads, free. */
void auth_pool_free(struct auth_pool *p);

/* Failure counting per key (a client address, a user name): at most
 * `max` failures per key within `window_ms`; the table holds at most
 * `cap` keys (the oldest goes first), so its memory is bounded whatever
 * a client sends. */
struct auth_limit;
struct auth_limit *auth_limit_new(size_t cap);
void auth_limit_free(struct auth_limit *a);
/* 1 if key has had max or more failures in the window before now_ms. */
int auth_limit_over(struct auth_limit *a, const char *key, int64_t now_ms,
                    int max, int64_t window_ms);
/* Count one failure for key at now_ms. */
void auth_limit_fail(struct auth_limit *a, const char *key, int64_t now_ms,
                     int64_t window_ms);

#endif
