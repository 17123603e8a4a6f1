/* fnv.h - FNV-1a over bytes, strings and integers: content hashes (stable
 * window ids, the memo of accepted rules). Not for hash tables keyed by
 * user input without a finishing mixer (windows.c key_hash has one). */
#ifndef UNTILD_FNV_H
#define UNTILD_FNV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* A field and its terminating NUL, so "ab","c" and "a","bc" differ. NULL
 * hashes differently from "". */
static inline uint64_t fnv_str(uint64_t h, const char *s)
{
    if (!s)
        return fnv_bytes(h, "\1", 1);
    return fnv_bytes(h, s, strlen(s) + 1);
}

static inline uint64_t fnv_i64(uint64_t h, int64_t v)
{
    return fnv_bytes(h, &v, sizeof v);
}

/* For hash tables keyed by addresses (user input): FNV-1a of the
 * lower-cased string, finished with a mixer (FNV's low bits are weak for
 * keys that differ at the end, "c1@", "c2@"). */
static inline uint64_t fnv_key_ci(const char *k)
{
    uint64_t h = FNV_OFFSET;
    for (; *k; k++) {
        unsigned char c = (unsigned char)*k;
        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32 : c)) * FNV_PRIME;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

#endif
