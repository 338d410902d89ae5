/* livemig-controlplane under attack: each test performs an attack on a real control plane
 * (its own throwaway CA, 127.0.0.1 and a free port) and checks that it is refused. The
 * client is libcurl used directly, since some attacks need what lm_http does not offer on
 * purpose (a chosen source address, a body sent slowly). docs/security.md (the control plane)
 * lists which protection each test proves. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_proto.h"
#include "lm_test_cp.h"
#include "lm_test_proc.h"
#include "lm_test_util.h"
#include "lm_time.h"

static char dir[512], keyfile[700];
static char pub[80], priv[80];
static lm_test_cp_t cp;

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
}

static void teardown(void)
{
    lm_test_cp_kill(&cp);
    lm_test_rmtree(dir);
}

TestSuite(cp_security, .init = setup, .fini = teardown, .timeout = 120);

#define CLI(out, ...) lm_test_cp_cli(&cp, pub, keyfile, out, __VA_ARGS__)

/* A control plane with extra config lines, an org1 Owner key (pub, priv), started. */
static void start_cp(const char *extra_yaml)
{
    lm_test_cp_init(&cp, dir, extra_yaml);
    lm_test_cp_bootstrap(&cp, "org1", pub, sizeof pub, keyfile, sizeof keyfile);
    char *k = lm_test_slurp(keyfile);
    k[strcspn(k, "\n")] = '\0';
    snprintf(priv, sizeof priv, "%s", k);
    free(k);
    lm_test_cp_start(&cp);
}

/* ---- a libcurl client ---- */

typedef struct {
    const char *source;   /* the local address to send from (NULL: any) */
    const char *user;     /* HTTP Basic: user and password */
    const char *password; /* (the API key) */
    const char *bearer;   /* or an agent credential */
    const char *agent;    /* X-Livemig-Agent */
    const char *body;
    size_t body_len;
    long timeout_ms; /* 0: 30 s */
    const char *ca;  /* the CA to trust (NULL: the test's) */
} call_t;

typedef struct {
    long status; /* 0: no answer (connection refused, reset, timed out) */
    char text[4096];
    size_t len;
    double seconds; /* the whole exchange, connect and TLS handshake included */
    CURLcode code;
} reply_t;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    reply_t *r = ud;
    size_t take = sz * n;
    if (take > sizeof r->text - 1 - r->len)
        take = sizeof r->text - 1 - r->len;
    memcpy(r->text + r->len, p, take);
    r->len += take;
    r->text[r->len] = '\0';
    return sz * n;
}

static void call(const char *method, const char *path, const call_t *c, reply_t *r)
{
    char url[300], src[80], h1[300], h2[200];
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "%s%s", cp.url, path);
    CURL *h = curl_easy_init();
    cr_assert(h);
    struct curl_slist *hdr = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_CAINFO, c->ca ? c->ca : cp.ca);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms ? c->timeout_ms : 30000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    if (c->source) {
        snprintf(src, sizeof src, "host!%s", c->source);
        curl_easy_setopt(h, CURLOPT_INTERFACE, src);
    }
    if (c->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
    }
    if (c->bearer) {
        snprintf(h1, sizeof h1, "Authorization: Bearer %s", c->bearer);
        hdr = curl_slist_append(hdr, h1);
    }
    if (c->agent) {
        snprintf(h2, sizeof h2, "X-Livemig-Agent: %s", c->agent);
        hdr = curl_slist_append(hdr, h2);
    }
    if (c->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)c->body_len);
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    r->code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &r->seconds);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
}

/* An admin GET with the Owner key, from source. */
static void admin_get(const char *source, const char *path, reply_t *r)
{
    call_t c = {.source = source, .user = pub, .password = priv, .timeout_ms = 5000};
    call("GET", path, &c, r);
}

/* ---- connections ---- */

/* A TCP connection to the control plane that sends nothing (not even a TLS hello). */
static int idle_connection(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cp.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    return fd;
}

/* Whether the server has closed fd (EOF or reset); false while it is open or connecting. */
static bool closed_by_server(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) != 1)
        return false;
    char b;
    ssize_t n = recv(fd, &b, 1, 0);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* How many of fds the server has closed; seen[] remembers those found closed before. */
static int count_closed(const int *fds, bool *seen, int n)
{
    int closed = 0;
    for (int i = 0; i < n; i++) {
        seen[i] = seen[i] || closed_by_server(fds[i]);
        closed += seen[i];
    }
    return closed;
}

#define FLOOD 600

/* The attack: 600 idle TCP connections from 127.0.0.1 (more than the 512 connections the
 * server takes at most), then an admin request. It proves that (1) one address holds at most
 * max_connections_per_address (32) connections: the flood's others are closed at once, so
 * the admin request from another address (127.0.0.2, also the loopback interface) is
 * answered within 1 s; (2) connections that never authenticate are closed after
 * auth_timeout (5 s here), not after the 120 s an authenticated one may idle. Before the
 * fix the flood filled all 512 places for 120 s and the admin request got no answer. */
Test(cp_security, an_idle_flood_from_one_address_starves_no_one)
{
    start_cp("auth_timeout: 5s\n");
    static int fds[FLOOD];
    static bool seen[FLOOD];
    int64_t flood_start = lm_time_mono_ms();
    for (int i = 0; i < FLOOD; i++)
        fds[i] = idle_connection();
    lm_time_sleep_ms(200, NULL); /* let the server accept them (or refuse them) */
    reply_t r;
    admin_get("127.0.0.2", "/api/atlas/v2/orgs/org1/groups", &r);
    cr_assert_eq(r.status, 200, "no answer during the flood (curl %d): %s", (int)r.code, r.text);
    cr_assert_lt(r.seconds, 1.0, "the admin request took %.3f s during the flood", r.seconds);
    /* the per-address cap: all but 32 of the flood are closed well before auth_timeout (a
     * loaded machine may take a moment to accept and close 600 connections: up to 3 s of
     * the 5) */
    int closed = count_closed(fds, seen, FLOOD);
    while (closed < FLOOD - 32 && lm_time_mono_ms() - flood_start < 3000) {
        lm_time_sleep_ms(50, NULL);
        closed = count_closed(fds, seen, FLOOD);
    }
    cr_assert_geq(closed, FLOOD - 32, "only %d of %d idle connections were refused within 3 s",
                  closed, FLOOD);
    /* the pre-authentication timeout: the rest go too (bounded wait, far below 120 s) */
    int64_t until = lm_time_mono_ms() + 15000;
    while (closed < FLOOD && lm_time_mono_ms() < until) {
        lm_time_sleep_ms(200, NULL);
        closed = count_closed(fds, seen, FLOOD);
    }
    cr_assert_eq(closed, FLOOD, "%d idle connections were still open after 15 s", FLOOD - closed);
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
}

/* ---- the agent's long poll ---- */

typedef struct {
    const char *bearer, *agent;
    reply_t r;
} poller_t;

static void *poll_thread(void *ud)
{
    poller_t *p = ud;
    call_t c = {.bearer = p->bearer, .agent = p->agent};
    call("GET", "/api/agent/v1/assignments?wait=3", &c, &p->r);
    return NULL;
}

/* A link-token for org1 and an agent enrolled with it: the agent's own credential into
 * bearer (the "agentId:agentSecret" part: the link-token only enrolls), its id into agent. */
static void link_agent(char *bearer, size_t bsz, char *agent, size_t asz)
{
    char *out;
    cr_assert_eq(CLI(&out, "lm link create --orgId org1"), 0, "%s", out);
    out[strcspn(out, "\n")] = '\0';
    lm_proto_link_token_t t;
    lm_error_t err;
    cr_assert(lm_proto_link_token_decode(out, strlen(out), &t, &err), "%s", err.message);
    free(out);
    snprintf(bearer, bsz, "%s:%s", t.token_id, t.secret);
    lm_proto_link_token_clear(&t);
    lm_proto_register_req_t rq = {.os = "Linux"};
    snprintf(rq.hostname, sizeof rq.hostname, "h1");
    snprintf(rq.agent_version, sizeof rq.agent_version, "0.1.0");
    lm_strbuf_t b;
    lm_strbuf_init(&b, 1u << 16);
    cr_assert(lm_proto_register_req_encode(&rq, &b, &err));
    call_t c = {.bearer = bearer, .body = lm_strbuf_str(&b), .body_len = b.len};
    reply_t r;
    call("POST", "/api/agent/v1/register", &c, &r);
    lm_strbuf_cleanup(&b);
    cr_assert_eq(r.status, 200, "%s", r.text);
    lm_proto_register_resp_t rs;
    cr_assert(lm_proto_register_resp_decode(r.text, r.len, &rs, &err), "%s", err.message);
    snprintf(agent, asz, "%s", rs.agent_id);
    snprintf(bearer, bsz, "%s:%s", rs.agent_id, rs.agent_secret);
    lm_proto_register_resp_clear(&rs);
}

/* The attack: more agent polls than max_waiting_polls (2 here) wait at once. Three polls
 * that would each wait 3 s arrive together: at most two wait, the third is answered 503
 * TOO_MANY_POLLS at once, and an admin request meanwhile is answered. Waiting polls can
 * therefore never take the connections admin requests need. Before the fix all three
 * waited. */
Test(cp_security, waiting_polls_have_a_budget_of_their_own)
{
    start_cp("max_waiting_polls: 2\n");
    char bearer[200], agent[80];
    link_agent(bearer, sizeof bearer, agent, sizeof agent);
    poller_t p[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        p[i] = (poller_t){.bearer = bearer, .agent = agent};
        cr_assert_eq(pthread_create(&t[i], NULL, poll_thread, &p[i]), 0);
    }
    reply_t r;
    admin_get(NULL, "/api/atlas/v2/orgs/org1/groups", &r);
    cr_assert_eq(r.status, 200, "%s", r.text);
    int refused = 0, waited = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        if (p[i].r.status == 503 && strstr(p[i].r.text, "TOO_MANY_POLLS"))
            refused++;
        else if (p[i].r.status == 200)
            waited++;
        else
            cr_assert_fail("poll %d: %ld %s", i, p[i].r.status, p[i].r.text);
    }
    cr_assert_eq(refused, 1, "%d of 3 polls were refused (max_waiting_polls: 2)", refused);
    cr_assert_eq(waited, 2);
}

/* ---- SIGHUP ---- */

/* Sends SIGHUP and waits (at most 10 s) for the reload's log line, the n-th one. */
static void hup(int n)
{
    cr_assert_eq(kill(cp.pid, SIGHUP), 0);
    int64_t until = lm_time_mono_ms() + 10000;
    int seen = 0;
    while (seen < n && lm_time_mono_ms() < until) {
        lm_time_sleep_ms(100, NULL);
        char *log = lm_test_slurp(cp.log);
        seen = 0;
        for (const char *p = log; (p = strstr(p, "reload: ")); p++)
            seen++;
        free(log);
    }
    cr_assert_eq(seen, n, "no reload logged after SIGHUP:\n%s", lm_test_slurp(cp.log));
}

static void must_answer(const char *ca)
{
    reply_t r;
    call_t c = {.user = pub, .password = priv, .ca = ca};
    call("GET", "/api/atlas/v2/orgs/org1/groups", &c, &r);
    cr_assert_eq(r.status, 200, "curl %d: %s\n%s", (int)r.code, r.text, lm_test_slurp(cp.log));
}

/* The attack (an operator's mistake as much): `systemctl reload` sends SIGHUP, with a
 * configuration or a certificate that may be broken. It proves that the control plane
 * keeps answering after every SIGHUP, keeps its running certificate when the new one is
 * invalid (the log names the file, or file:line for the configuration), and serves a
 * replaced certificate (from another CA here) after the reload. Before the fix the first
 * SIGHUP killed it. */
Test(cp_security, sighup_reloads_the_certificate_and_never_stops)
{
    start_cp(NULL);
    hup(1);
    must_answer(NULL);
    /* a configuration with an error: logged with its line, nothing changes */
    char *conf = lm_test_slurp(cp.conf);
    cr_assert_eq(lm_test_sh("printf 'no_such_key: 1\n' >> '%s'", cp.conf), 0);
    hup(2);
    must_answer(NULL);
    char *log = lm_test_slurp(cp.log);
    cr_assert(strstr(log, "cp.yaml:") && strstr(log, "no_such_key") &&
                  strstr(log, "keeping the running configuration"),
              "%s", log);
    free(log);
    char path[800];
    lm_test_write(dir, "cp.yaml", conf, path, sizeof path);
    free(conf);
    /* a broken certificate: logged with its file, the running one stays */
    char certs2[700], pem[800], key[800];
    snprintf(certs2, sizeof certs2, "%s/certs2", dir);
    snprintf(pem, sizeof pem, "%s/server.pem", cp.certs);
    snprintf(key, sizeof key, "%s/server.key", cp.certs);
    cr_assert_eq(lm_test_sh("'%s/scripts/mkcerts' '%s'", LM_SOURCE_DIR, certs2), 0);
    cr_assert_eq(lm_test_sh("cp '%s' '%s.good' && echo garbage > '%s'", pem, pem, pem), 0);
    hup(3);
    must_answer(NULL);
    log = lm_test_slurp(cp.log);
    cr_assert(strstr(log, pem) && strstr(log, "keeping the running certificate"), "%s", log);
    free(log);
    /* a key that is not the certificate's: refused too */
    cr_assert_eq(lm_test_sh("cp '%s.good' '%s' && cp '%s/server.key' '%s'", pem, pem, certs2, key),
                 0);
    hup(4);
    must_answer(NULL);
    log = lm_test_slurp(cp.log);
    cr_assert(strstr(log, "is not the key of"), "%s", log);
    free(log);
    /* a new certificate and key (another CA): served from now on */
    cr_assert_eq(lm_test_sh("cp '%s/server.pem' '%s'", certs2, pem), 0);
    hup(5);
    char ca2[800];
    snprintf(ca2, sizeof ca2, "%s/ca.pem", certs2);
    must_answer(ca2);
    reply_t r;
    call_t c = {.user = pub, .password = priv};
    call("GET", "/api/atlas/v2/orgs/org1/groups", &c, &r);
    cr_assert_eq(r.status, 0, "the old certificate is still served");
    cr_assert_eq(kill(cp.pid, 0), 0, "the control plane is gone");
}

/* ---- files that hold secrets ---- */

/* `livemig-controlplane --config F ARGS` with its output into *out; the exit status. */
static int cp_run(const char *args, char **out)
{
    char log[700];
    snprintf(log, sizeof log, "%s/run.out", dir);
    int rc =
        lm_test_sh("'%s' --config '%s' %s > '%s' 2>&1 < /dev/null", LM_CP_BIN, cp.conf, args, log);
    *out = lm_test_slurp(log);
    return rc;
}

/* The attack: another local user reads the secrets key or the TLS key because the file is
 * 0644. It proves that the control plane refuses to check or serve with such a file, and
 * says which file and `chmod 600`. Before the fix both were accepted. */
Test(cp_security, a_key_file_others_can_read_is_refused)
{
    lm_test_cp_init(&cp, dir, NULL);
    char secrets[700], tls_key[800], *out;
    snprintf(secrets, sizeof secrets, "%s/secrets.key", dir);
    snprintf(tls_key, sizeof tls_key, "%s/server.key", cp.certs);
    cr_assert_eq(cp_run("--check-config", &out), 0, "%s", out);
    free(out);
    const char *files[] = {secrets, tls_key};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(lm_test_sh("chmod 644 '%s'", files[i]), 0);
        cr_assert_neq(cp_run("--check-config", &out), 0, "%s accepted with 0644", files[i]);
        cr_assert(strstr(out, files[i]) && strstr(out, "chmod 600"), "%s", out);
        free(out);
        cr_assert_neq(cp_run("", &out), 0, "served with %s 0644", files[i]);
        cr_assert(strstr(out, files[i]) && strstr(out, "chmod 600"), "%s", out);
        cr_assert_not(strstr(out, "LISTENING"), "%s", out);
        free(out);
        cr_assert_eq(lm_test_sh("chmod 600 '%s'", files[i]), 0);
    }
}

static unsigned mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    return (unsigned)(st.st_mode & 0777);
}

/* The attack: a local user reads the database (API key hashes, sealed passwords) because
 * it took its mode from a umask of 022. It proves the database and its -wal and -shm are
 * 0600 when made under umask 022, by bootstrap and by the server. Before the fix they were
 * 0644. */
Test(cp_security, the_database_is_private_whatever_the_umask)
{
    mode_t old = umask(022); /* the control plane and bootstrap inherit it */
    start_cp(NULL);
    char *out;
    cr_assert_eq(CLI(&out, "projects create p1 --orgId org1"), 0, "%s", out);
    free(out);
    umask(old);
    const char *sides[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char f[800];
        snprintf(f, sizeof f, "%s/cp.db%s", dir, sides[i]);
        cr_assert_eq(mode_of(f), 0600, "%s has mode %04o", f, mode_of(f));
    }
}

/* The README's path as root: `bootstrap` run by root into the packaged state directory
 * (owned by the service user) leaves a database the service can open: it belongs to the
 * directory's owner. Needs root (skipped otherwise); "nobody" stands for the service user. */
Test(cp_security, bootstrap_as_root_leaves_the_database_to_the_service_user)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    lm_test_cp_init(&cp, dir, NULL);
    char state[700], *out;
    snprintf(state, sizeof state, "%s/state", dir);
    cr_assert_eq(lm_test_sh("mkdir -m 700 '%s' && chown 65534:65534 '%s' && sed -i "
                            "'s|^db_path: .*|db_path: %s/cp.db|' '%s'",
                            state, state, state, cp.conf),
                 0);
    cr_assert_eq(cp_run("bootstrap --org org1", &out), 0, "%s", out);
    free(out);
    char db[800];
    snprintf(db, sizeof db, "%s/cp.db", state);
    struct stat st;
    cr_assert_eq(stat(db, &st), 0);
    cr_assert_eq(st.st_uid, 65534, "the database belongs to uid %u", (unsigned)st.st_uid);
    cr_assert_eq(st.st_mode & 0777, 0600);
}

/* ---- core dumps ---- */

/* The attack: a core dump (or another process of the same user reading /proc/PID/mem)
 * gets the secrets key, passwords and link-tokens out of the control plane's memory. It
 * proves the process is not dumpable: the kernel then gives its /proc/PID files to root,
 * so the control plane runs here as uid 65534 and /proc/PID/status must belong to root,
 * not 65534. Needs root to switch users (skipped otherwise). Before the fix the file
 * belonged to 65534. */
Test(cp_security, the_control_plane_is_not_dumpable)
{
    if (geteuid() != 0)
        cr_skip_test("needs root");
    lm_test_cp_init(&cp, dir, NULL);
    cr_assert_eq(lm_test_sh("chown -R 65534:65534 '%s' && chmod 711 '%s'", dir, dir), 0);
    char *argv[] = {(char *)"setpriv",
                    (char *)"--reuid=65534",
                    (char *)"--regid=65534",
                    (char *)"--clear-groups",
                    (char *)LM_CP_BIN,
                    (char *)"--config",
                    cp.conf,
                    NULL};
    cp.pid = lm_test_spawn(argv, cp.log);
    int64_t until = lm_time_mono_ms() + 20000;
    bool up = false;
    while (!up && lm_time_mono_ms() < until) {
        char *log = lm_test_slurp(cp.log);
        up = strstr(log, "LISTENING port=") != NULL;
        free(log);
        if (!up)
            lm_time_sleep_ms(50, NULL);
    }
    cr_assert(up, "the control plane did not start as uid 65534:\n%s", lm_test_slurp(cp.log));
    char status[64], text[4096] = "";
    snprintf(status, sizeof status, "/proc/%d/status", (int)cp.pid);
    FILE *f = fopen(status, "r");
    cr_assert(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert(strstr(text, "Uid:\t65534"), "not running as 65534: %s", text);
    struct stat st;
    cr_assert_eq(stat(status, &st), 0);
    cr_assert_eq(st.st_uid, 0, "%s belongs to uid %u: the process is dumpable", status,
                 (unsigned)st.st_uid);
}

/* ---- request bodies ---- */

typedef struct {
    size_t sent, total;
} upload_t;

static size_t on_upload(char *buf, size_t sz, size_t n, void *ud)
{
    upload_t *u = ud;
    size_t take = sz * n;
    if (take > u->total - u->sent)
        take = u->total - u->sent;
    memset(buf, 'x', take);
    u->sent += take;
    return take;
}

/* POSTs a body of `total` bytes, counting how much of it curl was asked for. */
static void big_post(const char *user, const char *password, upload_t *u, reply_t *r)
{
    char url[300];
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "%s/api/atlas/v2/groups", cp.url);
    CURL *h = curl_easy_init();
    cr_assert(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_CAINFO, cp.ca);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload);
    curl_easy_setopt(h, CURLOPT_READDATA, u);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)u->total);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    if (user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, password);
    }
    r->code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
}

/* The attack: unauthenticated requests with large bodies, to make the server read and
 * buffer them. It proves the caller is authenticated on the headers: a body of 8 MiB (over
 * the 64 KiB max_request_body) without a key gets 401, not 413, and the server answered
 * before the client had sent it (curl sends Expect: 100-continue and was never asked for
 * the body). With a key the same body gets 413. Before the fix: 413 after the whole body
 * was read. */
Test(cp_security, a_body_is_read_only_after_authentication)
{
    start_cp(NULL);
    upload_t u = {.total = 8u << 20};
    reply_t r;
    big_post(NULL, NULL, &u, &r);
    cr_assert_eq(r.status, 401, "curl %d, %ld: %s", (int)r.code, r.status, r.text);
    cr_assert_lt(u.sent, u.total, "the whole body was sent before the refusal");
    u = (upload_t){.total = 8u << 20};
    big_post(pub, "wrong-secret", &u, &r);
    cr_assert_eq(r.status, 401, "%ld: %s", r.status, r.text);
    cr_assert_lt(u.sent, u.total);
    u = (upload_t){.total = 8u << 20};
    big_post(pub, priv, &u, &r);
    cr_assert_eq(r.status, 413, "%ld: %s", r.status, r.text);
}
