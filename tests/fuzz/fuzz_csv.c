/* fuzz_csv.c - libFuzzer target for the CRM CSV parser (csv_import.c):
 * any bytes, and every row it returns holds its invariants (a line
 * number, email and until present, fields within CSV_FIELD_MAX). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "untild/csv_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct csv_import c;
    if (csv_import_parse((const char *)data, size, &c) < 0)
        return 0;
    if (c.nrows > CSV_MAX_ROWS || c.nerrs > CSV_MAX_ERRORS || c.nerrs > c.nerrs_total)
        abort();
    for (size_t i = 0; i < c.nrows; i++) {
        const struct csv_row *r = &c.rows[i];
        if (r->line < 1 || !r->email || !r->until || strlen(r->email) > CSV_FIELD_MAX ||
            (r->reason && strlen(r->reason) > CSV_FIELD_MAX))
            abort();
    }
    csv_import_free(&c);
    return 0;
}
