/* secret.h - reading a password from a file or a command (msmtp's
 * passwordeval): the first line, bounded, never logged. One place for the
 * relay, the IMAP and the CalDAV watchers. */
#ifndef UNTILD_SECRET_H
#define UNTILD_SECRET_H

#define SECRET_MAX 4096

/* The first line of file, or of command's output (command must exit 0).
 * Exactly one of file/command is used (file first). who names the caller
 * in log lines ("relay", "imap[rep@x]"). Returns a malloc'd string (free
 * with secret_free), or NULL (logged). */
char *secret_load(const char *file, const char *command, const char *who);

/* The same for an optional password: none configured (file and command
 * both NULL) returns NULL with *failed 0; a configured one that cannot be
 * read returns NULL with *failed 1 (logged). */
char *secret_load_optional(const char *file, const char *command, const char *who, int *failed);

/* Wipe and free. */
void secret_free(char *s);

#endif
