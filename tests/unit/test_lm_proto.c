/* lm_proto: golden examples (proto/examples) decode and encode back byte for byte; bad
 * messages are refused with the field named; unknown fields are ignored; caps hold. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_proto.h"
#include "lm_test_proc.h"

#define EXAMPLES LM_SOURCE_DIR "/proto/examples/"

/* The golden example without its trailing newline. */
static char *golden(const char *file)
{
    char path[512];
    snprintf(path, sizeof path, EXAMPLES "%s", file);
    char *s = lm_test_slurp(path);
    cr_assert(s, "cannot read %s", path);
    size_t n = strlen(s);
    while (n && s[n - 1] == '\n')
        s[--n] = '\0';
    return s;
}

static void expect_same(lm_strbuf_t *sb, const char *want)
{
    cr_assert_str_eq(lm_strbuf_str(sb), want);
    lm_strbuf_cleanup(sb);
}

Test(proto, link_token_golden_round_trip)
{
    char *text = golden("link_token.txt");
    lm_proto_link_token_t t;
    lm_error_t err;
    cr_assert(lm_proto_link_token_decode(text, strlen(text), &t, &err), "%s", err.message);
    cr_assert_str_eq(t.url, "https://cp.example:8443");
    cr_assert_str_eq(t.org_id, "org_1");
    cr_assert_str_eq(t.token_id, "lt_3c9a");
    cr_assert_str_eq(t.secret, "example-secret-not-real");
    cr_assert_eq(strlen(t.ca_pin), 64);
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1u << 20);
    cr_assert(lm_proto_link_token_encode(&t, &sb, &err), "%s", err.message);
    expect_same(&sb, text);
    lm_proto_link_token_clear(&t);
    cr_assert_eq(t.secret[0], 0);
    free(text);
}

Test(proto, link_token_refusals_say_what_to_do)
{
    lm_proto_link_token_t t;
    lm_error_t err;
    const char *bad = "not-a-token";
    cr_assert_not(lm_proto_link_token_decode(bad, strlen(bad), &t, &err));
    cr_assert(strstr(err.message, "not a livemig link-token"), "%s", err.message);
    bad = "lmlt1.@@@";
    cr_assert_not(lm_proto_link_token_decode(bad, strlen(bad), &t, &err));
    cr_assert(strstr(err.message, "damaged"), "%s", err.message);
    /* a token cut short: the JSON inside does not parse */
    char *text = golden("link_token.txt");
    cr_assert_not(lm_proto_link_token_decode(text, strlen(text) - 20, &t, &err));
    cr_assert(strstr(err.message, "link-token"), "%s", err.message);
    cr_assert_eq(t.secret[0], 0, "a refused token leaves no secret behind");
    free(text);
    /* http:// is refused: the token must name an https control plane */
    lm_proto_link_token_t in = {
        .url = "http://cp.example", .org_id = "o", .token_id = "t", .secret = "s"};
    memset(in.ca_pin, 'a', 64);
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1u << 20);
    cr_assert(lm_proto_link_token_encode(&in, &sb, &err));
    cr_assert_not(
        lm_proto_link_token_decode(lm_strbuf_str(&sb), strlen(lm_strbuf_str(&sb)), &t, &err));
    cr_assert(strstr(err.message, "field 'url'"), "%s", err.message);
    lm_strbuf_cleanup(&sb);
}

Test(proto, register_and_heartbeat_golden_round_trip)
{
    lm_error_t err;
    lm_strbuf_t sb;
    char *g = golden("register_request.json");
    lm_proto_register_req_t rq;
    cr_assert(lm_proto_register_req_decode(g, strlen(g), &rq, &err), "%s", err.message);
    cr_assert_str_eq(rq.hostname, "mig-host-1");
    lm_strbuf_init(&sb, 1u << 20);
    cr_assert(lm_proto_register_req_encode(&rq, &sb, &err));
    expect_same(&sb, g);
    free(g);

    g = golden("register_response.json");
    lm_proto_register_resp_t rs;
    cr_assert(lm_proto_register_resp_decode(g, strlen(g), &rs, &err), "%s", err.message);
    cr_assert_eq(rs.poll_seconds, 30);
    cr_assert_eq(strlen(rs.agent_secret), 64);
    lm_strbuf_init(&sb, 1u << 20);
    cr_assert(lm_proto_register_resp_encode(&rs, &sb, &err));
    expect_same(&sb, g);
    free(g);

    g = golden("heartbeat.json");
    lm_proto_heartbeat_t hb;
    cr_assert(lm_proto_heartbeat_decode(g, strlen(g), &hb, &err), "%s", err.message);
    cr_assert_eq(hb.state_dir_free_bytes, 52428800000LL);
    cr_assert_eq(hb.n_running, 1);
    cr_assert_str_eq(hb.running[0], "lm_6a1f");
    lm_strbuf_init(&sb, 1u << 20);
    cr_assert(lm_proto_heartbeat_encode(&hb, &sb, &err));
    expect_same(&sb, g);
    free(g);
}

Test(proto, assignments_golden_round_trip)
{
    lm_error_t err;
    lm_strbuf_t sb;
    char *g = golden("assignments.json");
    lm_proto_assignments_t *m = calloc(1, sizeof *m);
    cr_assert(lm_proto_assignments_decode(g, strlen(g), m, &err), "%s", err.message);
    cr_assert_eq(m->n_jobs, 1);
    cr_assert_eq(m->jobs[0].kind, LM_PROTO_JOB_MIGRATION);
    cr_assert_str_eq(m->jobs[0].source.password, "example-password");
    cr_assert(m->jobs[0].source.tls);
    cr_assert_eq(m->jobs[0].n_include, 1);
    cr_assert_str_eq(m->jobs[0].exclude[0], "shop.tmp_*");
    cr_assert_eq(m->n_commands, 3);
    cr_assert_eq(m->commands[0].kind, LM_PROTO_CMD_EXTEND);
    cr_assert_eq(m->commands[2].kind, LM_PROTO_CMD_RESTART_SHARD);
    cr_assert_str_eq(m->commands[2].shard, "src-shard1");
    cr_assert_eq(m->commands[2].seq, 43);
    cr_assert_eq(m->commands[0].deadline_ms, 1795400000000LL);
    lm_strbuf_init(&sb, 1u << 20);
    cr_assert(lm_proto_assignments_encode(m, &sb, &err));
    expect_same(&sb, g);
    lm_proto_assignments_cleanup(m);
    cr_assert_eq(m->jobs[0].source.password[0], 0, "cleanup wipes the passwords");
    free(m);
    free(g);
}

/* A part of a sharded migration run by several agents: migrationId, shardedRole and shards
 * round-trip; left out when unset (the golden example above has none); a role outside
 * all/lead/follower is refused, named. */
Test(proto, assignments_sharded_part_round_trip)
{
    lm_error_t err;
    lm_strbuf_t sb;
    char *g = golden("assignments.json");
    lm_proto_assignments_t *m = calloc(1, sizeof *m);
    cr_assert(lm_proto_assignments_decode(g, strlen(g), m, &err), "%s", err.message);
    cr_assert_str_eq(m->jobs[0].migration_id, "");
    cr_assert_str_eq(m->jobs[0].sharded_role, "");
    cr_assert_eq(m->jobs[0].n_shards, 0);
    snprintf(m->jobs[0].migration_id, sizeof m->jobs[0].migration_id, "mig16");
    snprintf(m->jobs[0].sharded_role, sizeof m->jobs[0].sharded_role, "follower");
    m->jobs[0].shards = calloc(2, sizeof m->jobs[0].shards[0]);
    m->jobs[0].n_shards = 2;
    snprintf(m->jobs[0].shards[0], sizeof m->jobs[0].shards[0], "src-shard1");
    snprintf(m->jobs[0].shards[1], sizeof m->jobs[0].shards[1], "src-shard2");
    m->jobs[0].await_shards = true;
    m->jobs[0].lease_seconds = 30;
    m->commands[0].kind = LM_PROTO_CMD_ASSIGN_SHARDS;
    snprintf(m->commands[0].job_id, sizeof m->commands[0].job_id, "job1");
    snprintf(m->commands[0].shards, sizeof m->commands[0].shards, "src-shard0,src-shard2");
    if (m->n_commands == 0)
        m->n_commands = 1;
    lm_strbuf_init(&sb, 1u << 20);
    cr_assert(lm_proto_assignments_encode(m, &sb, &err));
    const char *text = lm_strbuf_str(&sb);
    cr_assert(strstr(text, "\"migrationId\":\"mig16\",\"shardedRole\":\"follower\","
                           "\"shards\":[\"src-shard1\",\"src-shard2\"]"),
              "%s", text);
    lm_proto_assignments_t *back = calloc(1, sizeof *back);
    cr_assert(lm_proto_assignments_decode(text, strlen(text), back, &err), "%s", err.message);
    cr_assert_str_eq(back->jobs[0].migration_id, "mig16");
    cr_assert_str_eq(back->jobs[0].sharded_role, "follower");
    cr_assert_eq(back->jobs[0].n_shards, 2);
    cr_assert_str_eq(back->jobs[0].shards[1], "src-shard2");
    cr_assert(back->jobs[0].await_shards);
    cr_assert_eq(back->jobs[0].lease_seconds, 30);
    cr_assert_eq(back->commands[0].kind, LM_PROTO_CMD_ASSIGN_SHARDS);
    cr_assert_str_eq(back->commands[0].shards, "src-shard0,src-shard2");
    lm_proto_assignments_cleanup(back);
    /* assign-shards without its shards is refused */
    char *noshards = strdup(text), *sh = strstr(noshards, "\"shards\":\"src-shard0");
    cr_assert_not_null(sh);
    memcpy(sh, "\"xhards\"", 8);
    cr_assert_not(lm_proto_assignments_decode(noshards, strlen(noshards), back, &err));
    cr_assert(strstr(err.message, "shards"), "%s", err.message);
    lm_proto_assignments_cleanup(back);
    free(noshards);
    /* a role the agent does not know */
    char *bad = strdup(text), *at = strstr(bad, "\"follower\"");
    memcpy(at, "\"boss\"    ", 10);
    cr_assert_not(lm_proto_assignments_decode(bad, strlen(bad), back, &err));
    cr_assert(strstr(err.message, "shardedRole"), "%s", err.message);
    lm_proto_assignments_cleanup(back);
    free(back);
    free(bad);
    lm_strbuf_cleanup(&sb);
    lm_proto_assignments_cleanup(m);
    free(m);
    free(g);
}

Test(proto, status_golden_round_trip)
{
    const char *files[] = {"status_migration.json", "status_validation.json",
                           "status_verification.json", "status_sharded.json"};
    for (size_t f = 0; f < 4; f++) {
        lm_error_t err;
        lm_strbuf_t sb;
        char *g = golden(files[f]);
        lm_proto_status_t st;
        cr_assert(lm_proto_status_decode(g, strlen(g), &st, &err), "%s: %s", files[f], err.message);
        if (f == 0) {
            cr_assert(st.has_lag);
            cr_assert_float_eq(st.lag_seconds, 1.5, 1e-9);
            cr_assert_float_eq(st.estimated_cutover_seconds, 0.5, 1e-9);
            cr_assert_eq(st.n_collections, 1);
            cr_assert(st.collections[0].done);
            cr_assert_not(st.verification.present);
            cr_assert_eq(st.n_events, 2);
            cr_assert_eq(st.events[0].time_ms, INT64_C(1764495000000));
            cr_assert_str_eq(st.events[0].kind, "target_unreachable");
            cr_assert_str_eq(st.events[1].message,
                             "target 10.0.0.7:27017 reachable again after 12.3 s");
            cr_assert_not(st.events_clipped);
            cr_assert_eq(st.n_shards, 0, "a replica set has no shards section");
        } else if (f == 3) {
            cr_assert_eq(st.n_shards, 2);
            cr_assert_str_eq(st.shards[0].name, "src-shard0");
            cr_assert_str_eq(st.shards[0].target_shard, "dst-shard0");
            cr_assert(st.shards[0].has_lag && st.shards[0].ready_for_cutover);
            cr_assert_float_eq(st.shards[0].lag_seconds, 0.75, 1e-9);
            cr_assert_str_eq(st.shards[1].state, "FAILED");
            cr_assert_eq(st.shards[1].docs_copied, 11000);
            cr_assert(st.shards[1].has_percentage && !st.shards[1].has_remaining);
            cr_assert_float_eq(st.shards[1].percentage, 18.5, 1e-9);
            cr_assert_str_eq(st.shards[1].last_error,
                             "copy of crm.bulk failed: source unreachable");
            cr_assert_not(st.shards_clipped);
            cr_assert_eq(st.shards_refused[0], 0);
        } else if (f == 2) {
            cr_assert(st.verification.present);
            cr_assert_str_eq(st.verification.state, "failed");
            cr_assert_eq(st.verification.namespaces_total, 11);
            cr_assert_eq(st.verification.n_differences, 1);
            cr_assert_str_eq(st.verification.differences[0].ns, "shop.orders");
            cr_assert_eq(st.verification.differences[0].n_ids, 1);
            cr_assert_not(st.verification.clipped);
        } else {
            cr_assert_not(st.has_lag, "lagTimeSeconds null stays null");
            cr_assert_eq(st.n_checks, 2);
            cr_assert_eq(st.checks[1].result, LM_PROTO_CHECK_WARN);
            cr_assert_eq(st.n_errors, 1);
        }
        lm_strbuf_init(&sb, 1u << 20);
        cr_assert(lm_proto_status_encode(&st, &sb, &err));
        expect_same(&sb, g);
        lm_proto_status_cleanup(&st);
        free(g);
    }
}

/* A verification section past the caps is clipped, one that cannot be read is left out:
 * the report itself is taken either way (the control plane must not fail a migration over
 * its verification report). */
Test(proto, status_verification_is_clipped_or_left_out)
{
    lm_strbuf_t in;
    lm_strbuf_init(&in, LM_PROTO_MAX_BYTES);
    lm_strbuf_append(&in, "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\","
                          "\"phase\":\"COMPLETE\",\"state\":\"COMPLETE\",\"verification\":{"
                          "\"state\":\"failed\",\"namespacesTotal\":40,\"error\":\"");
    for (int i = 0; i < 300; i++)
        lm_strbuf_append(&in, "\xc3\xa9xx"); /* 1200 bytes, a 2-byte character every 4 */
    lm_strbuf_append(&in, "\",\"differences\":[");
    for (int i = 0; i < 30; i++) {
        lm_strbuf_appendf(&in, "%s{\"ns\":\"db.c%d\",\"reasons\":[", i ? "," : "", i);
        for (int k = 0; k < 8; k++)
            lm_strbuf_appendf(&in, "%s\"reason %d\"", k ? "," : "", k);
        lm_strbuf_append(&in, "],\"ids\":[\"");
        for (int k = 0; k < 400; k++)
            lm_strbuf_append(&in, "x");
        lm_strbuf_append(&in, "\"]}");
    }
    lm_strbuf_append(&in, "]}}");
    lm_proto_status_t st;
    lm_error_t err;
    const char *t = lm_strbuf_str(&in);
    cr_assert(lm_proto_status_decode(t, strlen(t), &st, &err), "%s", err.message);
    lm_proto_verification_t *v = &st.verification;
    cr_assert(v->present && v->clipped);
    cr_assert_str_eq(v->state, "failed");
    cr_assert_eq(v->n_differences, LM_PROTO_VERIFY_MAX_NS);
    cr_assert_eq(v->differences[0].n_reasons, LM_PROTO_VERIFY_MAX_REASONS);
    cr_assert_eq(strlen(v->differences[0].ids[0]), LM_PROTO_VERIFY_TEXT - 1);
    size_t n = strlen(v->error);
    cr_assert(n < sizeof v->error && n > 1000, "%zu", n);
    cr_assert(((unsigned char)v->error[n - 1] & 0xC0) != 0xC0, "cut inside a character");
    cr_assert_eq(st.verification_refused[0], 0);
    /* encoded again it stays within the caps and says it was clipped */
    lm_strbuf_t out;
    lm_strbuf_init(&out, LM_PROTO_MAX_BYTES);
    cr_assert(lm_proto_status_encode(&st, &out, &err), "%s", err.message);
    cr_assert(strstr(lm_strbuf_str(&out), "\"clipped\":true"));
    cr_assert_null(strstr(lm_strbuf_str(&out), "db.c20"));
    lm_strbuf_cleanup(&out);
    lm_proto_status_cleanup(&st);
    lm_strbuf_cleanup(&in);

    /* malformed sections: the report is taken, the section left out with the reason */
    const char *bad[] = {
        "\"verification\":{\"state\":\"great\"}",
        "\"verification\":\"passed\"",
        "\"verification\":{\"state\":\"failed\",\"differences\":{\"ns\":\"a.b\"}}",
        "\"verification\":{\"state\":\"failed\",\"differences\":[{\"ns\":\"a.b\",\"ids\":[5]}]}",
        "\"verification\":{\"state\":\"failed\",\"namespacesTotal\":-3}",
        "\"verification\":{\"state\":\"failed\",\"differences\":[{\"reasons\":[]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\","
                 "\"phase\":\"COMPLETE\",\"state\":\"COMPLETE\",%s}",
                 bad[i]);
        cr_assert(lm_proto_status_decode(msg, strlen(msg), &st, &err), "%s: %s", msg, err.message);
        cr_assert_not(st.verification.present, "%s", msg);
        cr_assert(strstr(st.verification_refused, "field 'verification'"), "%s: %s", msg,
                  st.verification_refused);
        cr_assert_str_eq(st.state, "COMPLETE");
        lm_proto_status_cleanup(&st);
    }
}

/* An events section past the caps keeps the last LM_PROTO_MAX_EVENTS with strings clipped;
 * one that cannot be read is left out: the report is taken either way. */
Test(proto, status_events_are_clipped_or_left_out)
{
    lm_strbuf_t in;
    lm_strbuf_init(&in, LM_PROTO_MAX_BYTES);
    lm_strbuf_append(&in, "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\","
                          "\"phase\":\"STREAMING\",\"state\":\"RUNNING\",\"events\":[");
    for (int i = 0; i < 70; i++) {
        lm_strbuf_appendf(&in, "%s{\"timeMs\":%d,\"kind\":\"%s\",\"message\":\"", i ? "," : "",
                          1000 + i, i == 69 ? "a_kind_longer_than_the_thirty_one_bytes_cap" : "k");
        for (int k = 0; k < (i == 69 ? 300 : 1); k++)
            lm_strbuf_append(&in, "\xc3\xa9xx"); /* 1200 bytes in the last one */
        lm_strbuf_append(&in, "\"}");
    }
    lm_strbuf_append(&in, "]}");
    lm_proto_status_t st;
    lm_error_t err;
    const char *t = lm_strbuf_str(&in);
    cr_assert(lm_proto_status_decode(t, strlen(t), &st, &err), "%s", err.message);
    cr_assert_eq(st.n_events, LM_PROTO_MAX_EVENTS);
    cr_assert(st.events_clipped);
    cr_assert_eq(st.events[0].time_ms, 1000 + 70 - LM_PROTO_MAX_EVENTS, "the oldest are dropped");
    lm_proto_event_t *last = &st.events[LM_PROTO_MAX_EVENTS - 1];
    cr_assert_eq(last->time_ms, 1069);
    cr_assert_eq(strlen(last->kind), LM_PROTO_EVENT_KIND - 1);
    size_t n = strlen(last->message);
    cr_assert(n < LM_PROTO_EVENT_TEXT && n > LM_PROTO_EVENT_TEXT - 5, "%zu", n);
    cr_assert(((unsigned char)last->message[n - 1] & 0xC0) != 0xC0, "cut inside a character");
    cr_assert_eq(st.events_refused[0], 0);
    /* encoded again it stays within the caps */
    lm_strbuf_t out;
    lm_strbuf_init(&out, LM_PROTO_MAX_BYTES);
    cr_assert(lm_proto_status_encode(&st, &out, &err), "%s", err.message);
    cr_assert_null(strstr(lm_strbuf_str(&out), "\"timeMs\":1019,"));
    cr_assert(strstr(lm_strbuf_str(&out), "\"timeMs\":1020,"));
    lm_strbuf_cleanup(&out);
    lm_proto_status_cleanup(&st);
    lm_strbuf_cleanup(&in);

    const char *bad[] = {
        "\"events\":{\"kind\":\"x\"}",
        "\"events\":[5]",
        "\"events\":[{\"timeMs\":-1,\"kind\":\"x\",\"message\":\"m\"}]",
        "\"events\":[{\"timeMs\":1,\"kind\":\"\",\"message\":\"m\"}]",
        "\"events\":[{\"timeMs\":1,\"kind\":\"x\"}]",
        "\"events\":[{\"kind\":\"x\",\"message\":\"m\"}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\","
                 "\"phase\":\"STREAMING\",\"state\":\"RUNNING\",%s}",
                 bad[i]);
        cr_assert(lm_proto_status_decode(msg, strlen(msg), &st, &err), "%s: %s", msg, err.message);
        cr_assert_eq(st.n_events, 0, "%s", msg);
        cr_assert(strstr(st.events_refused, "field 'events'"), "%s: %s", msg, st.events_refused);
        cr_assert_str_eq(st.state, "RUNNING");
        lm_proto_status_cleanup(&st);
    }
}

/* A shards section past the caps keeps the first LM_PROTO_MAX_SHARDS with strings clipped;
 * one that cannot be read is left out: the report is taken either way. */
Test(proto, status_shards_are_clipped_or_left_out)
{
    lm_strbuf_t in;
    lm_strbuf_init(&in, LM_PROTO_MAX_BYTES);
    lm_strbuf_append(&in, "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\","
                          "\"phase\":\"COPYING\",\"state\":\"RUNNING\",\"shards\":[");
    for (int i = 0; i < 70; i++) {
        lm_strbuf_appendf(&in,
                          "%s{\"name\":\"s%d\",\"percentage\":%s,\"documentsCopied\":%d,"
                          "\"lastError\":\"",
                          i ? "," : "", i, i == 0 ? "140.5" : "null", i);
        for (int k = 0; k < (i == 0 ? 300 : 1); k++)
            lm_strbuf_append(&in, "\xc3\xa9xx"); /* 1200 bytes in the first one */
        lm_strbuf_append(&in, "\"}");
    }
    lm_strbuf_append(&in, "]}");
    lm_proto_status_t st;
    lm_error_t err;
    const char *t = lm_strbuf_str(&in);
    cr_assert(lm_proto_status_decode(t, strlen(t), &st, &err), "%s", err.message);
    cr_assert_eq(st.n_shards, LM_PROTO_MAX_SHARDS);
    cr_assert(st.shards_clipped);
    cr_assert_str_eq(st.shards[LM_PROTO_MAX_SHARDS - 1].name, "s63", "the first ones are kept");
    cr_assert_float_eq(st.shards[0].percentage, 100, 1e-9, "a percentage is at most 100");
    cr_assert_not(st.shards[1].has_percentage, "null stays null");
    size_t n = strlen(st.shards[0].last_error);
    cr_assert(n < LM_PROTO_SHARD_ERROR && n > LM_PROTO_SHARD_ERROR - 5, "%zu", n);
    cr_assert(((unsigned char)st.shards[0].last_error[n - 1] & 0xC0) != 0xC0,
              "cut inside a character");
    cr_assert_eq(st.shards_refused[0], 0);
    lm_strbuf_t out;
    lm_strbuf_init(&out, LM_PROTO_MAX_BYTES);
    cr_assert(lm_proto_status_encode(&st, &out, &err), "%s", err.message);
    cr_assert(strstr(lm_strbuf_str(&out), "\"name\":\"s63\""));
    cr_assert_null(strstr(lm_strbuf_str(&out), "\"name\":\"s64\""));
    lm_strbuf_cleanup(&out);
    lm_proto_status_cleanup(&st);
    lm_strbuf_cleanup(&in);

    const char *bad[] = {
        "\"shards\":{\"name\":\"x\"}",
        "\"shards\":[5]",
        "\"shards\":[{\"phase\":\"COPYING\"}]",
        "\"shards\":[{\"name\":\"\"}]",
        "\"shards\":[{\"name\":\"s0\"},{\"name\":\"s1\",\"documentsCopied\":-1}]",
        "\"shards\":[{\"name\":\"s0\",\"lagTimeSeconds\":-2}]",
        "\"shards\":[{\"name\":\"s0\",\"state\":7}]",
        "\"shards\":[{\"name\":\"s0\",\"readyForCutover\":\"yes\"}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\","
                 "\"phase\":\"STREAMING\",\"state\":\"RUNNING\",%s}",
                 bad[i]);
        cr_assert(lm_proto_status_decode(msg, strlen(msg), &st, &err), "%s: %s", msg, err.message);
        cr_assert_eq(st.n_shards, 0, "%s", msg);
        cr_assert_null(st.shards, "%s", msg);
        cr_assert(strstr(st.shards_refused, "field 'shards'"), "%s: %s", msg, st.shards_refused);
        cr_assert_str_eq(st.state, "RUNNING");
        lm_proto_status_cleanup(&st);
    }
    /* the coordinator's members, read with the same rules (the daemon's per-shard status) */
    memset(&st, 0, sizeof st);
    const char *coord = "{\"balancer\":{\"source\":\"stopped\"},\"shards\":[{\"name\":\"s0\","
                        "\"documentsEstimated\":5,\"opsApplied\":3,\"warnings\":0}]}";
    cr_assert(lm_proto_shards_decode(coord, strlen(coord), &st, &err), "%s", err.message);
    cr_assert_eq(st.n_shards, 1);
    lm_proto_status_cleanup(&st);
    const char *nosh = "{\"balancer\":{}}";
    cr_assert(lm_proto_shards_decode(nosh, strlen(nosh), &st, &err), "%s", err.message);
    cr_assert_eq(st.n_shards, 0);
    const char *badsh = "{\"shards\":[{}]}";
    cr_assert_not(lm_proto_shards_decode(badsh, strlen(badsh), &st, &err));
    cr_assert(strstr(err.message, "field 'shards'"), "%s", err.message);
    cr_assert_eq(st.n_shards, 0);
    lm_proto_status_cleanup(&st);
}

/* decode(text) must fail with a message containing `needle`. */
#define REFUSED(decode, type, text, needle)                                                        \
    do {                                                                                           \
        type *m_ = calloc(1, sizeof(type));                                                        \
        lm_error_t e_;                                                                             \
        const char *t_ = (text);                                                                   \
        cr_assert_not(decode(t_, strlen(t_), m_, &e_), "accepted: %s", t_);                        \
        cr_assert(strstr(e_.message, needle), "\"%s\" lacks \"%s\"", e_.message, needle);          \
        free(m_);                                                                                  \
    } while (0)

Test(proto, missing_and_mistyped_fields_are_named)
{
    REFUSED(lm_proto_register_req_decode, lm_proto_register_req_t,
            "{\"v\":1,\"agentVersion\":\"0.1.0\"}", "field 'hostname'");
    REFUSED(lm_proto_register_req_decode, lm_proto_register_req_t,
            "{\"v\":1,\"hostname\":7,\"agentVersion\":\"0.1.0\"}", "field 'hostname'");
    REFUSED(lm_proto_register_resp_decode, lm_proto_register_resp_t,
            "{\"v\":1,\"agentId\":\"a\",\"orgId\":\"o\",\"heartbeatSeconds\":0,\"pollSeconds\":5}",
            "field 'heartbeatSeconds'");
    /* an older control plane gives no agent credential: the agent says to upgrade it */
    REFUSED(lm_proto_register_resp_decode, lm_proto_register_resp_t,
            "{\"v\":1,\"agentId\":\"a\",\"orgId\":\"o\",\"heartbeatSeconds\":1,\"pollSeconds\":5}",
            "upgrade it");
    REFUSED(lm_proto_heartbeat_decode, lm_proto_heartbeat_t,
            "{\"v\":1,\"agentId\":\"a\",\"hostname\":\"h\",\"agentVersion\":\"1\","
            "\"uptimeSeconds\":-1,\"stateDirFreeBytes\":1}",
            "field 'uptimeSeconds'");
    REFUSED(lm_proto_assignments_decode, lm_proto_assignments_t,
            "{\"v\":1,\"jobs\":[{\"jobId\":\"j\",\"kind\":\"migration\",\"source\":{\"uri\":"
            "\"mongodb://a\"}}]}",
            "jobs[0]: field 'target'");
    REFUSED(lm_proto_assignments_decode, lm_proto_assignments_t,
            "{\"v\":1,\"jobs\":[{\"jobId\":\"j\",\"kind\":\"copy\",\"source\":{\"uri\":"
            "\"mongodb://a\"},\"target\":{\"uri\":\"mongodb://b\"}}]}",
            "field 'kind': expected one of validation, migration");
    REFUSED(lm_proto_assignments_decode, lm_proto_assignments_t,
            "{\"v\":1,\"jobs\":[{\"jobId\":\"j\",\"kind\":\"migration\",\"source\":{\"uri\":"
            "\"http://a\"},\"target\":{\"uri\":\"mongodb://b\"}}]}",
            "source: field 'uri': expected a mongodb:// URI");
    REFUSED(lm_proto_assignments_decode, lm_proto_assignments_t,
            "{\"v\":1,\"commands\":[{\"command\":\"extend\",\"jobId\":\"j\"}]}",
            "commands[0]: field 'deadlineMs'");
    REFUSED(lm_proto_assignments_decode, lm_proto_assignments_t,
            "{\"v\":1,\"commands\":[{\"command\":\"restart-shard\",\"jobId\":\"j\"}]}",
            "commands[0]: field 'shard'");
    REFUSED(
        lm_proto_status_decode, lm_proto_status_t,
        "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\",\"phase\":\"COPYING\","
        "\"state\":\"RUNNING\",\"lagTimeSeconds\":-2}",
        "field 'lagTimeSeconds'");
    REFUSED(
        lm_proto_status_decode, lm_proto_status_t,
        "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\",\"phase\":\"COPYING\","
        "\"state\":\"RUNNING\",\"lagTimeSeconds\":0,\"estimatedCutoverSeconds\":-1}",
        "field 'estimatedCutoverSeconds'");
    REFUSED(
        lm_proto_status_decode, lm_proto_status_t,
        "{\"v\":1,\"agentId\":\"a\",\"jobId\":\"j\",\"kind\":\"migration\",\"phase\":\"COPYING\","
        "\"state\":\"RUNNING\",\"checks\":[{\"name\":\"x\",\"result\":\"MAYBE\"}]}",
        "checks[0]: field 'result'");
    REFUSED(lm_proto_register_req_decode, lm_proto_register_req_t, "[1,2]", "a JSON object");
    REFUSED(lm_proto_register_req_decode, lm_proto_register_req_t, "{\"v\":1,", "register request");
}

Test(proto, versions)
{
    REFUSED(lm_proto_heartbeat_decode, lm_proto_heartbeat_t,
            "{\"agentId\":\"a\",\"hostname\":\"h\",\"agentVersion\":\"1\",\"uptimeSeconds\":1,"
            "\"stateDirFreeBytes\":1}",
            "field 'v'");
    REFUSED(lm_proto_heartbeat_decode, lm_proto_heartbeat_t,
            "{\"v\":2,\"agentId\":\"a\",\"hostname\":\"h\",\"agentVersion\":\"1\","
            "\"uptimeSeconds\":1,\"stateDirFreeBytes\":1}",
            "upgrade livemig");
}

Test(proto, unknown_fields_are_ignored)
{
    const char *t = "{\"v\":1,\"future\":{\"x\":[1,2]},\"hostname\":\"h\",\"agentVersion\":\"1\","
                    "\"os\":\"linux\",\"extra\":null}";
    lm_proto_register_req_t m;
    lm_error_t err;
    cr_assert(lm_proto_register_req_decode(t, strlen(t), &m, &err), "%s", err.message);
    cr_assert_str_eq(m.os, "linux");
}

Test(proto, caps_hold)
{
    lm_error_t err;
    /* a string longer than its field */
    char big[300];
    memset(big, 'h', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char msg[600];
    snprintf(msg, sizeof msg, "{\"v\":1,\"hostname\":\"%s\",\"agentVersion\":\"1\"}", big);
    REFUSED(lm_proto_register_req_decode, lm_proto_register_req_t, msg, "field 'hostname'");
    /* more running jobs than the cap */
    lm_strbuf_t sb;
    lm_strbuf_init(&sb, 1u << 20);
    lm_strbuf_append(&sb, "{\"v\":1,\"agentId\":\"a\",\"hostname\":\"h\",\"agentVersion\":\"1\","
                          "\"uptimeSeconds\":1,\"stateDirFreeBytes\":1,\"runningJobs\":[");
    for (int i = 0; i <= LM_PROTO_MAX_JOBS; i++)
        lm_strbuf_appendf(&sb, "%s\"j%d\"", i ? "," : "", i);
    lm_strbuf_append(&sb, "]}");
    REFUSED(lm_proto_heartbeat_decode, lm_proto_heartbeat_t, lm_strbuf_str(&sb), "runningJobs");
    lm_strbuf_cleanup(&sb);
    /* a message over the byte cap */
    size_t n = LM_PROTO_MAX_BYTES + 16;
    char *huge = malloc(n + 1);
    memset(huge, ' ', n);
    memcpy(huge, "{\"v\":1}", 7);
    huge[n] = '\0';
    lm_proto_register_req_t m;
    cr_assert_not(lm_proto_register_req_decode(huge, n, &m, &err));
    free(huge);
}

/* Values the agent turns into names on its file system (docs/security.md (local API)). */
Test(proto, job_ids_usable_as_directory_names)
{
    const char *good[] = {"a", "lm_6a1f", "A-Z_09",
                          "0123456789012345678901234567890123456789012345678901234567890123"};
    const char *bad[] = {"",
                         "..",
                         "../x",
                         "a/b",
                         "a b",
                         "x\n",
                         ".",
                         "a.b",
                         "~root",
                         "%2e%2e",
                         "01234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(lm_proto_job_id_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(lm_proto_job_id_valid(bad[i]), "%s", bad[i]);
}

Test(proto, ca_names_without_dot_components)
{
    const char *good[] = {"src-ca.pem", "/etc/livemig/ca/src.pem", "sub/dir/ca.pem", "a..b.pem"};
    const char *bad[] = {"",         "/",    "../shadow", "/etc/livemig/ca/../../shadow",
                         "a/./b",    "a//b", "dir/",      "./ca.pem",
                         "ca\n.pem", ".."};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert(lm_proto_ca_name_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(lm_proto_ca_name_valid(bad[i]), "%s", bad[i]);
}
