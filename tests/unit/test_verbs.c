/* test_verbs.c - the verb table (include/untild/verbs.h) and the man page
 * agree: every verb in the table has its entry under COMMANDS in
 * man/untilctl.1, and every entry there is a verb of the table (issue 16:
 * each untilctl verb is defined once). Also the usage texts made from it.
 * Run from the source tree's root (make check does). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "untild/verbs.h"

#define MAN "man/untilctl.1"
#define MAX_ENTRIES 64

/* The command names of the man page's COMMANDS section: the text of the
 * line after each .TP, up to the first argument (".BI \"window add \" who"
 * gives "window add", ".B status" gives "status"). */
static size_t man_verbs(char names[][64], size_t max)
{
    FILE *f = fopen(MAN, "r");
    ck_assert_msg(f != NULL, "cannot open %s (run from the source root)", MAN);
    char line[512];
    int in = 0, after_tp = 0;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, ".SH", 3)) {
            in = strstr(line, "COMMANDS") != NULL;
            continue;
        }
        if (!in)
            continue;
        if (!strcmp(line, ".TP")) {
            after_tp = 1;
            continue;
        }
        if (!after_tp)
            continue;
        after_tp = 0;
        const char *p = line + strcspn(line, " ");   /* past .B / .BI / .BR */
        p += strspn(p, " ");
        char name[64];
        if (*p == '"') {
            size_t k = strcspn(p + 1, "\"");
            snprintf(name, sizeof name, "%.*s", (int)k, p + 1);
        } else {
            snprintf(name, sizeof name, "%s", p);
        }
        size_t len = strlen(name);
        while (len && name[len - 1] == ' ')
            name[--len] = '\0';
        ck_assert_uint_lt(n, max);
        snprintf(names[n++], 64, "%s", name);
    }
    fclose(f);
    return n;
}

START_TEST(test_every_verb_in_the_man_page_and_back)
{
    char man[MAX_ENTRIES][64];
    size_t nman = man_verbs(man, MAX_ENTRIES), n;
    const struct verb *v = verbs_all(&n);
    ck_assert_uint_gt(n, 0);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < nman && strcmp(man[j], v[i].name))
            j++;
        ck_assert_msg(j < nman, "verb \"%s\" is not under COMMANDS in %s", v[i].name, MAN);
    }
    for (size_t j = 0; j < nman; j++) {
        size_t i = 0;
        while (i < n && strcmp(man[j], v[i].name))
            i++;
        ck_assert_msg(i < n, "%s names \"%s\", which is not in verbs.h", MAN, man[j]);
    }
}
END_TEST

START_TEST(test_usage_texts_from_the_table)
{
    char groups[128], usage[4096];
    verbs_groups(groups, sizeof groups);
    ck_assert_str_eq(groups, "window|check|held|report|followups|cadence|status|token|reload");
    verbs_usage(usage, sizeof usage);
    size_t n;
    const struct verb *v = verbs_all(&n);
    for (size_t i = 0; i < n; i++) {
        char line[600];
        snprintf(line, sizeof line, "  %s%s%s", v[i].name, v[i].args[0] ? " " : "", v[i].args);
        if (v[i].who == VERB_TEST)
            ck_assert_ptr_null(strstr(usage, line));
        else
            ck_assert_msg(strstr(usage, line) && strstr(usage, v[i].help), "usage lacks %s", v[i].name);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("verbs");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_every_verb_in_the_man_page_and_back);
    tcase_add_test(tc, test_usage_texts_from_the_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
