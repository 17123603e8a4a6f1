/* fuzz_windowline.c - libFuzzer target for one window-file line
 * (window_parse_line), then the parsed window into an index and matched
 * at a few instants (exercises rrule expansion bounds). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "untild/windows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const time_t now = 1783000000;  /* 2026-07-02, fixed: reproducible */
    char *line = malloc(size + 1);
    char err[256];
    struct window w;
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    memset(&w, 0, sizeof w);
    if (window_parse_line(line, (size & 1) ? "Europe/Berlin" : "UTC", "+", now, &w, err,
                          sizeof err) == 0) {
        struct windows *ix = windows_new();
        time_t q;
        (void)window_active(&w, now, &q);
        if (ix) {
            const struct window *stored = windows_add(ix, &w);
            struct window_match m;
            if (stored)
                for (size_t i = 0; i < w.nwho; i++) {
                    (void)windows_match(ix, w.who[i], now, &m);
                    (void)windows_match(ix, w.who[i], now + 86400 * 200, &m);
                }
            windows_free(ix);
        }
        window_free_fields(&w);
    }
    free(line);
    return 0;
}
