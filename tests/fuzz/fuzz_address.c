/* fuzz_address.c - libFuzzer target for address normalisation
 * (address_normalize, address_who_normalize, address_domain_normalize):
 * arbitrary bytes as an address, with and without a sub-address
 * delimiter, into a full-size and a tiny output buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "untild/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    char out[ADDR_MAX], tiny[8];
    const char *why = NULL;
    if (!in)
        return 0;
    memcpy(in, data, size);
    in[size] = '\0';
    if (address_normalize(in, "+", out, sizeof out, &why) == 0) {
        /* A normalised address is a fixed point and has a domain. */
        char again[ADDR_MAX];
        if (!address_domain(out))
            abort();
        if (address_normalize(out, "+", again, sizeof again, &why) == 0 &&
            strcmp(out, again) != 0)
            abort();
    }
    (void)address_normalize(in, "", out, sizeof out, &why);
    (void)address_normalize(in, NULL, tiny, sizeof tiny, &why);
    (void)address_who_normalize(in, "+-", out, sizeof out, &why);
    (void)address_domain_normalize(in, out, sizeof out, &why);
    (void)address_domain_normalize(in, tiny, sizeof tiny, &why);
    free(in);
    return 0;
}
