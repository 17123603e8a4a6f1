/* fuzz_config.c - libFuzzer target for untild.conf parsing: the input is
 * written to a temporary file and loaded with config_load. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "untild/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void cleanup(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/untild.conf", dir);
    unlink(p);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    FILE *f;
    struct config_errors e = { 0 };
    struct config *c;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzzcfg.XXXXXX"
                                                                     : "/tmp/fuzzcfg.XXXXXX");
        if (!mkdtemp(dir))
            abort();
        atexit(cleanup);
    }
    snprintf(path, sizeof path, "%s/untild.conf", dir);
    if (!(f = fopen(path, "w")))
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    if (fclose(f) != 0)
        abort();
    c = config_load(path, &e);
    /* Either a config or at least one error line, never neither. */
    if (!c && e.n == 0)
        abort();
    config_errors_free(&e);
    config_free(c);
    return 0;
}
