/* Secrets leave no copy in freed memory (finding 13): this binary is linked with
 * -Wl,--wrap=free, so every free() called by livemig's own code (common, proto, the
 * control plane; not by shared libraries such as yajl or OpenSSL) passes through
 * __wrap_free below, which looks for the watched secret in the whole block being freed.
 * Each test first shows the hook catching a copy (a plain buffer), then that the wiping
 * code leaves none. Trees that yajl frees itself are checked after lm_json_wipe instead. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lm_cp.h"
#include "lm_encode.h"
#include "lm_http.h"
#include "lm_json.h"
#include "lm_proto.h"
#include "lm_strbuf.h"

void __real_free(void *p);
void __wrap_free(void *p);

static const char *watched; /* the secret looked for; NULL: not watching */
static int freed, leaked;   /* blocks freed while watching, and those holding it */

/* Whether s (n bytes) contains needle. */
static bool holds(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0)
            return true;
    return false;
}

void __wrap_free(void *p)
{
    if (watched && p) {
        freed++;
        if (holds(p, malloc_usable_size(p), watched))
            leaked++;
    }
    __real_free(p);
}

static void watch(const char *secret)
{
    freed = leaked = 0;
    watched = secret;
}

static void unwatch(void)
{
    watched = NULL;
}

#define SECRET "pw-7f3a91c2-secret"

/* Grows sb well past its first block, the secret at its start. */
static void fill(lm_strbuf_t *sb)
{
    lm_strbuf_append(sb, SECRET);
    for (int i = 0; i < 200; i++)
        lm_strbuf_append(sb, "0123456789abcdef0123456789abcdef0123456789abcdef");
}

Test(wipe, a_plain_strbuf_leaves_copies_the_hook_sees)
{
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1u << 20);
    watch(SECRET);
    fill(&sb); /* realloc moves the block: the old one is freed holding the secret */
    lm_strbuf_cleanup(&sb);
    unwatch();
    cr_assert_gt(leaked, 0, "the hook must see the copies a plain buffer leaves");
}

Test(wipe, a_secret_strbuf_leaves_no_copy)
{
    lm_strbuf_t sb;
    lm_strbuf_init_secret(&sb, 1u << 20);
    watch(SECRET);
    fill(&sb);
    lm_strbuf_appendf(&sb, "%s %2000s", SECRET, "x"); /* the large-format path */
    lm_strbuf_cleanup(&sb);
    cr_assert(sb.secret, "a cleaned-up secret buffer stays secret");
    fill(&sb);
    lm_strbuf_cleanup(&sb);
    unwatch();
    cr_assert_gt(freed, 5);
    cr_assert_eq(leaked, 0, "%d freed blocks held the secret", leaked);
    /* a plain buffer wiped on purpose */
    lm_strbuf_init(&sb, 1u << 20);
    lm_strbuf_append(&sb, SECRET);
    watch(SECRET);
    lm_strbuf_cleanup_wipe(&sb);
    unwatch();
    cr_assert_eq(freed, 1);
    cr_assert_eq(leaked, 0);
}

Test(wipe, the_json_writer_leaves_no_copy)
{
    watch(SECRET);
    lm_json_writer_t *w = lm_json_writer_new(false);
    lm_json_w_map_open(w);
    lm_json_w_kv_str(w, "password", SECRET);
    for (int i = 0; i < 300; i++) { /* the output buffer grows (realloc) many times */
        lm_json_w_kv_str(w, "k", "a-value-to-make-the-buffer-grow");
    }
    lm_json_w_map_close(w);
    size_t len;
    lm_error_t err;
    const char *s = lm_json_writer_result(w, &len, &err);
    cr_assert(s && strstr(s, SECRET), "%s", s ? s : err.message);
    lm_json_writer_destroy(w);
    unwatch();
    cr_assert_gt(freed, 2);
    cr_assert_eq(leaked, 0, "%d freed blocks held the secret", leaked);
}

Test(wipe, a_wiped_json_tree_holds_no_secret)
{
    const char *doc = "{\"source\":{\"password\":\"" SECRET "\"},\"n\":[1,\"" SECRET "\"]}";
    lm_error_t err;
    watch(SECRET);
    lm_json_val_t *v = lm_json_parse(doc, strlen(doc), 0, 0, &err);
    unwatch();
    cr_assert_not_null(v, "%s", err.message);
    cr_assert_eq(leaked, 0, "the parser's copy of the text was freed unwiped");
    lm_json_val_t *src = lm_json_get(v, "source");
    const char *pw = lm_json_string(lm_json_get(src, "password"));
    const char *item = lm_json_string(lm_json_at(lm_json_get(v, "n"), 1));
    cr_assert_str_eq(pw, SECRET);
    size_t n = strlen(SECRET);
    lm_json_wipe(v);
    /* the same memory, zeroed: the strings (and keys) are empty, every byte of them 0 */
    for (size_t i = 0; i < n; i++)
        cr_assert(pw[i] == 0 && item[i] == 0, "byte %zu left", i);
    cr_assert_str_eq(lm_json_key_at(v, 0, NULL), "");
    lm_json_free(v);
}

/* The poll answer end to end, as the control plane writes it and the agent reads it. */
Test(wipe, a_poll_answer_leaves_no_copy)
{
    lm_proto_assignments_t *m = calloc(1, sizeof *m), *got = calloc(1, sizeof *got);
    m->n_jobs = 1;
    snprintf(m->jobs[0].job_id, sizeof m->jobs[0].job_id, "job1");
    m->jobs[0].kind = LM_PROTO_JOB_MIGRATION;
    snprintf(m->jobs[0].source.uri, sizeof m->jobs[0].source.uri, "mongodb://h:1/");
    snprintf(m->jobs[0].target.uri, sizeof m->jobs[0].target.uri, "mongodb://h:2/");
    snprintf(m->jobs[0].source.username, sizeof m->jobs[0].source.username, "u");
    snprintf(m->jobs[0].source.password, sizeof m->jobs[0].source.password, SECRET);
    lm_strbuf_t body;
    lm_error_t err;
    lm_strbuf_init_secret(&body, 1u << 22);
    watch(SECRET);
    cr_assert(lm_proto_assignments_encode(m, &body, &err), "%s", err.message);
    cr_assert(lm_proto_assignments_decode(body.data, body.len, got, &err), "%s", err.message);
    cr_assert_str_eq(got->jobs[0].source.password, SECRET);
    lm_proto_assignments_cleanup(got);
    lm_proto_assignments_cleanup(m);
    cr_assert_eq(strlen(m->jobs[0].source.password), 0);
    lm_strbuf_cleanup(&body);
    /* the agent's HTTP answer */
    lm_http_response_t r = {.body = strdup("{\"password\":\"" SECRET "\"}")};
    r.body_len = strlen(r.body);
    lm_http_response_cleanup(&r);
    unwatch();
    cr_assert_gt(freed, 3);
    cr_assert_eq(leaked, 0, "%d freed blocks held the secret", leaked);
    free(m);
    free(got);
}

Test(wipe, an_opened_password_leaves_no_copy)
{
    static const uint8_t key[32] = {7};
    lm_strbuf_t sealed, plain;
    lm_error_t err;
    lm_strbuf_init(&sealed, 1u << 16);
    lm_strbuf_init_secret(&plain, 1u << 16);
    cr_assert(lm_cp_seal(key, "jobs/j/sourcePassword", SECRET, &sealed, &err), "%s", err.message);
    watch(SECRET);
    cr_assert(lm_cp_open(key, "jobs/j/sourcePassword", lm_strbuf_str(&sealed), &plain, &err), "%s",
              err.message);
    cr_assert_str_eq(lm_strbuf_str(&plain), SECRET);
    lm_strbuf_cleanup(&plain);
    unwatch();
    cr_assert_gt(freed, 0);
    cr_assert_eq(leaked, 0, "%d freed blocks held the secret", leaked);
    lm_strbuf_cleanup(&sealed);
}
