/* bench_windows.c - load 1,000,000 window-file lines into the index and
 * look up 1,000,000 random recipients.
 *
 * Lines are generated in memory in batches (90% addresses over 50,000
 * domains, 10% domain windows, some with reasons) so the generator's own
 * buffers do not inflate the peak RSS; only window_parse_line + windows_add
 * are timed. Prints one "name value" line per figure; exits non-zero if a
 * target (load < 2 s, p99 < 2 us, peak RSS < 200 MB) is missed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "untild/when.h"
#include "untild/windows.h"

#define N_WINDOWS 1000000
#define N_LOOKUPS 1000000
#define N_DOMAINS 50000
#define BATCH 10000
#define LINE_MAX_B 160

#define NOW ((time_t)1767225600) /* 2026-01-01T00:00:00Z */
#define AT ((time_t)1780000000)  /* 2026-05-28: inside most windows */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Window i's address (i % 10 != 0) uses the domain derived from i, so the
 * lookup phase can regenerate hits without keeping the lines. */
static unsigned dom_of(unsigned i)
{
    return (unsigned)((i * 2654435761u) % N_DOMAINS);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int gen_line(unsigned i, char *buf, size_t sz)
{
    static const char *const actions[] = {"", " action=hold", " action=flag",
                                          " action=reject"};
    int month = 6 + (int)(rnd() % 18);
    int year = 2026 + (month - 1) / 12;
    month = (month - 1) % 12 + 1;
    int day = 1 + (int)(rnd() % 28);
    const char *act = actions[rnd() % 4];
    char reason[64] = "";
    if (rnd() % 5 == 0)
        snprintf(reason, sizeof reason, " reason=\"customer asked for a pause #%u\"", i);
    if (i % 10 == 0)
        return snprintf(buf, sz, "@dom%u.example  %04d-%02d-%02d%s%s",
                        (unsigned)(rnd() % N_DOMAINS), year, month, day, act,
                        reason);
    return snprintf(buf, sz, "user%u@dom%u.example  %04d-%02d-%02d%s%s", i,
                    dom_of(i), year, month, day, act, reason);
}

/* Latencies go into a 1 ns histogram (exact percentiles, like sorting the
 * samples, without a 4 MB sample array inflating the peak RSS). */
#define HIST_NS 100000

static double percentile_us(const uint32_t *hist, uint64_t n, double q)
{
    uint64_t want = (uint64_t)((double)n * q), seen = 0;
    for (uint32_t i = 0; i <= HIST_NS; i++) {
        seen += hist[i];
        if (seen > want)
            return i / 1000.0;
    }
    return HIST_NS / 1000.0;
}

int main(void)
{
    struct windows *ix = windows_new();
    char (*lines)[LINE_MAX_B] = malloc((size_t)BATCH * LINE_MAX_B);
    uint32_t *hist = calloc(HIST_NS + 1, sizeof *hist);
    struct when_cache wc = {0};
    if (!ix || !lines || !hist) {
        fprintf(stderr, "bench_windows: out of memory\n");
        return 1;
    }

    double load = 0, load_cpu = 0;
    char err[256];
    for (unsigned base = 0; base < N_WINDOWS; base += BATCH) {
        for (unsigned k = 0; k < BATCH; k++)
            gen_line(base + k, lines[k], LINE_MAX_B);
        double t0 = now_s(), c0 = cpu_s();
        for (unsigned k = 0; k < BATCH; k++) {
            struct window w;
            int rc = window_parse_line_cached(&wc, lines[k], "Europe/Berlin",
                                              "+", NOW, &w, err, sizeof err);
            if (rc != 0) {
                fprintf(stderr, "bench_windows: line %u: %s: %s\n", base + k,
                        lines[k], err);
                return 1;
            }
            w.file = "/etc/untild/windows.d/bench.windows";
            w.line = (int)(base + k + 1);
            if (!windows_add(ix, &w)) {
                fprintf(stderr, "bench_windows: windows_add failed\n");
                return 1;
            }
            window_free_fields(&w);
        }
        load += now_s() - t0;
        load_cpu += cpu_s() - c0;
    }
    free(lines);

    /* Lookups: half addresses that have a window, half that do not (at
     * domains that mostly exist, so the parent-domain walk is exercised). */
    char (*addrs)[64] = malloc((size_t)4096 * 64);
    if (!addrs)
        return 1;
    unsigned quiet = 0;
    double total = 0;
    for (unsigned base = 0; base < N_LOOKUPS; base += 4096) {
        for (unsigned k = 0; k < 4096; k++) {
            unsigned i = (unsigned)(rnd() % N_WINDOWS);
            if (k % 2 == 0 && i % 10 != 0)
                snprintf(addrs[k], 64, "user%u@dom%u.example", i, dom_of(i));
            else
                snprintf(addrs[k], 64, "nobody%u@dom%u.example", i,
                         (unsigned)(rnd() % (N_DOMAINS * 2)));
        }
        for (unsigned k = 0; k < 4096 && base + k < N_LOOKUPS; k++) {
            struct window_match m;
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            quiet += (unsigned)windows_match(ix, addrs[k], AT, &m);
            clock_gettime(CLOCK_MONOTONIC, &b);
            int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 +
                         (b.tv_nsec - a.tv_nsec);
            hist[ns < HIST_NS ? ns : HIST_NS]++;
            total += (double)ns / 1e9;
        }
    }
    free(addrs);
    double p50 = percentile_us(hist, N_LOOKUPS, 0.50);
    double p99 = percentile_us(hist, N_LOOKUPS, 0.99);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;

    printf("windows.count %zu\n", windows_count(ix));
    printf("windows.load_s %.3f\n", load);
    printf("windows.load_cpu_s %.3f\n", load_cpu);
    printf("windows.load_per_s %.0f\n", N_WINDOWS / load);
    printf("windows.lookups_per_s %.0f\n", N_LOOKUPS / total);
    printf("windows.lookup_p50_us %.3f\n", p50);
    printf("windows.lookup_p99_us %.3f\n", p99);
    printf("windows.lookup_quiet_fraction %.3f\n", (double)quiet / N_LOOKUPS);
    printf("windows.peak_rss_mb %.1f\n", rss_mb);
    windows_free(ix);
    free(hist);

    int ok = load < 2.0 && p99 < 2.0 && rss_mb < 200.0;
    if (!ok)
        fprintf(stderr, "bench_windows: target missed (load < 2 s, p99 < 2 us, "
                        "RSS < 200 MB)\n");
    return ok ? 0 : 1;
}
