/* log.h - one line per event to stderr, with a level; suitable for journald.
 *
 * Levels have fixed meanings (as in Postfix): debug (only with -v), info,
 * warn (something odd, handled), error (an operation failed), fatal (the
 * environment makes it impossible to go on; start-up only). */
#ifndef UNTILD_LOG_H
#define UNTILD_LOG_H

enum log_level { ULOG_DEBUG, ULOG_INFO, ULOG_WARN, ULOG_ERROR, ULOG_FATAL };

void log_set_level(enum log_level min);
enum log_level log_get_level(void);
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(ULOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(ULOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(ULOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(ULOG_ERROR, __VA_ARGS__)
#define log_fatal(...) log_msg(ULOG_FATAL, __VA_ARGS__)

#endif
