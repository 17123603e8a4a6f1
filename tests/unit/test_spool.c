/* test_spool.c - the durable held queue: round trips, escaping, state
 * changes, crash recovery and the write-failure seam. */
#include "untild/spool.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static int rm_cb(const char *p, const struct stat *sb, int type, struct FTW *f)
{
    (void)sb; (void)type; (void)f;
    return remove(p);
}

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_spool.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char *path(const char *sub, const char *id)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/spool/%s/%s", tmpdir, sub, id);
    return p;
}

static int exists(const char *sub, const char *id)
{
    struct stat st;
    return stat(path(sub, id), &st) == 0;
}

static size_t count_dir(const char *sub)
{
    char p[512];
    DIR *d;
    struct dirent *de;
    size_t n = 0;
    snprintf(p, sizeof p, "%s/spool/%s", tmpdir, sub);
    d = opendir(p);
    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void fill_meta(struct spool_meta *m, struct spool_rcpt *r)
{
    memset(m, 0, sizeof *m);
    memset(r, 0, 2 * sizeof *r);
    m->rep = "rep@example.com";
    m->mail_from = "rep@example.com";
    m->mail_params = "BODY=8BITMIME SIZE=100";
    r[0].addr = "Bob@Acme.COM";
    r[0].norm = "bob@acme.com";
    r[0].params = "NOTIFY=SUCCESS,FAILURE";
    r[0].state = RCPT_HELD;
    r[0].window_id = "w7";
    r[0].reason = "renewal talks % paused";
    r[1].addr = "-";               /* literal "-" must not read back as NULL */
    r[1].norm = "";                /* empty must not read back as NULL */
    r[1].params = NULL;
    r[1].state = RCPT_FAILED;
    r[1].window_id = NULL;
    r[1].reason = NULL;
    m->rcpts = r;
    m->nrcpts = 2;
    m->created = 1790000000;
    m->hold_until = 0;
    m->quiet_until = 1795000000;
    m->subject = "Offer\r\nBcc: evil@x\\y%41";
    m->message_id = "<abc@example.com>";
    m->ical_uid = NULL;
    m->ical_dtstart = -5;
    m->ical_method = 2;
    m->ical_recurrence_id = "20270803T070000Z";
    m->ical_last = -1;              /* open-ended series */
    m->attempts = 3;
    m->next_attempt = 1790000500;
    m->last_error = "451 4.3.0 try\nlater";
}

static const char body[] = "From: a\r\n\r\n.leading dot\r\n\0nul\xff\xe9t\xe9\r\n.\r\n";
#define BODYLEN (sizeof body - 1)

static void check_meta(const struct spool_meta *g, const struct spool_meta *w)
{
    size_t i;
    ck_assert_str_eq(g->id, w->id);
    ck_assert_str_eq(g->rep, w->rep);
    ck_assert_str_eq(g->mail_from, w->mail_from);
    ck_assert_str_eq(g->mail_params, w->mail_params);
    ck_assert_int_eq(g->created, w->created);
    ck_assert_int_eq(g->hold_until, w->hold_until);
    ck_assert_int_eq(g->quiet_until, w->quiet_until);
    ck_assert_str_eq(g->subject, w->subject);
    ck_assert_str_eq(g->message_id, w->message_id);
    ck_assert_ptr_null(g->ical_uid);
    ck_assert_int_eq(g->ical_dtstart, w->ical_dtstart);
    ck_assert_int_eq(g->ical_method, w->ical_method);
    ck_assert_str_eq(g->ical_recurrence_id, w->ical_recurrence_id);
    ck_assert_int_eq(g->ical_last, w->ical_last);
    ck_assert_uint_eq(g->size, w->size);
    ck_assert_int_eq(g->attempts, w->attempts);
    ck_assert_int_eq(g->next_attempt, w->next_attempt);
    ck_assert_str_eq(g->last_error, w->last_error);
    ck_assert_uint_eq(g->nrcpts, w->nrcpts);
    for (i = 0; i < g->nrcpts; i++) {
        const struct spool_rcpt *a = &g->rcpts[i], *b = &w->rcpts[i];
        ck_assert_int_eq(a->state, b->state);
        ck_assert_str_eq(a->addr, b->addr);
        ck_assert_str_eq(a->norm, b->norm);
        if (b->params) ck_assert_str_eq(a->params, b->params);
        else ck_assert_ptr_null(a->params);
        if (b->window_id) ck_assert_str_eq(a->window_id, b->window_id);
        else ck_assert_ptr_null(a->window_id);
        if (b->reason) ck_assert_str_eq(a->reason, b->reason);
        else ck_assert_ptr_null(a->reason);
    }
}

/* Read the raw file and return its header part (up to the blank line). */
static char *raw_file(const char *sub, const char *id, size_t *len)
{
    FILE *f = fopen(path(sub, id), "rb");
    char *b;
    long n;
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

START_TEST(hold_read_roundtrip)
{
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m, g;
    struct spool_rcpt r[2];
    char *b = NULL;
    size_t len = 0;
    ck_assert_ptr_nonnull(s);
    fill_meta(&m, r);
    ck_assert_int_eq(spool_hold(s, &m, body, BODYLEN), 0);
    ck_assert_int_ne(m.id[0], 0);
    ck_assert_uint_eq(m.size, BODYLEN);
    ck_assert(exists("held", m.id));
    ck_assert_uint_eq(count_dir("incoming"), 0);

    ck_assert_int_eq(spool_read(s, m.id, &g, &b, &len), 0);
    ck_assert_uint_eq(len, BODYLEN);
    ck_assert_mem_eq(b, body, BODYLEN);
    check_meta(&g, &m);
    spool_meta_free(&g);
    free(b);

    /* body only / meta only */
    ck_assert_int_eq(spool_read(s, m.id, NULL, &b, &len), 0);
    ck_assert_mem_eq(b, body, BODYLEN);
    free(b);
    ck_assert_int_eq(spool_read(s, m.id, &g, NULL, NULL), 0);
    check_meta(&g, &m);
    spool_meta_free(&g);

    /* same id twice is refused, unknown and hostile ids are not found */
    ck_assert_int_eq(spool_hold(s, &m, body, BODYLEN), -1);
    ck_assert_int_eq(errno, EEXIST);
    ck_assert_int_eq(spool_read(s, "nosuchid", &g, NULL, NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(spool_read(s, "../held/x", &g, NULL, NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    spool_close(s);

    /* survives a reopen, listed with its metadata */
    s = spool_open(tmpdir);
    ck_assert_ptr_nonnull(s);
    {
        struct spool_meta *list;
        size_t n;
        ck_assert_int_eq(spool_list(s, &list, &n), 0);
        ck_assert_uint_eq(n, 1);
        check_meta(&list[0], &m);
        spool_meta_free(&list[0]);
        free(list);
    }
    ck_assert_uint_eq(count_dir("corrupt"), 0);
    spool_close(s);
}
END_TEST

START_TEST(escaping_on_disk)
{
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m;
    struct spool_rcpt r[2];
    char *raw, *hdr_end, *p;
    size_t len, lines = 0;
    ck_assert_ptr_nonnull(s);
    fill_meta(&m, r);
    ck_assert_int_eq(spool_hold(s, &m, body, BODYLEN), 0);
    raw = raw_file("held", m.id, &len);
    ck_assert(strncmp(raw, "untild-spool 1\n", 15) == 0);
    hdr_end = strstr(raw, "\n\n");
    ck_assert_ptr_nonnull(hdr_end);
    *hdr_end = '\0';
    ck_assert_ptr_null(strchr(raw, '\r'));
    ck_assert_ptr_nonnull(strstr(raw, "\nsubject: Offer%0D%0ABcc: evil@x\\y%2541\n"));
    ck_assert_ptr_nonnull(strstr(raw, "\nlast-error: 451 4.3.0 try%0Alater\n"));
    ck_assert_ptr_nonnull(strstr(raw,
        "\nrcpt: held Bob@Acme.COM bob@acme.com w7 NOTIFY=SUCCESS,FAILURE "
        "renewal%20talks%20%25%20paused\n"));
    ck_assert_ptr_nonnull(strstr(raw, "\nrcpt: failed %2D %00 - - -"));
    for (p = raw; *p; p++)
        lines += *p == '\n';
    /* magic + 20 scalar keys (ical-uid, released-by/-reason absent) + 2
     * rcpt lines, each one line */
    ck_assert_uint_eq(lines, 1 + 21 + 2 - 1);
    ck_assert_ptr_nonnull(strstr(raw, "\nical-recurrence-id: 20270803T070000Z\n"));
    ck_assert_ptr_nonnull(strstr(raw, "\nical-last: -1\n"));
    /* body verbatim after the blank line, then the end record */
    ck_assert_mem_eq(hdr_end + 2, body, BODYLEN);
    {
        char want[64];
        snprintf(want, sizeof want, "\nend %s\n", m.id);
        ck_assert_uint_eq(len, (size_t)(hdr_end + 2 - raw) + BODYLEN + strlen(want));
        ck_assert_mem_eq(hdr_end + 2 + BODYLEN, want, strlen(want));
    }
    free(raw);
    {
        struct stat st;
        ck_assert_int_eq(stat(path("held", m.id), &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0600);
        ck_assert_int_eq(stat(path("held", ""), &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0700);
    }
    spool_close(s);
}
END_TEST

START_TEST(update_keeps_body)
{
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m, g;
    struct spool_rcpt r[2];
    char *b;
    size_t len;
    static char big[200000];
    size_t i;
    ck_assert_ptr_nonnull(s);
    for (i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7 + (i >> 8));
    fill_meta(&m, r);
    ck_assert_int_eq(spool_hold(s, &m, big, sizeof big), 0);
    m.attempts = 4;
    m.last_error = NULL;
    m.subject = "new subject";
    m.size = 1;  /* ignored: the body stays the file's */
    r[0].state = RCPT_DONE;
    ck_assert_int_eq(spool_update(s, &m), 0);
    m.size = sizeof big;
    ck_assert_int_eq(spool_read(s, m.id, &g, &b, &len), 0);
    ck_assert_uint_eq(len, sizeof big);
    ck_assert_mem_eq(b, big, sizeof big);
    ck_assert_int_eq(g.attempts, 4);
    ck_assert_ptr_null(g.last_error);
    ck_assert_str_eq(g.subject, "new subject");
    ck_assert_int_eq(g.rcpts[0].state, RCPT_DONE);
    spool_meta_free(&g);
    free(b);
    ck_assert_uint_eq(count_dir("incoming"), 0);

    /* update while active: the file stays in held/ (active is a state in
     * memory: no rename on the loop) */
    ck_assert_int_eq(spool_activate(s, m.id), 0);
    m.attempts = 5;
    ck_assert_int_eq(spool_update(s, &m), 0);
    ck_assert(!exists("active", m.id));
    ck_assert(exists("held", m.id));
    ck_assert_int_eq(spool_read(s, m.id, &g, NULL, NULL), 0);
    ck_assert_int_eq(g.attempts, 5);
    spool_meta_free(&g);

    /* failure in the middle of copying the body: old file intact */
    ck_assert_int_eq(spool_deactivate(s, m.id), 0);
    spool_fail_after(s, 2, EIO);
    m.attempts = 6;
    ck_assert_int_eq(spool_update(s, &m), -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_uint_eq(count_dir("incoming"), 0);
    ck_assert_int_eq(spool_read(s, m.id, &g, &b, &len), 0);
    ck_assert_int_eq(g.attempts, 5);
    ck_assert_mem_eq(b, big, sizeof big);
    spool_meta_free(&g);
    free(b);

    /* unknown id */
    strcpy(m.id, "zzzz");
    ck_assert_int_eq(spool_update(s, &m), -1);
    ck_assert_int_eq(errno, ENOENT);
    spool_close(s);
}
END_TEST

START_TEST(lazy_removal)
{
    /* Lazy removals leave the index at once; the files go on the spool's
     * sync thread (never an unlink or fsync on the loop), by spool_close
     * at the latest. */
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m1, m2, *list;
    struct spool_rcpt r1[2], r2[2];
    size_t n;
    ck_assert_ptr_nonnull(s);
    fill_meta(&m1, r1);
    fill_meta(&m2, r2);
    ck_assert_int_eq(spool_hold(s, &m1, "x", 1), 0);
    ck_assert_int_eq(spool_hold(s, &m2, "y", 1), 0);
    ck_assert_int_eq(spool_activate(s, m1.id), 0);
    ck_assert_int_eq(spool_remove_lazy(s, m1.id), 0);
    ck_assert_int_eq(spool_remove_lazy(s, m2.id), 0);
    ck_assert_int_eq(spool_read(s, m1.id, NULL, NULL, NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(spool_list(s, &list, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(spool_sync_removals(s), 0);
    spool_close(s);
    ck_assert(!exists("held", m1.id));
    ck_assert(!exists("held", m2.id));
    ck_assert_uint_eq(count_dir("held"), 0);
}
END_TEST

START_TEST(states)
{
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m, *list;
    struct spool_rcpt r[2];
    size_t n;
    char *b;
    size_t len;
    ck_assert_ptr_nonnull(s);
    fill_meta(&m, r);
    ck_assert_int_eq(spool_hold(s, &m, "x", 1), 0);
    ck_assert_int_eq(spool_activate(s, m.id), 0);
    ck_assert(!exists("active", m.id));             /* nothing moves on disk */
    ck_assert(exists("held", m.id));
    ck_assert_int_eq(spool_activate(s, m.id), -1);  /* not held any more */
    ck_assert_int_eq(spool_list(s, &list, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(spool_read(s, m.id, NULL, &b, &len), 0);  /* readable while active */
    ck_assert_uint_eq(len, 1);
    free(b);
    ck_assert_int_eq(spool_deactivate(s, m.id), 0);
    ck_assert(exists("held", m.id));
    ck_assert(!exists("active", m.id));
    ck_assert_int_eq(spool_deactivate(s, m.id), -1);
    ck_assert_int_eq(spool_remove(s, m.id), 0);
    ck_assert(!exists("held", m.id));
    ck_assert_int_eq(spool_remove(s, m.id), -1);
    ck_assert_int_eq(errno, ENOENT);

    /* remove from active; null sender and empty subject read back as "" */
    memset(m.id, 0, sizeof m.id);
    m.mail_from = "";
    m.subject = "";
    m.rep = NULL;
    ck_assert_int_eq(spool_hold(s, &m, "y", 1), 0);
    {
        struct spool_meta g;
        ck_assert_int_eq(spool_read(s, m.id, &g, NULL, NULL), 0);
        ck_assert_str_eq(g.mail_from, "");
        ck_assert_str_eq(g.subject, "");
        ck_assert_ptr_null(g.rep);
        spool_meta_free(&g);
    }
    ck_assert_int_eq(spool_activate(s, m.id), 0);
    ck_assert_int_eq(spool_remove(s, m.id), 0);
    ck_assert(!exists("active", m.id));
    ck_assert_int_eq(spool_list(s, &list, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(list);
    spool_close(s);
}
END_TEST

START_TEST(recovery)
{
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m1, m2, m3, *list;
    struct spool_rcpt r[2];
    size_t n;
    int fd;
    struct stat st;
    ck_assert_ptr_nonnull(s);
    fill_meta(&m1, r);
    m2 = m1;
    m3 = m1;
    ck_assert_int_eq(spool_hold(s, &m1, body, BODYLEN), 0);
    ck_assert_int_eq(spool_hold(s, &m2, body, BODYLEN), 0);
    ck_assert_int_eq(spool_hold(s, &m3, body, BODYLEN), 0);
    ck_assert_int_eq(spool_activate(s, m3.id), 0);
    spool_close(s);

    /* a crash mid-hold leaves a file in incoming/ */
    fd = open(path("incoming", "leftover1"), O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "untild-spool 1\nid: leftover1\n", 29), 29);
    close(fd);
    /* a held file without its end record */
    ck_assert_int_eq(stat(path("held", m2.id), &st), 0);
    ck_assert_int_eq(truncate(path("held", m2.id), st.st_size - 3), 0);
    /* a held file with a wrong size field is caught by the size check */

    s = spool_open(tmpdir);
    ck_assert_ptr_nonnull(s);
    ck_assert(exists("corrupt", "leftover1"));
    ck_assert(exists("corrupt", m2.id));
    ck_assert(!exists("held", m2.id));
    ck_assert(exists("held", m3.id));      /* active -> held */
    ck_assert(!exists("active", m3.id));
    ck_assert_uint_eq(count_dir("incoming"), 0);
    ck_assert_int_eq(spool_list(s, &list, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert(strcmp(list[0].id, m1.id) == 0 || strcmp(list[1].id, m1.id) == 0);
    ck_assert(strcmp(list[0].id, m3.id) == 0 || strcmp(list[1].id, m3.id) == 0);
    spool_meta_free(&list[0]);
    spool_meta_free(&list[1]);
    free(list);
    ck_assert_int_eq(spool_read(s, m2.id, NULL, NULL, NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    spool_close(s);

    /* a second corrupt file with the same name does not overwrite the first */
    fd = open(path("incoming", "leftover1"), O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    s = spool_open(tmpdir);
    ck_assert_ptr_nonnull(s);
    ck_assert(exists("corrupt", "leftover1"));
    ck_assert(exists("corrupt", "leftover1.1"));
    spool_close(s);
}
END_TEST

START_TEST(second_open_refused)
{
    struct spool *s = spool_open(tmpdir), *s2;
    ck_assert_ptr_nonnull(s);
    s2 = spool_open(tmpdir);
    ck_assert_ptr_null(s2);
    spool_close(s);
    s2 = spool_open(tmpdir);
    ck_assert_ptr_nonnull(s2);
    spool_close(s2);
}
END_TEST

START_TEST(enospc_seam)
{
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m, *list;
    struct spool_rcpt r[2];
    size_t n;
    ck_assert_ptr_nonnull(s);
    fill_meta(&m, r);
    spool_fail_after(s, 0, ENOSPC);
    errno = 0;
    ck_assert_int_eq(spool_hold(s, &m, body, BODYLEN), -1);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_uint_eq(count_dir("incoming"), 0);
    ck_assert_uint_eq(count_dir("held"), 0);
    ck_assert_int_eq(spool_list(s, &list, &n), 0);
    ck_assert_uint_eq(n, 0);
    /* the seam fires once: the next hold (same id) succeeds */
    ck_assert_int_eq(spool_hold(s, &m, body, BODYLEN), 0);
    ck_assert_uint_eq(count_dir("held"), 1);
    /* disabled seam */
    spool_fail_after(s, 0, 0);
    memset(m.id, 0, sizeof m.id);
    ck_assert_int_eq(spool_hold(s, &m, body, BODYLEN), 0);
    ck_assert_uint_eq(count_dir("held"), 2);
    spool_close(s);
}
END_TEST

START_TEST(batch)
{
    struct spool *s = spool_open(tmpdir);
    struct spool_meta m[4], *mp[4], *list;
    struct spool_rcpt r[2];
    const char *msgs[4] = { "one", "two two", "three", "four" };
    size_t lens[4] = { 3, 7, 5, 4 }, n, i;
    int res[4];
    ck_assert_ptr_nonnull(s);
    for (i = 0; i < 4; i++) {
        fill_meta(&m[i], r);
        mp[i] = &m[i];
    }
    ck_assert_int_eq(spool_hold_batch(s, mp, msgs, lens, 3, res), 0);
    for (i = 0; i < 3; i++) {
        char *b;
        size_t len;
        ck_assert_int_eq(res[i], 0);
        ck_assert_int_eq(spool_read(s, m[i].id, NULL, &b, &len), 0);
        ck_assert_uint_eq(len, lens[i]);
        ck_assert_mem_eq(b, msgs[i], lens[i]);
        free(b);
    }
    ck_assert_uint_eq(count_dir("held"), 3);

    /* second message fails mid-write; the others are still held */
    for (i = 0; i < 4; i++)
        memset(m[i].id, 0, sizeof m[i].id);
    spool_fail_after(s, 1, ENOSPC);
    ck_assert_int_eq(spool_hold_batch(s, mp, msgs, lens, 3, res), -1);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_int_eq(res[0], 0);
    ck_assert_int_eq(res[1], ENOSPC);
    ck_assert_int_eq(res[2], 0);
    ck_assert(exists("held", m[0].id));
    ck_assert(!exists("held", m[1].id));
    ck_assert(exists("held", m[2].id));
    ck_assert_uint_eq(count_dir("incoming"), 0);
    ck_assert_uint_eq(count_dir("held"), 5);

    /* duplicate id inside one batch */
    strcpy(m[0].id, "dupid");
    strcpy(m[1].id, "dupid");
    ck_assert_int_eq(spool_hold_batch(s, mp, msgs, lens, 2, res), -1);
    ck_assert_int_eq(res[0], 0);
    ck_assert_int_eq(res[1], EEXIST);
    ck_assert_int_eq(spool_list(s, &list, &n), 0);
    ck_assert_uint_eq(n, 6);
    for (i = 0; i < n; i++)
        spool_meta_free(&list[i]);
    free(list);
    spool_close(s);
}
END_TEST

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

START_TEST(ids_unique)
{
    struct spool *s = spool_open(tmpdir);
    enum { N = 100000 };
    char (*ids)[SPOOL_ID_MAX] = malloc(N * sizeof *ids);
    size_t i, j, bad = 0, dups = 0;
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(ids);
    /* plain checks in the loops: each ck_assert costs a pipe write */
    for (i = 0; i < N; i++) {
        spool_new_id(s, ids[i]);
        if (strlen(ids[i]) < 8 || strlen(ids[i]) >= SPOOL_ID_MAX)
            bad++;
        for (j = 0; ids[i][j]; j++)
            if (!((ids[i][j] >= '0' && ids[i][j] <= '9') ||
                  (ids[i][j] >= 'a' && ids[i][j] <= 'z')))
                bad++;
    }
    ck_assert_uint_eq(bad, 0);
    qsort(ids, N, sizeof *ids, cmp_id);
    for (i = 1; i < N; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            dups++;
    ck_assert_uint_eq(dups, 0);
    free(ids);
    spool_close(s);
}
END_TEST

START_TEST(meta_copy)
{
    struct spool_meta m, c;
    struct spool_rcpt r[2];
    fill_meta(&m, r);
    strcpy(m.id, "abc");
    m.size = 10;
    ck_assert_int_eq(spool_meta_copy(&c, &m), 0);
    check_meta(&c, &m);
    ck_assert_ptr_ne(c.subject, m.subject);
    ck_assert_ptr_ne(c.rcpts, m.rcpts);
    spool_meta_free(&c);
    ck_assert_ptr_null(c.rcpts);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("spool");
    TCase *tc = tcase_create("spool");
    SRunner *sr;
    int failed;
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hold_read_roundtrip);
    tcase_add_test(tc, escaping_on_disk);
    tcase_add_test(tc, update_keeps_body);
    tcase_add_test(tc, states);
    tcase_add_test(tc, lazy_removal);
    tcase_add_test(tc, recovery);
    tcase_add_test(tc, second_open_refused);
    tcase_add_test(tc, enospc_seam);
    tcase_add_test(tc, batch);
    tcase_add_test(tc, ids_unique);
    tcase_add_test(tc, meta_copy);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
