/* config_int.h - what the halves of the config module share (config.c:
 * the INI reader and the fixed sections; config_webhook.c: the
 * [webhook NAME] sections). Not for other modules. */
#ifndef UNTILD_CONFIG_INT_H
#define UNTILD_CONFIG_INT_H

#include "untild/config.h"

/* The [webhook NAME] sections being read: config_load makes one per file
 * (dir: the config file's directory, for relative paths). Errors go to e
 * as FILE:LINE. NULL on ENOMEM. */
struct config_wh;
struct config_wh *config_wh_new(struct config *c, struct config_errors *e, const char *file,
                                const char *dir);
void config_wh_free(struct config_wh *w);
/* "[webhook NAME]" on line: the keys that follow go to it (a duplicate or
 * surplus section's keys are still checked, then dropped). */
void config_wh_section(struct config_wh *w, int line, const char *name);
/* "key = value" inside a [webhook] section. */
void config_wh_key(struct config_wh *w, int line, const char *key, const char *value);
/* After the file: url and secret_file present, the url's scheme and host. */
void config_wh_check(struct config_wh *w);
/* The strings of one section. */
void config_webhook_free(struct webhook_cfg *h);

#endif
