/* onboard.h - mail client settings for a rep: a Thunderbird autoconfig
 * file and an Apple configuration profile that point the client's outgoing
 * server at untild, plus the same settings as text to type by hand.
 * `untilctl onboard REP [--host H] [--out DIR]` calls it. */
#ifndef UNTILD_ONBOARD_H
#define UNTILD_ONBOARD_H

struct config;

#define ONBOARD_AUTOCONFIG "config-v1.1.xml"
#define ONBOARD_PROFILE "untild.mobileconfig"

/* Write outdir/config-v1.1.xml and outdir/untild.mobileconfig for rep (an
 * address, "local@domain"). host is the name clients use to reach untild;
 * NULL: the host of the first [smtp] listen address (or [smtp] hostname
 * when that address is a wildcard). Each file is written to a temporary
 * name, fsynced and renamed into place.
 * Returns 0 and *summary (malloc'd, human-readable SMTP settings), or -1
 * with errno set (EINVAL: bad rep or host) and *summary NULL. */
int onboard_write(const struct config *c, const char *rep, const char *host,
                  const char *outdir, char **summary);

#endif
