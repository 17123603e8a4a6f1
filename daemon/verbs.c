/* verbs.c - the verb table (verbs.h) as data for the texts untilctl and
 * the daemon print; control.c expands the same table into its dispatch.
 *
 * Thread: any (constant data). Diagnostics: none. */
#include <stdio.h>
#include <string.h>
#include "untild/verbs.h"

#define ROW(name, args, who, handler, help) { name, args, who, help },
static const struct verb table[] = { UNTILD_VERBS(ROW) };
#undef ROW

const struct verb *verbs_all(size_t *n)
{
    *n = sizeof table / sizeof table[0];
    return table;
}

void verbs_usage(char *out, size_t outsz)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof table / sizeof table[0] && n < outsz; i++) {
        const struct verb *v = &table[i];
        if (v->who == VERB_TEST)
            continue;
        char line[512];
        int len = snprintf(line, sizeof line, "  %s%s%s", v->name, v->args[0] ? " " : "", v->args);
        if (len < 0)
            continue;
        if (len < 40)
            n += (size_t)snprintf(out + n, outsz - n, "%-40s %s\n", line, v->help);
        else if (n < outsz)
            n += (size_t)snprintf(out + n, outsz - n, "%s\n%-40s %s\n", line, "", v->help);
    }
}

void verbs_groups(char *out, size_t outsz)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof table / sizeof table[0] && n < outsz; i++) {
        const struct verb *v = &table[i];
        size_t w = strcspn(v->name, " ");
        int seen = v->who == VERB_LOCAL || v->who == VERB_TEST;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strncmp(table[j].name, v->name, w) && strcspn(table[j].name, " ") == w;
        if (!seen)
            n += (size_t)snprintf(out + n, outsz - n, "%s%.*s", n ? "|" : "", (int)w, v->name);
    }
}
