/* sysutil.h - small system helpers that several modules need, kept once:
 * writing a whole buffer to a descriptor, and what counts as loopback. */
#ifndef UNTILD_SYSUTIL_H
#define UNTILD_SYSUTIL_H

#include <stddef.h>
#include <sys/socket.h>

/* Any thread. Write all n bytes of p to fd, retrying short writes and
 * EINTR. Returns 0, or -1 with errno (EIO if write returned 0). */
int sysutil_write_all(int fd, const void *p, size_t n);

/* Any thread. A host as written in the configuration: 127.x (digits and
 * dots only), ::1, localhost or localhost. (names are not resolved). */
int sysutil_loopback_host(const char *host);

/* Any thread. A peer address: 127.0.0.0/8, ::1 or ::ffff:127.x. */
int sysutil_loopback_addr(const struct sockaddr_storage *ss);

/* Calling thread: run below the event loop (SCHED_BATCH: never preempts
 * the loop on wake-up; nice +5; neither needs privilege), so on a busy
 * machine the loop, which answers every client, gets the CPU before the
 * workers that feed it. Every worker thread calls it first. */
void sysutil_below_loop(void);

#endif
