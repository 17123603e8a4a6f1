/* sysutil.c - small system helpers that several modules need (relay,
 * untilctl, onboard; config and smtp_server for loopback), kept once so
 * they cannot drift apart.
 *
 * Thread: any; no state.
 *
 * Diagnostics: none; errors are returned with errno. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "untild/sysutil.h"

int sysutil_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int sysutil_loopback_host(const char *host)
{
    if (strncmp(host, "127.", 4) == 0) {
        for (const char *s = host + 4; *s; s++)
            if (!isdigit((unsigned char)*s) && *s != '.')
                return 0;
        return 1;
    }
    return strcmp(host, "::1") == 0 || strcasecmp(host, "localhost") == 0 ||
           strcasecmp(host, "localhost.") == 0;
}

int sysutil_loopback_addr(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            return a->sin6_addr.s6_addr[12] == 127;
    }
    return 0;
}

void sysutil_below_loop(void)
{
    /* SCHED_BATCH: a worker woken by the loop (a condition signalled, a
     * job queued) does not preempt it; measured, wake-up preemption was
     * most of the loop's delays during a mass release. No privilege needed
     * for either call. */
    struct sched_param sp = { 0 };
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    /* Five below the loop, wherever the service manager put the process
     * (a unit's Nice=-5 gives the loop -5 and the workers 0). */
    errno = 0;
    int base = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (base == -1 && errno)
        base = 0;
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), base + 5 > 19 ? 19 : base + 5);
}
