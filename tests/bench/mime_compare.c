/* mime_compare.c - GMime 3 against libetpan's mailimf/mailmime on the
 * messages untild must read (issue 15; the table is in docs/DECISIONS.md).
 *
 * For every input and both libraries: the decoded Subject, the first From
 * mailbox (display name decoded, address), and the first calendar part
 * (text/calendar, application/ics, or an octet-stream named *.ics) with its
 * transfer encoding undone. Each (input, library) runs in a forked child so
 * a crash or a runaway is a result, not the end of the run, and so the
 * peak-memory figure (ru_maxrss after minus before) is that parse's own.
 * A child gets LIMIT_SECONDS of CPU and LIMIT_MB of address space.
 *
 * Inputs: the .eml files of tests/data/mime (Google, Exchange/Outlook, Thunderbird,
 * Apple-shaped iMIP; LF and CRLF), encoded words in six charsets, and
 * generated hostile MIME. Usage: mime_compare [DATA_DIR] (default
 * tests/data/mime). Exit status 0: it only reports. */
#include <errno.h>
#include <stdarg.h>
#include <gmime/gmime.h>
#include <libetpan/libetpan.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "untild/message.h"

#define LIMIT_SECONDS 20
#define LIMIT_MB 2048

struct result {
    char subject[256];
    char name[256];
    char addr[256];
    char cal_head[64];      /* first bytes of the decoded calendar */
    int cal_has_uid;        /* the expected UID is in it (unfolded) */
    long cal_len;
    long parts;
    double ms;
    long peak_kb;
};

struct input {
    char label[48];
    char *msg;
    size_t len;
    const char *want_subject;   /* NULL: not checked */
    const char *want_name;
    const char *want_uid;       /* "" : no calendar expected */
    int bounded;                /* past untild's bounds: it finds no calendar */
    int iterations;
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void copy_str(char *dst, size_t sz, const char *s)
{
    snprintf(dst, sz, "%s", s ? s : "");
}

/* The calendar text without folds, to look for "UID:<uid>". */
static int has_uid(const char *cal, size_t n, const char *uid)
{
    if (!uid || !*uid)
        return 0;
    char *u = malloc(n + 1);
    size_t o = 0;
    if (!u)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (cal[i] == '\r' && i + 2 < n && cal[i + 1] == '\n' && (cal[i + 2] == ' ' || cal[i + 2] == '\t')) {
            i += 2;
            continue;
        }
        if (cal[i] == '\n' && i + 1 < n && (cal[i + 1] == ' ' || cal[i + 1] == '\t')) {
            i += 1;
            continue;
        }
        u[o++] = cal[i];
    }
    u[o] = '\0';
    char key[300];
    snprintf(key, sizeof key, "UID:%s", uid);
    int yes = strstr(u, key) != NULL;
    free(u);
    return yes;
}

static void take_calendar(struct result *r, const char *data, size_t n, const char *uid)
{
    copy_str(r->cal_head, sizeof r->cal_head, "");
    snprintf(r->cal_head, sizeof r->cal_head, "%.*s", (int)(n < 15 ? n : 15), data);
    r->cal_len = (long)n;
    r->cal_has_uid = has_uid(data, n, uid);
}

/* ---------------- GMime */

struct gm_walk {
    struct result *r;
    const char *uid;
    int done;
};

static int gm_is_calendar(GMimeObject *part)
{
    GMimeContentType *ct = g_mime_object_get_content_type(part);
    if (g_mime_content_type_is_type(ct, "text", "calendar")
        || g_mime_content_type_is_type(ct, "application", "ics"))
        return 1;
    if (!g_mime_content_type_is_type(ct, "application", "octet-stream"))
        return 0;
    const char *fn = g_mime_part_get_filename(GMIME_PART(part));
    size_t n = fn ? strlen(fn) : 0;
    return n >= 4 && strcasecmp(fn + n - 4, ".ics") == 0;
}

static void gm_each(GMimeObject *parent, GMimeObject *part, gpointer data)
{
    (void)parent;
    struct gm_walk *w = data;
    w->r->parts++;
    if (w->done || !GMIME_IS_PART(part) || !gm_is_calendar(part))
        return;
    GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(part));
    if (!dw)
        return;
    GMimeStream *out = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(dw, out);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
    take_calendar(w->r, (const char *)ba->data, ba->len, w->uid);
    g_object_unref(out);
    w->done = 1;
}

static void run_gmime(const struct input *in, struct result *r)
{
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(in->msg, in->len);
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    g_object_unref(s);
    if (!m)
        return;
    copy_str(r->subject, sizeof r->subject, g_mime_message_get_subject(m));
    InternetAddressList *from = g_mime_message_get_from(m);
    if (from && internet_address_list_length(from) > 0) {
        InternetAddress *a = internet_address_list_get_address(from, 0);
        copy_str(r->name, sizeof r->name, internet_address_get_name(a));
        if (INTERNET_ADDRESS_IS_MAILBOX(a))
            copy_str(r->addr, sizeof r->addr,
                     internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)));
    }
    struct gm_walk w = { r, in->want_uid, 0 };
    g_mime_message_foreach(m, gm_each, &w);
    g_object_unref(m);
}

/* ---------------- libetpan */

static void et_decode(const char *raw, char *out, size_t outsz)
{
    size_t idx = 0;
    char *dec = NULL;
    if (!raw)
        return;
    if (mailmime_encoded_phrase_parse("us-ascii", raw, strlen(raw), &idx, "utf-8", &dec)
        == MAILIMF_NO_ERROR && dec) {
        copy_str(out, outsz, dec);
        free(dec);
    } else {
        copy_str(out, outsz, raw);
    }
}

static int et_is_calendar(struct mailmime *mm, struct mailmime_single_fields *sf)
{
    struct mailmime_content *ct = mm->mm_content_type;
    if (!ct || !ct->ct_type || ct->ct_type->tp_type != MAILMIME_TYPE_DISCRETE_TYPE)
        return 0;
    struct mailmime_discrete_type *dt = ct->ct_type->tp_data.tp_discrete_type;
    const char *sub = ct->ct_subtype ? ct->ct_subtype : "";
    if (dt->dt_type == MAILMIME_DISCRETE_TYPE_TEXT && !strcasecmp(sub, "calendar"))
        return 1;
    if (dt->dt_type != MAILMIME_DISCRETE_TYPE_APPLICATION)
        return 0;
    if (!strcasecmp(sub, "ics"))
        return 1;
    if (strcasecmp(sub, "octet-stream"))
        return 0;
    const char *fn = sf->fld_disposition_filename ? sf->fld_disposition_filename
                                                  : sf->fld_content_name;
    size_t n = fn ? strlen(fn) : 0;
    return n >= 4 && strcasecmp(fn + n - 4, ".ics") == 0;
}

static void et_walk(struct mailmime *mm, struct result *r, const char *uid, int *done)
{
    r->parts++;
    if (mm->mm_type == MAILMIME_SINGLE) {
        struct mailmime_single_fields sf;
        mailmime_single_fields_init(&sf, mm->mm_mime_fields, mm->mm_content_type);
        if (*done || !et_is_calendar(mm, &sf) || !mm->mm_data.mm_single)
            return;
        struct mailmime_data *d = mm->mm_data.mm_single;
        int enc = sf.fld_encoding ? sf.fld_encoding->enc_type : MAILMIME_MECHANISM_8BIT;
        size_t idx = 0, n = 0;
        char *dec = NULL;
        if (mailmime_part_parse(d->dt_data.dt_text.dt_data, d->dt_data.dt_text.dt_length,
                                &idx, enc, &dec, &n) == MAILIMF_NO_ERROR) {
            take_calendar(r, dec, n, uid);
            mailmime_decoded_part_free(dec);
        }
        *done = 1;
    } else if (mm->mm_type == MAILMIME_MULTIPLE) {
        for (clistiter *it = clist_begin(mm->mm_data.mm_multipart.mm_mp_list); it; it = clist_next(it))
            et_walk(clist_content(it), r, uid, done);
    } else if (mm->mm_type == MAILMIME_MESSAGE && mm->mm_data.mm_message.mm_msg_mime) {
        et_walk(mm->mm_data.mm_message.mm_msg_mime, r, uid, done);
    }
}

static void run_etpan(const struct input *in, struct result *r)
{
    struct mailmime *mm = NULL;
    size_t idx = 0;
    if (mailmime_parse(in->msg, in->len, &idx, &mm) != MAILIMF_NO_ERROR || !mm)
        return;
    if (mm->mm_type == MAILMIME_MESSAGE && mm->mm_data.mm_message.mm_fields) {
        struct mailimf_single_fields sf;
        mailimf_single_fields_init(&sf, mm->mm_data.mm_message.mm_fields);
        if (sf.fld_subject)
            et_decode(sf.fld_subject->sbj_value, r->subject, sizeof r->subject);
        if (sf.fld_from && sf.fld_from->frm_mb_list) {
            clistiter *it = clist_begin(sf.fld_from->frm_mb_list->mb_list);
            if (it) {
                struct mailimf_mailbox *mb = clist_content(it);
                et_decode(mb->mb_display_name, r->name, sizeof r->name);
                copy_str(r->addr, sizeof r->addr, mb->mb_addr_spec);
            }
        }
    }
    int done = 0;
    et_walk(mm, r, in->want_uid, &done);
    mailmime_free(mm);
}

/* ---------------- untild's message_parse (what the daemon uses) */

static void run_untild(const struct input *in, struct result *r)
{
    struct message_facts f;
    if (message_parse(in->msg, in->len, "+", &f) < 0)
        return;
    copy_str(r->subject, sizeof r->subject, f.subject);
    copy_str(r->addr, sizeof r->addr, f.from);
    if (f.ical_data)
        take_calendar(r, f.ical_data, strlen(f.ical_data), in->want_uid);
    r->parts = -1;
    message_facts_free(&f);
}

/* ---------------- one measured run in a child */

enum lib { LIB_GMIME, LIB_ETPAN, LIB_UNTILD };

static const char *run_child(const struct input *in, enum lib lib, struct result *r)
{
    static char status[64];
    int fd[2];
    if (pipe(fd) < 0)
        return "pipe";
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return "fork";
    if (pid == 0) {
        close(fd[0]);
        struct rlimit cpu = { LIMIT_SECONDS, LIMIT_SECONDS + 1 };
        struct rlimit as = { (rlim_t)LIMIT_MB << 20, (rlim_t)LIMIT_MB << 20 };
        setrlimit(RLIMIT_CPU, &cpu);
        setrlimit(RLIMIT_AS, &as);
        struct result res;
        memset(&res, 0, sizeof res);
        if (lib == LIB_GMIME)
            g_mime_init();
        if (lib == LIB_UNTILD) {    /* its one-time set-up is not the parse's cost */
            struct message_facts f;
            if (message_parse("", 0, "+", &f) == 0)
                message_facts_free(&f);
        }
        long before = maxrss_kb();
        double t0 = now_ms();
        for (int i = 0; i < in->iterations; i++) {
            memset(&res, 0, sizeof res);
            if (lib == LIB_GMIME)
                run_gmime(in, &res);
            else if (lib == LIB_ETPAN)
                run_etpan(in, &res);
            else
                run_untild(in, &res);
        }
        res.ms = (now_ms() - t0) / in->iterations;
        res.peak_kb = maxrss_kb() - before;
        ssize_t wr = write(fd[1], &res, sizeof res);
        _exit(wr == (ssize_t)sizeof res ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = 0, k;
    while (got < (ssize_t)sizeof *r && (k = read(fd[0], (char *)r + got, sizeof *r - (size_t)got)) > 0)
        got += k;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) {
        snprintf(status, sizeof status, "%s", WTERMSIG(st) == SIGXCPU ? "CPU LIMIT" : strsignal(WTERMSIG(st)));
        return status;
    }
    if (got != (ssize_t)sizeof *r)
        return "no result";
    return NULL;
}

static const char *verdict(const struct input *in, const struct result *r, int lib)
{
    int ok = 1;
    if (in->want_subject && strcmp(r->subject, in->want_subject) != 0)
        ok = 0;
    /* untild keeps only the address of From */
    if (in->want_name && lib != LIB_UNTILD && strcmp(r->name, in->want_name) != 0)
        ok = 0;
    const char *uid = lib == LIB_UNTILD && in->bounded ? "" : in->want_uid;
    if (uid && *uid && !r->cal_has_uid)
        ok = 0;
    if (uid && !*uid && r->cal_len > 0)
        ok = 0;
    return ok ? "ok" : "WRONG";
}

static void report(const struct input *in)
{
    static const char *names[] = { "gmime", "etpan", "untild" };
    for (int lib = 0; lib < 3; lib++) {
        struct result r;
        memset(&r, 0, sizeof r);
        const char *err = run_child(in, (enum lib)lib, &r);
        if (err) {
            printf("| %-26s | %-6s | %-9s | %10s | %9s | %s\n", in->label, names[lib], err, "-", "-", "");
            continue;
        }
        printf("| %-26s | %-6s | %-9s | %10.3f | %9ld | parts=%ld cal=%ld subj=\"%.40s\" name=\"%.30s\" addr=%s\n",
               in->label, names[lib], verdict(in, &r, lib), r.ms, r.peak_kb, r.parts, r.cal_len,
               r.subject, r.name, r.addr);
    }
}

/* ---------------- inputs */

static char *load(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n, fp)) > 0) {
        n += k;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(fp);
    *len = n;
    return b;
}

static char *to_crlf(const char *m, size_t n, size_t *out)
{
    char *c = malloc(2 * n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
            c[o++] = '\r';
        c[o++] = m[i];
    }
    *out = o;
    return c;
}

struct buf { char *p; size_t n, cap; };

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)k + 1;
        b->p = realloc(b->p, b->cap);
    }
}

#define CAL "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:hostile\nEND:VEVENT\nEND:VCALENDAR\n"

static struct input gen(const char *label, int kind, size_t arg, int bounded)
{
    struct input in;
    struct buf b = { malloc(1 << 16), 0, 1 << 16 };
    memset(&in, 0, sizeof in);
    snprintf(in.label, sizeof in.label, "%s", label);
    in.want_subject = "hostile";
    in.iterations = 1;
    in.want_uid = "hostile";
    in.bounded = bounded;
    put(&b, "Subject: hostile\nFrom: a@b.example\n");
    switch (kind) {
    case 0:     /* arg nested multiparts around a calendar */
        for (size_t i = 0; i < arg; i++)
            put(&b, "Content-Type: multipart/mixed; boundary=\"b%zu\"\n\n--b%zu\n", i, i);
        put(&b, "Content-Type: text/calendar\n\n" CAL);
        for (size_t i = arg; i-- > 0;)
            put(&b, "--b%zu--\n", i);
        break;
    case 10:    /* 1000 nested multiparts around arg bytes of text */
        for (size_t i = 0; i < 1000; i++)
            put(&b, "Content-Type: multipart/mixed; boundary=\"b%zu\"\n\n--b%zu\n", i, i);
        put(&b, "Content-Type: text/plain\n\n");
        for (size_t n0 = b.n; b.n - n0 < arg;)
            put(&b, "%s", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n");
        for (size_t i = 1000; i-- > 0;)
            put(&b, "--b%zu--\n", i);
        in.want_uid = "";
        break;
    case 11:    /* arg bytes of tiny header lines, then the calendar */
        while (b.n < arg)
            put(&b, "X-A: b\n");
        put(&b, "Content-Type: text/calendar\n\n" CAL);
        break;
    case 12:    /* the calendar, then a part whose header is arg bytes of tiny lines */
        put(&b, "Content-Type: multipart/mixed; boundary=p\n\n--p\nContent-Type: text/calendar\n\n"
                CAL "--p\n");
        for (size_t n0 = b.n; b.n - n0 < arg;)
            put(&b, "X-A: b\n");
        put(&b, "\nbody\n--p--\n");
        break;
    case 1:     /* arg parts, then the calendar */
        put(&b, "Content-Type: multipart/mixed; boundary=p\n\n");
        for (size_t i = 0; i < arg; i++)
            put(&b, "--p\nContent-Type: text/plain\n\npart %zu\n", i);
        put(&b, "--p\nContent-Type: text/calendar\n\n" CAL "--p--\n");
        break;
    case 2:     /* no close delimiter */
        put(&b, "Content-Type: multipart/mixed; boundary=p\n\n--p\nContent-Type: text/plain\n\nx\n"
                "--p\nContent-Type: text/calendar\n\n" CAL);
        break;
    case 3:     /* the boundary never appears */
        put(&b, "Content-Type: multipart/mixed; boundary=nothere\n\n--p\nContent-Type: text/calendar\n\n" CAL);
        in.want_uid = NULL;
        break;
    case 4:     /* one header line of arg bytes */
        put(&b, "X-Long: ");
        for (size_t i = 0; i < arg; i += 64)
            put(&b, "%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        put(&b, "\nContent-Type: text/calendar\n\n" CAL);
        break;
    case 5:     /* arg header lines */
        for (size_t i = 0; i < arg; i++)
            put(&b, "X-Filler-%07zu: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n", i);
        put(&b, "Content-Type: text/calendar\n\n" CAL);
        break;
    case 6:     /* a base64 calendar of about arg bytes */
        put(&b, "Content-Type: multipart/mixed; boundary=p\n\n--p\nContent-Type: text/calendar\n"
                "Content-Transfer-Encoding: base64\n\n");
        put(&b, "QkVHSU46VkNBTEVOREFSCk1FVEhPRDpSRVFVRVNUCkJFR0lOOlZFVkVOVApVSUQ6aG9zdGlsZQpF\n");
        for (size_t i = 0; i < arg; i += 77)
            put(&b, "WC1GSUxMRVI6eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4\n");
        put(&b, "--p--\n");
        break;
    case 7:     /* arg encoded words in the subject */
        b.n = 0;
        put(&b, "Subject:");
        for (size_t i = 0; i < arg; i++)
            put(&b, " =?UTF-8?Q?a?=");
        put(&b, "\nFrom: a@b.example\n\nbody\n");
        in.want_subject = NULL;
        in.want_uid = "";
        break;
    case 8:     /* arg bytes of "--" lines with random boundaries */
        put(&b, "Content-Type: multipart/mixed; boundary=a\n\n");
        for (size_t i = 0; b.n < arg; i++)
            put(&b, "--a\nContent-Type: multipart/mixed; boundary=a\n\n");
        in.want_uid = "";
        break;
    case 9:     /* arg bytes of binary junk after the headers */
        put(&b, "Content-Type: multipart/mixed; boundary=\"\"\n\n");
        srand(7);
        while (b.n < arg) {
            if (b.cap - b.n < 2) {
                b.cap *= 2;
                b.p = realloc(b.p, b.cap);
            }
            b.p[b.n++] = (char)(rand() & 0xff);
        }
        in.want_uid = "";
        break;
    }
    in.msg = b.p;
    in.len = b.n;
    return in;
}

static const struct { const char *cs, *ew, *utf8; } charsets[] = {
    { "windows-1252", "=?windows-1252?B?QW5nZWJvdCCWIIRQcmVpc5MgNTAggA==?=",
      "Angebot \xe2\x80\x93 \xe2\x80\x9ePreis\xe2\x80\x9c 50 \xe2\x82\xac" },
    { "ISO-8859-15", "=?ISO-8859-15?Q?Prix=3A_50_=A4_=BDuvre?=",
      "Prix: 50 \xe2\x82\xac \xc5\x93uvre" },
    /* RFC 2047 5(3): ':' is not allowed raw in a phrase's Q word */
    { "ISO-8859-15 raw ':'", "=?ISO-8859-15?Q?Prix:_50_=A4_=BDuvre?=",
      "Prix: 50 \xe2\x82\xac \xc5\x93uvre" },
    /* each word padded on its own (GMime issue #133, fixed after 3.2.13) */
    { "UTF-8 padded words", "=?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?=", "Hello world" },
    /* a character split across two encoded words (common in Japanese mail) */
    { "Shift_JIS split char", "=?Shift_JIS?B?ie+LY4I=?= =?Shift_JIS?B?zI+1kdKP84LFgrc=?=",
      "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae\xe6\x8b\x9b\xe5\xbe\x85\xe7\x8a\xb6\xe3\x81\xa7\xe3\x81\x99" },
    { "UTF-8 split char", "=?UTF-8?B?5Lya6A==?= =?UTF-8?B?rbDjga7mi5vlvoXnirbjgafjgZk=?=",
      "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae\xe6\x8b\x9b\xe5\xbe\x85\xe7\x8a\xb6\xe3\x81\xa7\xe3\x81\x99" },
    { "ISO-2022-JP", "=?ISO-2022-JP?B?GyRCMnE1RCROPjdCVD51GyhC?=",
      "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae\xe6\x8b\x9b\xe5\xbe\x85\xe7\x8a\xb6" },
    { "Shift_JIS", "=?Shift_JIS?B?ie+LY4LMj7WR0o/z?=",
      "\xe4\xbc\x9a\xe8\xad\xb0\xe3\x81\xae\xe6\x8b\x9b\xe5\xbe\x85\xe7\x8a\xb6" },
    { "GB2312", "=?GB2312?B?u+HS6dH7x+s=?=",
      "\xe4\xbc\x9a\xe8\xae\xae\xe9\x82\x80\xe8\xaf\xb7" },
    { "KOI8-R", "=?KOI8-R?B?8NLJx8zB28XOycUgzsEg19PU0sXe1Q==?=",
      "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb3\xd0\xbb\xd0\xb0\xd1\x88\xd0\xb5\xd0\xbd\xd0\xb8\xd0\xb5 "
      "\xd0\xbd\xd0\xb0 \xd0\xb2\xd1\x81\xd1\x82\xd1\x80\xd0\xb5\xd1\x87\xd1\x83" },
};

/* Expected facts of the sample messages (tests/unit/test_message.c). */
static const struct { const char *file, *subject, *name, *uid; } samples[] = {
    { "apple-request.eml", "Invitation: Kick-off \xe2\x80\x93 Q3", "Sales Rep",
      "5C0D9A1E-7B3F-4E2A-A1C4-D8E9F0A1B2C3" },
    { "berlin.eml", "Kick-off", "", "berlin-0001@vendor.example" },
    { "cancel.eml", "Canceled: Renewal review", "Rep, Sales", "cancel-uid-0001@vendor.example" },
    { "exchange-recurring.eml", "Weekly review", "Sales Rep",
      "040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F5D901000000000000000010000000F1E2D3C4B5A69788" },
    { "google-both.eml", "Invitation: Quote follow-up", "Sales Rep", "7kq1b2c3d4e5f6g7h8i9j0abcd@google.com" },
    { "google-ics.eml", "Invitation: Quote follow-up @ Thu Jul 10, 2025 3pm \xe2\x80\x93 3:30pm (CEST)",
      "Sales Rep", "7kq1b2c3d4e5f6g7h8i9j0abcd@google.com" },
    { "google-occurrence-cancel.eml", "Canceled event: Stand-up @ Tue Aug 3, 2027 9am - 9:15am (CEST)",
      "Sales Rep", "5h3j2k1l0m9n8b7v6c5x4z3a2s@google.com" },
    { "hostile-tz.eml", "Invitation: Sync", "", "hostile-0001@vendor.example" },
    { "malformed.eml", "Broken invite", "", "malformed-0001@vendor.example" },
    { "method-mismatch.eml", "Renewal review", "", "mismatch-0001@vendor.example" },
    { "octet-ics.eml", "Workshop", "", "octet-0001@vendor.example" },
    { "outlook-request.eml", "Renewal review", "Rep, Sales",
      "040000008200E00074C5B7101A82E00800000000D0F1A8B1C2D3DA01000000000000000010000000A1B2C3D4E5F60718293A4B5C6D7E8F90" },
    { "plain.eml", "Re: Angebot f\xc3\xbcr Q3", "Customer, Jane (Purchasing)", "" },
    { "qp-request.eml", "Caf\xc3\xa9 meeting", NULL, "qp-0001@vendor.example" },
    { "reply.eml", "Accepted: Quote follow-up", "Jane Customer", "7kq1b2c3d4e5f6g7h8i9j0abcd@google.com" },
    { "thunderbird-recurring.eml", "Invitation: Onboarding @ Mon Jul 5, 2027 14:00 - 15:00 (Europe/Berlin)",
      "Sales Rep", "0e9f8a7b-6c5d-4e3f-2a1b-0c9d8e7f6a5b" },
};

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/data/mime";
    printf("| input                      | lib    | result    | ms/message | peak KiB  | detail\n");
    printf("|----------------------------|--------|-----------|------------|-----------|-------\n");
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, samples[i].file);
        struct input in;
        memset(&in, 0, sizeof in);
        in.msg = load(path, &in.len);
        if (!in.msg) {
            fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
            continue;
        }
        in.want_subject = samples[i].subject;
        in.want_name = samples[i].name;
        in.want_uid = samples[i].uid;
        in.iterations = 200;
        snprintf(in.label, sizeof in.label, "%s", samples[i].file);
        report(&in);
        char *c = to_crlf(in.msg, in.len, &in.len);
        free(in.msg);
        in.msg = c;
        snprintf(in.label, sizeof in.label, "%.20s CRLF", samples[i].file);
        report(&in);
        free(in.msg);
    }
    for (size_t i = 0; i < sizeof charsets / sizeof charsets[0]; i++) {
        struct input in;
        struct buf b = { malloc(1024), 0, 1024 };
        memset(&in, 0, sizeof in);
        put(&b, "Subject: Re: %s\nFrom: %s <x@y.example>\n\nbody\n", charsets[i].ew, charsets[i].ew);
        char want[256];
        snprintf(want, sizeof want, "Re: %s", charsets[i].utf8);
        in.msg = b.p;
        in.len = b.n;
        in.want_subject = want;
        in.want_name = charsets[i].utf8;
        in.want_uid = "";
        in.iterations = 200;
        snprintf(in.label, sizeof in.label, "subject %s", charsets[i].cs);
        report(&in);
        free(b.p);
    }
    /* bounded: past untild's documented bounds (depth 10, 200 parts, a
     * 64 KiB header line, a 1 MiB header section, 1 MiB of calendar), so
     * untild is right to find no calendar */
    static const struct { const char *label; int kind; size_t arg; int bounded; } hostile[] = {
        { "nested 10", 0, 10, 0 }, { "nested 11", 0, 11, 1 }, { "nested 1000", 0, 1000, 1 },
        { "nested 2000", 0, 2000, 1 }, { "nested 5000", 0, 5000, 1 }, { "nested 100000", 0, 100000, 1 },
        { "150 parts", 1, 150, 0 }, { "10,000 parts", 1, 10000, 1 }, { "200,000 parts (20 MB)", 1, 200000, 1 },
        { "no close delimiter", 2, 0, 0 },
        { "boundary never used", 3, 0, 0 }, { "1 MB header line", 4, 1 << 20, 1 },
        { "20 MB header line", 4, 20 << 20, 1 },
        { "200,000 header lines", 5, 200000, 1 }, { "1 MiB of tiny header lines", 11, 1 << 20, 1 },
        { "20 MB part header of tiny lines", 12, 20 << 20, 0 }, { "20 MB base64 calendar", 6, 20 << 20, 1 },
        { "100,000 encoded words", 7, 100000, 0 }, { "20 MB same-boundary nest", 8, 20 << 20, 0 },
        { "20 MB binary junk", 9, 20 << 20, 0 },
        { "nested 1000 + 1 MB text", 10, 1 << 20, 0 }, { "nested 1000 + 20 MB text", 10, 20 << 20, 0 },
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        struct input in = gen(hostile[i].label, hostile[i].kind, hostile[i].arg, hostile[i].bounded);
        report(&in);
        free(in.msg);
    }
    return 0;
}
