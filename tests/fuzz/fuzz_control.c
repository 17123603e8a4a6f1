/* fuzz_control.c - libFuzzer target for the control protocol's command
 * side (control_exec): the input is split on NUL bytes into argv and run
 * once as a rep and once as admin, against a small daemon context: an
 * empty window index, a SQLite store and a spool in a temporary directory
 * (under /dev/shm when there is one: fsync is cheap there), the release
 * scheduler, and the test clock. Windows added by one input are removed
 * again, so every input starts from the same state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "untild/config.h"
#include "untild/control.h"
#include "untild/daemon.h"
#include "untild/log.h"
#include "untild/loop.h"
#include "untild/release.h"
#include "untild/spool.h"
#include "untild/store.h"
#include "untild/windows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WORDS 64

static struct untild u;
static char dir[64];

static void cleanup(void)
{
    char cmd[128];
    release_free(u.release);
    spool_close(u.spool);
    store_close(u.store);
    windows_free(u.ix);
    loop_free(u.loop);
    config_free(u.cfg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_control: cannot remove %s\n", dir);
}

static void init(void)
{
    char path[128];
    FILE *f;
    struct config_errors e = { 0 };
    log_set_level(ULOG_FATAL);
    snprintf(dir, sizeof dir, "%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzzctl.XXXXXX"
                                                                 : "/tmp/fuzzctl.XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/untild.conf", dir);
    if (!(f = fopen(path, "w")))
        abort();
    fprintf(f, "[daemon]\nstate_dir = %s/state\ncontrol_socket = %s/ctl.sock\n"
               "timezone = Europe/Berlin\nowner = rep@example.com\n"
               "[smtp]\nlisten = 127.0.0.1:1\nauth = none\n"
               "[upstream]\nmaildir = %s/outbox\n[policy]\nrelease_time = 09:00\n", dir, dir, dir);
    if (fclose(f) != 0)
        abort();
    if (!(u.cfg = config_load(path, &e)))
        abort();
    config_errors_free(&e);
    untild_policy_cfg(u.cfg, &u.pcfg);
    snprintf(path, sizeof path, "%s/state", dir);
    if (mkdir(path, 0700) < 0)
        abort();
    u.test_clock = 1;
    u.clock_fixed = 1783000000;
    if (!(u.loop = loop_new()) || !(u.store = store_open(path)) ||
        !(u.spool = spool_open(path)) || !(u.ix = windows_new()) ||
        !(u.release = release_new(&u)))
        abort();
    atexit(cleanup);
}

static int collect(const struct window *w, void *arg)
{
    char (*ids)[WINDOW_ID_MAX] = arg;
    for (int i = 0; i < 256; i++)
        if (!ids[i][0]) {
            snprintf(ids[i], WINDOW_ID_MAX, "%s", w->id);
            return 0;
        }
    return 1;
}

/* Forget the windows this input added (index and store). */
static void reset(void)
{
    static char ids[256][WINDOW_ID_MAX];
    while (windows_count(u.ix) > 0) {
        memset(ids, 0, sizeof ids);
        windows_foreach(u.ix, collect, ids);
        for (int i = 0; i < 256 && ids[i][0]; i++) {
            (void)store_window_delete(u.store, ids[i]);
            (void)windows_remove(u.ix, ids[i]);
        }
    }
    u.clock_fixed = 1783000000;
    u.clock_offset = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf, *argv[MAX_WORDS];
    int argc = 0;
    if (!u.loop)
        init();
    if (!(buf = malloc(size + 1)))
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (size_t i = 0; i <= size && argc < MAX_WORDS; ) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    /* A trailing NUL ends the last word; it is not an extra empty one. */
    if (argc > 1 && size > 0 && data[size - 1] == '\0')
        argc--;
    for (int admin = 0; admin <= 1; admin++) {
        char *out = NULL;
        size_t outlen = 0;
        int rc = control_exec(&u, argc, argv, admin, admin ? NULL : "rep@example.com", &out,
                              &outlen);
        if (!out || strlen(out) != outlen || rc < 0 || rc > 255)
            abort();
        free(out);
    }
    reset();
    free(buf);
    return 0;
}
