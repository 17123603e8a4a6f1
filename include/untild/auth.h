/* auth.h - checking a rep's password against a passwd file
 * ("user:crypt-hash" lines, as made by mkpasswd; '#' comments). */
#ifndef UNTILD_AUTH_H
#define UNTILD_AUTH_H

/* 1 accepted, 0 refused (unknown user or wrong password), -1 file error. */
int auth_passwd_check(const char *file, const char *user, const char *pass);

#endif
