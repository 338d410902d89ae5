/* The control plane's SQLite store: schema and a small statement helper. One connection,
 * used under the server's mutex; WAL, synchronous=FULL, foreign keys on. */
#include "lm_cp_store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lm_states.h"

static const char schema_sql[] =
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS orgs(id TEXT PRIMARY KEY, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS projects(id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES "
    "orgs(id), name TEXT NOT NULL, created INTEGER NOT NULL, UNIQUE(org_id, name));"
    "CREATE TABLE IF NOT EXISTS api_keys(id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES "
    "orgs(id), role TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL, descr TEXT, created "
    "INTEGER NOT NULL, expires INTEGER, last_used INTEGER);"
    "CREATE TABLE IF NOT EXISTS link_tokens(id TEXT PRIMARY KEY, org_id TEXT NOT NULL "
    "REFERENCES orgs(id), salt TEXT NOT NULL, hash TEXT NOT NULL, access TEXT NOT NULL, created "
    "INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS agents(id TEXT PRIMARY KEY, org_id TEXT NOT NULL, token_id TEXT "
    "NOT NULL, hostname TEXT NOT NULL, version TEXT, os TEXT, registered INTEGER NOT NULL, "
    "last_seen INTEGER, uptime INTEGER, free_bytes INTEGER, running TEXT);"
    "CREATE TABLE IF NOT EXISTS clusters(project_id TEXT NOT NULL REFERENCES projects(id), name "
    "TEXT NOT NULL, uri TEXT NOT NULL, tls INTEGER NOT NULL, ca_file TEXT, username TEXT, "
    "password TEXT, created INTEGER NOT NULL, PRIMARY KEY(project_id, name));"
    "CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, kind TEXT NOT NULL, org_id TEXT NOT "
    "NULL, project_id TEXT NOT NULL, host TEXT NOT NULL, spec TEXT NOT NULL, src_password TEXT, "
    "status TEXT NOT NULL, phase TEXT, ready INTEGER NOT NULL DEFAULT 0, lag REAL, gap REAL, "
    "report TEXT, error TEXT, ready_since INTEGER, window_end INTEGER, delivered INTEGER, agent_id "
    "TEXT, created INTEGER NOT NULL, updated INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS commands(seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT "
    "NULL REFERENCES jobs(id), kind TEXT NOT NULL, deadline INTEGER, delivered INTEGER NOT NULL "
    "DEFAULT 0, created INTEGER NOT NULL);"
    /* the fault history: one row per event an agent reported (agent, time, kind: a report
     * sent again adds nothing), the newest LM_CP_JOB_EVENTS_MAX per job kept */
    "CREATE TABLE IF NOT EXISTS job_events(job_id TEXT NOT NULL, agent_id TEXT NOT NULL, time "
    "INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY(job_id, agent_id, "
    "time, kind));";

/* Schema migrations, by PRAGMA user_version: a database made by an older control plane
 * (version 0, the tables above) is brought up to date at open, in one transaction.
 * Version 2: agents get a credential of their own (cred_salt, cred_hash: a salted hash;
 * agents linked before have none and must be relinked), link-tokens an optional expiry,
 * jobs the agent they were handed to (holder), and relinks (an Owner's one-time permission
 * for a host to link again).
 * Version 3: every sealed secret (jobs.src_password, clusters.password) is bound to its row
 * and field (GCM associated data, LM_CP_AD_*): sealed again with the key, so only a store
 * opened with a reseal function makes it.
 * Version 4: a sharded migration's shards (job_shards: one row per source shard, the host
 * and agent that reported it, its state and its last status as JSON), and commands get an
 * argument (arg: the shard of a restart-shard), and agents the time they were found lost
 * (lost_since: no heartbeat for host_grace; NULL while they heartbeat).
 * Version 5: a live migration spread over several migration hosts (docs/agent-daemon.md):
 * its parts are jobs of kind 'part' under it (parent: the migration; role: lead or follower;
 * shards: the JSON array of the source shards it runs, NULL for a lead waiting for its
 * assignment; released: when its shards were handed to another host), the migration the
 * time its shards were spread (assigned), and each shard row the part that runs it. */
#define SCHEMA_VERSION 5
static const char migrate_2_sql[] =
    "ALTER TABLE agents ADD COLUMN cred_salt TEXT;"
    "ALTER TABLE agents ADD COLUMN cred_hash TEXT;"
    "ALTER TABLE link_tokens ADD COLUMN expires INTEGER;"
    "ALTER TABLE jobs ADD COLUMN holder TEXT;"
    "CREATE TABLE IF NOT EXISTS relinks(org_id TEXT NOT NULL, hostname TEXT NOT NULL, expires "
    "INTEGER NOT NULL, created INTEGER NOT NULL, PRIMARY KEY(org_id, hostname));"
    "CREATE INDEX IF NOT EXISTS agents_host ON agents(org_id, hostname);";
static const char migrate_4_sql[] =
    "CREATE TABLE IF NOT EXISTS job_shards(job_id TEXT NOT NULL REFERENCES jobs(id), name TEXT "
    "NOT NULL, host TEXT NOT NULL, agent_id TEXT, state TEXT NOT NULL, status TEXT NOT NULL, "
    "updated INTEGER NOT NULL, PRIMARY KEY(job_id, name));";

/* Whether table has column (a database an older control plane was run on again may have
 * the newer columns with an older user_version). */
static bool has_column(sqlite3 *db, const char *table, const char *column)
{
    sqlite3_stmt *st =
        lm_cp_q(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", "ss", table, column);
    bool has = st && sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return has;
}

/* The sealed secrets of one column: the SELECT yields the row's key (one or two columns)
 * and the sealed text, the UPDATE takes the new text and the key; ad_fmt names the row. */
typedef struct {
    const char *select, *update, *ad_fmt;
    bool two_keys;
} sealed_column_t;

static const sealed_column_t sealed_columns[] = {
    {"SELECT id, src_password FROM jobs WHERE src_password IS NOT NULL AND src_password != ''",
     "UPDATE jobs SET src_password = ? WHERE id = ?", LM_CP_AD_JOB_PASSWORD, false},
    {"SELECT project_id, name, password FROM clusters WHERE password IS NOT NULL AND password "
     "!= ''",
     "UPDATE clusters SET password = ? WHERE project_id = ? AND name = ?",
     LM_CP_AD_CLUSTER_PASSWORD, true},
};

/* Version 3: every sealed secret sealed again, bound to its row and field. */
static bool reseal_all(sqlite3 *db, lm_cp_store_reseal_fn reseal, void *ctx, lm_error_t *err)
{
    bool ok = true;
    for (size_t c = 0; ok && c < sizeof sealed_columns / sizeof sealed_columns[0]; c++) {
        const sealed_column_t *col = &sealed_columns[c];
        sqlite3_stmt *st = lm_cp_q(db, col->select, "");
        ok = st != NULL;
        while (ok && sqlite3_step(st) == SQLITE_ROW) {
            const char *k1 = lm_cp_col(st, 0), *k2 = col->two_keys ? lm_cp_col(st, 1) : NULL;
            char ad[300];
            if (col->two_keys)
                snprintf(ad, sizeof ad, col->ad_fmt, k1, k2);
            else
                snprintf(ad, sizeof ad, col->ad_fmt, k1);
            lm_strbuf_t out;
            lm_strbuf_init(&out, 1u << 16);
            ok = reseal(ctx, ad, lm_cp_col(st, col->two_keys ? 2 : 1), &out, err);
            if (ok && !lm_cp_exec(db, col->update, col->two_keys ? "sss" : "ss",
                                  lm_strbuf_str(&out), k1, k2))
                ok = lm_error_set(err, LM_ERR_IO, "%s: cannot store it sealed again: %s", ad,
                                  sqlite3_errmsg(db));
            lm_strbuf_cleanup(&out);
        }
        sqlite3_finalize(st);
    }
    return ok;
}

static bool migrate(sqlite3 *db, lm_cp_store_reseal_fn reseal, void *ctx, lm_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int version = 0, target = reseal ? SCHEMA_VERSION : 2;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version >= target)
        return true;
    char *msg = NULL;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
        lm_error_set(err, LM_ERR_IO, "cannot migrate the schema: %s", msg ? msg : "?");
        sqlite3_free(msg);
        return false;
    }
    bool ok = version >= 2 || sqlite3_exec(db, migrate_2_sql, NULL, NULL, &msg) == SQLITE_OK;
    if (!ok)
        lm_error_set(err, LM_ERR_IO, "cannot migrate the schema to version 2: %s", msg ? msg : "?");
    if (ok && target >= 3 && version < 3) {
        ok = reseal_all(db, reseal, ctx, err);
        if (!ok)
            lm_error_prefix(err, "binding the stored secrets to their rows (schema version 3)");
    }
    static const char *const added_4[][3] = {{"commands", "arg", "TEXT"},
                                             {"agents", "lost_since", "INTEGER"}};
    if (ok && target >= 4 && version < 4) {
        ok = sqlite3_exec(db, migrate_4_sql, NULL, NULL, &msg) == SQLITE_OK;
        for (size_t i = 0; ok && i < sizeof added_4 / sizeof added_4[0]; i++) {
            char sql[160];
            snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", added_4[i][0],
                     added_4[i][1], added_4[i][2]);
            ok = has_column(db, added_4[i][0], added_4[i][1]) ||
                 sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK;
        }
        if (!ok)
            lm_error_set(err, LM_ERR_IO, "cannot migrate the schema to version 4: %s",
                         msg ? msg : "?");
    }
    static const char *const added_5[][3] = {
        {"jobs", "parent", "TEXT"},      {"jobs", "role", "TEXT"},
        {"jobs", "shards", "TEXT"},      {"jobs", "released", "INTEGER"},
        {"jobs", "assigned", "INTEGER"}, {"job_shards", "part", "TEXT"}};
    if (ok && target >= 5 && version < 5) {
        for (size_t i = 0; ok && i < sizeof added_5 / sizeof added_5[0]; i++) {
            char add[160];
            snprintf(add, sizeof add, "ALTER TABLE %s ADD COLUMN %s %s", added_5[i][0],
                     added_5[i][1], added_5[i][2]);
            ok = has_column(db, added_5[i][0], added_5[i][1]) ||
                 sqlite3_exec(db, add, NULL, NULL, &msg) == SQLITE_OK;
        }
        ok = ok && sqlite3_exec(db, "CREATE INDEX IF NOT EXISTS jobs_parent ON jobs(parent)", NULL,
                                NULL, &msg) == SQLITE_OK;
        if (!ok)
            lm_error_set(err, LM_ERR_IO, "cannot migrate the schema to version 5: %s",
                         msg ? msg : "?");
    }
    char sql[40];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", target);
    if (ok && sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        ok = lm_error_set(err, LM_ERR_IO, "cannot record the schema version: %s", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_exec(db, ok ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return ok;
}

/* The database and its -wal and -shm files are private to the service (they hold hashes
 * and sealed passwords), whatever the umask: the database is made 0600 before SQLite opens
 * it (SQLite gives -wal and -shm the database's mode), and files an older version left
 * wider are narrowed. */
static bool make_private(const char *path, lm_error_t *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return lm_error_set(err, LM_ERR_IO, "%s: cannot create the control plane's database: %s",
                            path, strerror(errno));
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && ((st.st_mode & 077) == 0 || fchmod(fd, 0600) == 0);
    close(fd);
    static const char *const sides[] = {"-wal", "-shm"};
    for (size_t i = 0; ok && i < sizeof sides / sizeof sides[0]; i++) {
        char side[4200];
        snprintf(side, sizeof side, "%s%s", path, sides[i]);
        ok = stat(side, &st) != 0 || (st.st_mode & 077) == 0 || chmod(side, 0600) == 0;
    }
    if (!ok)
        return lm_error_set(err, LM_ERR_IO, "%s: cannot make the database private (mode 0600): %s",
                            path, strerror(errno));
    return true;
}

bool lm_cp_store_open(const char *path, lm_cp_store_reseal_fn reseal, void *ctx, sqlite3 **db,
                      lm_error_t *err)
{
    *db = NULL;
    if (!make_private(path, err))
        return false;
    if (sqlite3_open_v2(path, db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        lm_error_set(err, LM_ERR_IO, "%s: cannot open the control plane's database: %s", path,
                     *db ? sqlite3_errmsg(*db) : "out of memory");
        sqlite3_close(*db);
        *db = NULL;
        return false;
    }
    sqlite3_busy_timeout(*db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(*db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, &msg) !=
            SQLITE_OK ||
        sqlite3_exec(*db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        lm_error_set(err, LM_ERR_IO, "%s: cannot set up the database: %s", path,
                     msg ? msg : "unknown error");
        sqlite3_free(msg);
        sqlite3_close(*db);
        *db = NULL;
        return false;
    }
    if (!migrate(*db, reseal, ctx, err)) {
        lm_error_prefix(err, "%s", path);
        sqlite3_close(*db);
        *db = NULL;
        return false;
    }
    /* databases made before API keys expired get the columns, and before verification
     * through the control plane the job's verification (the agent's section, JSON) and
     * whether one was asked for (verify_req: 1 until the agent reports its end) */
    static const char *const added[][3] = {{"api_keys", "expires", "INTEGER"},
                                           {"api_keys", "last_used", "INTEGER"},
                                           {"jobs", "verification", "TEXT"},
                                           {"jobs", "verify_req", "INTEGER NOT NULL DEFAULT 0"}};
    for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) {
        sqlite3_stmt *st = lm_cp_q(*db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", "ss",
                                   added[i][0], added[i][1]);
        bool has = st && sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        char sql[160];
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", added[i][0], added[i][1],
                 added[i][2]);
        if (!has && !lm_cp_exec(*db, sql, "")) {
            lm_error_set(err, LM_ERR_IO, "%s: cannot add %s.%s: %s", path, added[i][0], added[i][1],
                         sqlite3_errmsg(*db));
            sqlite3_close(*db);
            *db = NULL;
            return false;
        }
    }
    return true;
}

static sqlite3_stmt *prepare_v(sqlite3 *db, const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    for (int i = 0; types && types[i]; i++) {
        int k = i + 1;
        switch (types[i]) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s)
                sqlite3_bind_text(st, k, s, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, k);
            break;
        }
        case 'i': sqlite3_bind_int64(st, k, va_arg(ap, int64_t)); break;
        case 'd': sqlite3_bind_double(st, k, va_arg(ap, double)); break;
        default: sqlite3_bind_null(st, k); break;
        }
    }
    return st;
}

sqlite3_stmt *lm_cp_q(sqlite3 *db, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = prepare_v(db, sql, types, ap);
    va_end(ap);
    return st;
}

bool lm_cp_exec(sqlite3 *db, const char *sql, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    sqlite3_stmt *st = prepare_v(db, sql, types, ap);
    va_end(ap);
    if (!st)
        return false;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW;
}

const char *lm_cp_col(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *)s : "";
}

/* ---- named statements ---- */

/* st stepped onto its first row, or NULL (finalized) when it has none. */
static sqlite3_stmt *first_row(sqlite3_stmt *st)
{
    if (st && sqlite3_step(st) == SQLITE_ROW)
        return st;
    sqlite3_finalize(st);
    return NULL;
}

/* Whether st (consumed) has a row. */
static bool has_row(sqlite3_stmt *st)
{
    sqlite3_stmt *row = first_row(st);
    sqlite3_finalize(row);
    return row != NULL;
}

bool lm_cp_store_org_ensure(sqlite3 *db, const char *org, int64_t now)
{
    return lm_cp_exec(db, "INSERT OR IGNORE INTO orgs(id, created) VALUES(?, ?)", "si", org, now);
}

bool lm_cp_store_project_insert(sqlite3 *db, const char *id, const char *org, const char *name,
                                int64_t now)
{
    return lm_cp_exec(db, "INSERT INTO projects(id, org_id, name, created) VALUES(?,?,?,?)", "sssi",
                      id, org, name, now);
}

bool lm_cp_store_project_in_org(sqlite3 *db, const char *group, const char *org)
{
    sqlite3_stmt *st =
        first_row(lm_cp_q(db, "SELECT org_id FROM projects WHERE id = ?", "s", group));
    bool found = st && strcmp(lm_cp_col(st, 0), org) == 0;
    sqlite3_finalize(st);
    return found;
}

sqlite3_stmt *lm_cp_store_projects(sqlite3 *db, const char *org)
{
    return lm_cp_q(db, "SELECT id, name FROM projects WHERE org_id = ? ORDER BY created", "s", org);
}

bool lm_cp_store_api_key_insert(sqlite3 *db, const char *id, const char *org, const char *role,
                                const char *salt, const char *hash, const char *desc,
                                int64_t expires, int64_t now)
{
    return lm_cp_exec(db,
                      "INSERT INTO api_keys(id, org_id, role, salt, hash, descr, created, expires) "
                      "VALUES(?,?,?,?,?,?,?,NULLIF(?,0))",
                      "ssssssii", id, org, role, salt, hash, desc, now, expires);
}

sqlite3_stmt *lm_cp_store_api_key(sqlite3 *db, const char *id)
{
    return first_row(lm_cp_q(
        db, "SELECT org_id, role, salt, hash, IFNULL(expires, 0) FROM api_keys WHERE id = ?", "s",
        id));
}

bool lm_cp_store_api_key_used(sqlite3 *db, const char *id, int64_t now)
{
    return lm_cp_exec(db,
                      "UPDATE api_keys SET last_used = ? WHERE id = ? AND (last_used IS NULL OR "
                      "last_used < ? - 60000)",
                      "isi", now, id, now);
}

sqlite3_stmt *lm_cp_store_api_keys(sqlite3 *db, const char *org)
{
    return lm_cp_q(db,
                   "SELECT id, role, IFNULL(descr, ''), created, IFNULL(last_used, 0), "
                   "IFNULL(expires, 0) FROM api_keys WHERE org_id = ? ORDER BY created, id",
                   "s", org);
}

int lm_cp_store_api_key_delete(sqlite3 *db, const char *org, const char *id)
{
    if (!lm_cp_exec(db, "DELETE FROM api_keys WHERE org_id = ? AND id = ?", "ss", org, id))
        return -1;
    return sqlite3_changes(db) > 0;
}

bool lm_cp_store_cluster_insert(sqlite3 *db, const char *group, const char *name, const char *uri,
                                bool tls, const char *ca_file, const char *username,
                                const char *sealed_password, int64_t now)
{
    return lm_cp_exec(db,
                      "INSERT INTO clusters(project_id, name, uri, tls, ca_file, username, "
                      "password, created) VALUES(?,?,?,?,?,?,?,?)",
                      "sssisssi", group, name, uri, (int64_t)tls, ca_file, username,
                      sealed_password, now);
}

sqlite3_stmt *lm_cp_store_clusters(sqlite3 *db, const char *group)
{
    return lm_cp_q(db,
                   "SELECT name, uri, tls, ca_file, username FROM clusters WHERE project_id = ? "
                   "ORDER BY name",
                   "s", group);
}

sqlite3_stmt *lm_cp_store_cluster_names(sqlite3 *db, const char *group)
{
    return lm_cp_q(db, "SELECT name FROM clusters WHERE project_id = ?", "s", group);
}

bool lm_cp_store_cluster_in_org(sqlite3 *db, const char *group, const char *name, const char *org)
{
    return has_row(lm_cp_q(db,
                           "SELECT 1 FROM clusters c JOIN projects p ON p.id = c.project_id "
                           "WHERE c.project_id = ? AND c.name = ? AND p.org_id = ?",
                           "sss", group, name, org));
}

bool lm_cp_store_link_token_live(sqlite3 *db, const char *org, int64_t now)
{
    return has_row(lm_cp_q(db,
                           "SELECT id FROM link_tokens WHERE org_id = ? AND deleted = 0 AND "
                           "(expires IS NULL OR expires > ?)",
                           "si", org, now));
}

bool lm_cp_store_link_token_insert(sqlite3 *db, const char *id, const char *org, const char *salt,
                                   const char *hash, const char *access, int64_t expires,
                                   int64_t now)
{
    if (expires > 0)
        return lm_cp_exec(db,
                          "INSERT INTO link_tokens(id, org_id, salt, hash, access, created, "
                          "expires) VALUES(?,?,?,?,?,?,?)",
                          "sssssii", id, org, salt, hash, access, now, expires);
    return lm_cp_exec(db,
                      "INSERT INTO link_tokens(id, org_id, salt, hash, access, created) "
                      "VALUES(?,?,?,?,?,?)",
                      "sssssi", id, org, salt, hash, access, now);
}

int lm_cp_store_link_token_delete(sqlite3 *db, const char *org, int64_t now)
{
    if (!lm_cp_exec(db, "UPDATE link_tokens SET deleted = ? WHERE org_id = ? AND deleted = 0", "is",
                    now, org))
        return -1;
    return sqlite3_changes(db) > 0 ? 1 : 0;
}

sqlite3_stmt *lm_cp_store_link_token(sqlite3 *db, const char *id)
{
    return first_row(lm_cp_q(
        db, "SELECT org_id, salt, hash, access, deleted, expires FROM link_tokens WHERE id = ?",
        "s", id));
}

sqlite3_stmt *lm_cp_store_agent_auth(sqlite3 *db, const char *id)
{
    return first_row(lm_cp_q(db,
                             "SELECT a.org_id, a.token_id, a.hostname, a.cred_salt, a.cred_hash, "
                             "t.deleted, t.access FROM agents a JOIN link_tokens t ON t.id = "
                             "a.token_id WHERE a.id = ?",
                             "s", id));
}

bool lm_cp_store_relink_allow(sqlite3 *db, const char *org, const char *host, int64_t expires,
                              int64_t now)
{
    return lm_cp_exec(db,
                      "INSERT OR REPLACE INTO relinks(org_id, hostname, expires, created) "
                      "VALUES(?,?,?,?)",
                      "ssii", org, host, expires, now);
}

bool lm_cp_store_relink_take(sqlite3 *db, const char *org, const char *host, int64_t now)
{
    if (!lm_cp_exec(db, "DELETE FROM relinks WHERE org_id = ? AND hostname = ? AND expires > ?",
                    "ssi", org, host, now))
        return false;
    bool taken = sqlite3_changes(db) > 0;
    /* an expired permission is gone too */
    lm_cp_exec(db, "DELETE FROM relinks WHERE org_id = ? AND hostname = ?", "ss", org, host);
    return taken;
}

bool lm_cp_store_host_linked(sqlite3 *db, const char *org, const char *host)
{
    return has_row(lm_cp_q(db,
                           "SELECT 1 FROM agents a JOIN link_tokens t ON t.id = a.token_id "
                           "WHERE a.org_id = ? AND a.hostname = ? AND t.deleted = 0",
                           "ss", org, host));
}

sqlite3_stmt *lm_cp_store_agents(sqlite3 *db, const char *org)
{
    return lm_cp_q(db,
                   "SELECT a.hostname, a.id, a.version, a.os, a.registered, "
                   "COALESCE(a.last_seen, 0), a.free_bytes, a.running, t.deleted != 0 FROM "
                   "agents a JOIN link_tokens t ON t.id = a.token_id WHERE a.org_id = ? ORDER BY "
                   "a.hostname",
                   "s", org);
}

sqlite3_stmt *lm_cp_store_job(sqlite3 *db, const char *group, const char *id, const char *kind)
{
    return first_row(lm_cp_q(db,
                             "SELECT " LM_CP_JOB_COLUMNS " FROM jobs WHERE project_id = ? AND "
                             "id = ? AND kind = ?",
                             "sss", group, id, kind));
}

sqlite3_stmt *lm_cp_store_migrations(sqlite3 *db, const char *group)
{
    return lm_cp_q(db,
                   "SELECT " LM_CP_JOB_COLUMNS " FROM jobs WHERE project_id = ? AND kind = "
                   "'migration' ORDER BY created",
                   "s", group);
}

sqlite3_stmt *lm_cp_store_migration_to(sqlite3 *db, const char *group, const char *cluster)
{
    return first_row(lm_cp_q(db,
                             "SELECT id FROM jobs WHERE kind = 'migration' AND project_id = ? AND "
                             "json_extract(spec, '$.destination.clusterName') = ? AND status NOT "
                             "IN " LM_CP_STATUS_TERMINAL,
                             "ss", group, cluster));
}

bool lm_cp_store_job_insert(sqlite3 *db, const char *id, const char *kind, const char *org,
                            const char *group, const char *host, const char *spec,
                            const char *sealed_password, int64_t now)
{
    return lm_cp_exec(db,
                      "INSERT INTO jobs(id, kind, org_id, project_id, host, spec, src_password, "
                      "status, created, updated) VALUES(?,?,?,?,?,?,?,?,?,?)",
                      "ssssssssii", id, kind, org, group, host, spec, sealed_password,
                      lm_job_status_name(LM_STATUS_NEW), now, now);
}

sqlite3_stmt *lm_cp_store_job_checks(sqlite3 *db, const char *id)
{
    return first_row(
        lm_cp_q(db, "SELECT json_extract(report, '$.checks') FROM jobs WHERE id = ?", "s", id));
}

sqlite3_stmt *lm_cp_store_migration_report(sqlite3 *db, const char *group, const char *id)
{
    return first_row(lm_cp_q(
        db, "SELECT report FROM jobs WHERE project_id = ? AND id = ? AND kind = 'migration'", "ss",
        group, id));
}

bool lm_cp_store_job_set_window(sqlite3 *db, const char *id, int64_t window_end, int64_t now)
{
    return lm_cp_exec(db, "UPDATE jobs SET window_end = ?, updated = ? WHERE id = ?", "iis",
                      window_end, now, id);
}

bool lm_cp_store_job_set_status(sqlite3 *db, const char *id, const char *status, int64_t now)
{
    return lm_cp_exec(db, "UPDATE jobs SET status = ?, updated = ? WHERE id = ?", "sis", status,
                      now, id);
}

int lm_cp_store_job_refuse(sqlite3 *db, const char *id, const char *why, int64_t now)
{
    if (!lm_cp_exec(db,
                    "UPDATE jobs SET error = ?, updated = ? WHERE id = ? AND (error IS NULL OR "
                    "error != ?)",
                    "siss", why, now, id, why))
        return -1;
    return sqlite3_changes(db) > 0 ? 1 : 0;
}

bool lm_cp_store_command_insert(sqlite3 *db, const char *job_id, const char *kind, int64_t deadline,
                                int64_t now)
{
    return lm_cp_exec(db, "INSERT INTO commands(job_id, kind, deadline, created) VALUES(?,?,?,?)",
                      "ssii", job_id, kind, deadline, now);
}

bool lm_cp_store_command_insert_arg(sqlite3 *db, const char *job_id, const char *kind,
                                    const char *arg, int64_t now)
{
    return lm_cp_exec(
        db, "INSERT INTO commands(job_id, kind, deadline, arg, created) VALUES(?,?,0,?,?)", "sssi",
        job_id, kind, arg, now);
}

bool lm_cp_store_job_shard_report(sqlite3 *db, const char *job_id, const char *name,
                                  const char *host, const char *agent_id, const char *part,
                                  const char *state, const char *status, int64_t now)
{
    return lm_cp_exec(
        db,
        "INSERT INTO job_shards(job_id, name, host, agent_id, part, state, status, updated) "
        "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(job_id, name) DO UPDATE SET host = "
        "excluded.host, agent_id = excluded.agent_id, part = excluded.part, state = "
        "excluded.state, status = excluded.status, updated = excluded.updated WHERE "
        "job_shards.part IS NULL OR excluded.part IS NULL OR job_shards.part = excluded.part",
        "sssssssi", job_id, name, host, agent_id, part, state, status, now);
}

bool lm_cp_store_job_shard_assign(sqlite3 *db, const char *job_id, const char *name,
                                  const char *host, const char *part, int64_t now)
{
    return lm_cp_exec(db,
                      "UPDATE job_shards SET host = ?1, part = ?2, agent_id = NULL, state = "
                      "'ASSIGNED', status = json_set(status, '$.state', 'ASSIGNED'), updated = ?3 "
                      "WHERE job_id = ?4 AND name = ?5 AND json_valid(status)",
                      "ssiss", host, part, now, job_id, name);
}

bool lm_cp_store_job_shards_end(sqlite3 *db, const char *job_id, const char *part,
                                const char *state, int64_t now)
{
    return lm_cp_exec(db,
                      "UPDATE job_shards SET state = ?1, status = json_set(status, '$.state', ?1, "
                      "'$.phase', CASE WHEN ?1 = 'COMPLETE' THEN 'COMPLETE' ELSE "
                      "json_extract(status, '$.phase') END), updated = ?2 WHERE job_id = ?3 AND "
                      "state = 'RUNNING' AND json_valid(status) AND (?4 IS NULL OR part = ?4)",
                      "siss", state, now, job_id, part);
}

sqlite3_stmt *lm_cp_store_job_shards(sqlite3 *db, const char *job_id)
{
    return lm_cp_q(db,
                   "SELECT name, host, agent_id, state, status, updated, COALESCE(part, ''), "
                   "COALESCE(json_extract(status, '$.sizeBytes'), json_extract(status, "
                   "'$.bytesCopied'), 0) FROM job_shards WHERE job_id = ? ORDER BY name",
                   "s", job_id);
}

sqlite3_stmt *lm_cp_store_job_shard(sqlite3 *db, const char *job_id, const char *name)
{
    return first_row(
        lm_cp_q(db, "SELECT state, host, part FROM job_shards WHERE job_id = ? AND name = ?", "ss",
                job_id, name));
}

sqlite3_stmt *lm_cp_store_agent_of_host(sqlite3 *db, const char *org, const char *hostname)
{
    return first_row(lm_cp_q(db,
                             "SELECT a.id, t.deleted = 0 FROM agents a LEFT JOIN link_tokens t ON "
                             "t.id = a.token_id WHERE a.org_id = ? AND a.hostname = ? ORDER BY "
                             "a.registered DESC",
                             "ss", org, hostname));
}

bool lm_cp_store_agent_insert(sqlite3 *db, const lm_cp_agent_row_t *a, int64_t now)
{
    return lm_cp_exec(db,
                      "INSERT INTO agents(id, org_id, token_id, hostname, version, os, "
                      "registered, last_seen, cred_salt, cred_hash) VALUES(?,?,?,?,?,?,?,?,?,?)",
                      "ssssssiiss", a->id, a->org, a->token, a->hostname, a->version, a->os, now,
                      now, a->cred_salt, a->cred_hash);
}

bool lm_cp_store_agent_replace(sqlite3 *db, const char *old_id, const lm_cp_agent_row_t *a,
                               int64_t now)
{
    bool agent = lm_cp_exec(db,
                            "UPDATE agents SET id = ?, token_id = ?, version = ?, os = ?, "
                            "registered = ?, last_seen = ?, running = NULL, cred_salt = ?, "
                            "cred_hash = ? WHERE id = ?",
                            "ssssiisss", a->id, a->token, a->version, a->os, now, now, a->cred_salt,
                            a->cred_hash, old_id);
    /* the host's unfinished jobs, and their commands, go to the new agent */
    bool jobs = lm_cp_exec(db,
                           "UPDATE jobs SET delivered = NULL, agent_id = NULL, holder = NULL "
                           "WHERE org_id = ? AND host = ? AND status NOT IN " LM_CP_STATUS_TERMINAL,
                           "ss", a->org, a->hostname);
    bool commands = lm_cp_exec(
        db,
        "UPDATE commands SET delivered = 0 WHERE job_id IN (SELECT id FROM "
        "jobs WHERE org_id = ? AND host = ? AND status NOT IN " LM_CP_STATUS_TERMINAL ")",
        "ss", a->org, a->hostname);
    return agent && jobs && commands;
}

bool lm_cp_store_agent_heartbeat(sqlite3 *db, const char *id, int64_t now, int64_t uptime,
                                 int64_t free_bytes, const char *running, const char *version)
{
    return lm_cp_exec(db,
                      "UPDATE agents SET last_seen = ?, uptime = ?, free_bytes = ?, running = ?, "
                      "version = ? WHERE id = ?",
                      "iiisss", now, uptime, free_bytes, running, version, id);
}

sqlite3_stmt *lm_cp_store_agents_silent(sqlite3 *db, int64_t before)
{
    return lm_cp_q(
        db,
        "SELECT a.id, a.hostname, a.last_seen FROM agents a WHERE a.last_seen IS NOT "
        "NULL AND a.last_seen < ? AND a.lost_since IS NULL AND EXISTS (SELECT 1 FROM "
        "jobs j WHERE j.holder = a.id AND j.kind IN ('migration', 'part') AND j.status NOT "
        "IN " LM_CP_STATUS_TERMINAL ")",
        "i", before);
}

sqlite3_stmt *lm_cp_store_agent_lost_since(sqlite3 *db, const char *id)
{
    return first_row(lm_cp_q(db,
                             "SELECT lost_since FROM agents WHERE id = ? AND lost_since IS "
                             "NOT NULL",
                             "s", id));
}

bool lm_cp_store_agent_set_lost(sqlite3 *db, const char *id, int64_t since)
{
    if (!since)
        return lm_cp_exec(db, "UPDATE agents SET lost_since = NULL WHERE id = ?", "s", id);
    return lm_cp_exec(db, "UPDATE agents SET lost_since = ? WHERE id = ?", "is", since, id);
}

sqlite3_stmt *lm_cp_store_agent_live_migrations(sqlite3 *db, const char *agent_id)
{
    return lm_cp_q(db,
                   "SELECT COALESCE(parent, id) FROM jobs WHERE holder = ? AND kind IN "
                   "('migration', 'part') AND status NOT IN " LM_CP_STATUS_TERMINAL
                   " GROUP BY COALESCE(parent, id) ORDER BY min(created)",
                   "s", agent_id);
}

bool lm_cp_store_link_token_revoked(sqlite3 *db, const char *id)
{
    sqlite3_stmt *st =
        first_row(lm_cp_q(db, "SELECT deleted FROM link_tokens WHERE id = ?", "s", id));
    bool revoked = st && sqlite3_column_int64(st, 0) != 0;
    sqlite3_finalize(st);
    return revoked;
}

sqlite3_stmt *lm_cp_store_cluster(sqlite3 *db, const char *group, const char *name)
{
    return first_row(lm_cp_q(db,
                             "SELECT uri, tls, ca_file, username, password FROM clusters WHERE "
                             "project_id = ? AND name = ?",
                             "ss", group, name));
}

sqlite3_stmt *lm_cp_store_jobs_lost(sqlite3 *db, const char *org, const char *host, int64_t before,
                                    const char *running)
{
    return lm_cp_q(
        db,
        "SELECT id FROM jobs WHERE org_id = ? AND host = ? AND (status NOT "
        "IN " LM_CP_STATUS_TERMINAL
        " OR (kind IN ('migration', 'part') AND verify_req = 1)) AND delivered IS NOT NULL AND "
        "delivered < ? "
        "AND id NOT IN (SELECT value FROM json_each(?))",
        "ssis", org, host, before, running);
}

bool lm_cp_store_job_undeliver(sqlite3 *db, const char *id)
{
    bool job =
        lm_cp_exec(db, "UPDATE jobs SET delivered = NULL, agent_id = NULL WHERE id = ?", "s", id);
    bool commands = lm_cp_exec(db, "UPDATE commands SET delivered = 0 WHERE job_id = ?", "s", id);
    return job && commands;
}

sqlite3_stmt *lm_cp_store_jobs_to_deliver(sqlite3 *db, const char *org, const char *host,
                                          const char *agent, int64_t before, int64_t limit)
{
    return lm_cp_q(
        db,
        "SELECT j.id, j.kind, j.project_id, j.spec, COALESCE(j.src_password, (SELECT "
        "p.src_password FROM jobs p WHERE p.id = j.parent)), j.status IN " LM_CP_STATUS_TERMINAL
        ", j.parent, j.role, j.shards FROM jobs j WHERE j.org_id = ? AND j.host = ? AND "
        "(j.holder IS NULL OR j.holder = ?) AND (j.status NOT IN " LM_CP_STATUS_TERMINAL
        " OR (j.kind IN ('migration', 'part') AND j.verify_req = 1)) AND j.released IS NULL AND "
        "(j.delivered IS NULL OR (j.delivered < ? AND j.agent_id IS NULL)) ORDER BY j.created "
        "LIMIT ?",
        "sssii", org, host, agent, before, limit);
}

bool lm_cp_store_job_delivered(sqlite3 *db, const char *id, const char *agent, int64_t now)
{
    return lm_cp_exec(db, "UPDATE jobs SET delivered = ?, agent_id = NULL, holder = ? WHERE id = ?",
                      "iss", now, agent, id);
}

sqlite3_stmt *lm_cp_store_org_job(sqlite3 *db, const char *id, const char *org)
{
    return first_row(lm_cp_q(db,
                             "SELECT status, ready_since, window_end, host, holder FROM jobs "
                             "WHERE id = ? AND org_id = ?",
                             "ss", id, org));
}

sqlite3_stmt *lm_cp_store_migration_into(sqlite3 *db, const char *validation_id)
{
    return first_row(lm_cp_q(
        db,
        "SELECT m.id, json_extract(v.spec, '$.destination.clusterName') FROM jobs v JOIN jobs m ON "
        "m.kind = 'migration' AND m.project_id = json_extract(v.spec, '$.destination.groupId') "
        "AND json_extract(m.spec, '$.destination.clusterName') = json_extract(v.spec, "
        "'$.destination.clusterName') AND m.status NOT IN " LM_CP_STATUS_TERMINAL " WHERE v.id = ?",
        "s", validation_id));
}

#define UPDATE_JOB                                                                                 \
    "UPDATE jobs SET status = ?, phase = ?, ready = ?, lag = ?, gap = ?, report = ?, error = ?, "  \
    "agent_id = ?, updated = ?, ready_since = CASE WHEN ? THEN ? ELSE ready_since END, "           \
    "window_end = CASE WHEN ? THEN ? ELSE window_end END WHERE id = ?"

bool lm_cp_store_job_report(sqlite3 *db, const char *id, const lm_cp_job_report_t *rep, int64_t now)
{
    int64_t ready = rep->ready, open = rep->open_window;
    if (rep->has_lag)
        return lm_cp_exec(db, UPDATE_JOB,
                          "ssidd"
                          "sssiiiiis",
                          rep->status, rep->phase, ready, rep->lag, rep->gap, rep->report,
                          rep->error, rep->agent_id, now, open, now, open, rep->window_end, id);
    /* "n": lag is NULL (and takes no argument) */
    return lm_cp_exec(db, UPDATE_JOB,
                      "ssind"
                      "sssiiiiis",
                      rep->status, rep->phase, ready, rep->gap, rep->report, rep->error,
                      rep->agent_id, now, open, now, open, rep->window_end, id);
}

sqlite3_stmt *lm_cp_store_windows_closed(sqlite3 *db, int64_t now)
{
    return lm_cp_q(db,
                   "SELECT id FROM jobs WHERE kind = 'migration' AND window_end < ? AND status "
                   "NOT IN " LM_CP_STATUS_TERMINAL,
                   "i", now);
}

bool lm_cp_store_commands_ack(sqlite3 *db, const char *org, const char *host, const char *agent,
                              int64_t seq, int64_t now)
{
    return lm_cp_exec(db,
                      "UPDATE commands SET delivered = ? WHERE seq <= ? AND delivered = 0 AND "
                      "job_id IN (SELECT id FROM jobs WHERE org_id = ? AND host = ? AND (holder "
                      "IS NULL OR holder = ?))",
                      "iisss", now, seq, org, host, agent);
}

sqlite3_stmt *lm_cp_store_commands_pending(sqlite3 *db, const char *org, const char *host,
                                           const char *agent, int64_t limit)
{
    return lm_cp_q(
        db,
        "SELECT c.seq, c.job_id, c.kind, c.deadline, c.arg FROM commands c JOIN jobs j ON "
        "j.id = c.job_id WHERE j.org_id = ? AND j.host = ? AND (j.holder IS NULL OR "
        "j.holder = ?) AND c.delivered = 0 ORDER BY c.seq LIMIT ?",
        "sssi", org, host, agent, limit);
}

bool lm_cp_store_job_events_add(sqlite3 *db, const char *job_id, const char *agent_id,
                                const lm_cp_event_row_t *ev, size_t n)
{
    /* no transaction: the connection is shared by the server's threads; each insert and
     * the trim are whole, and a report sent again redoes them */
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++)
        ok = lm_cp_exec(db,
                        "INSERT OR IGNORE INTO job_events(job_id, agent_id, time, kind, message) "
                        "VALUES(?, ?, ?, ?, ?)",
                        "ssiss", job_id, agent_id, ev[i].time_ms, ev[i].kind, ev[i].message);
    if (ok && n)
        ok = lm_cp_exec(db,
                        "DELETE FROM job_events WHERE job_id = ? AND rowid NOT IN (SELECT rowid "
                        "FROM job_events WHERE job_id = ? ORDER BY time DESC, rowid DESC LIMIT ?)",
                        "ssi", job_id, job_id, (int64_t)LM_CP_JOB_EVENTS_MAX);
    return ok;
}

sqlite3_stmt *lm_cp_store_job_events(sqlite3 *db, const char *job_id)
{
    return lm_cp_q(db,
                   "SELECT time, kind, message, agent_id FROM job_events WHERE job_id = ? ORDER "
                   "BY time, rowid",
                   "s", job_id);
}

sqlite3_stmt *lm_cp_store_job_verification(sqlite3 *db, const char *id)
{
    return first_row(
        lm_cp_q(db, "SELECT verification, verify_req FROM jobs WHERE id = ?", "s", id));
}

bool lm_cp_store_job_set_verification(sqlite3 *db, const char *id, const char *verification,
                                      bool ended, const char *agent_id, int64_t now)
{
    return lm_cp_exec(db,
                      "UPDATE jobs SET verification = ?, verify_req = CASE WHEN ? THEN 0 ELSE "
                      "verify_req END, agent_id = COALESCE(?, agent_id), updated = ? WHERE id = ?",
                      "sisis", verification, (int64_t)ended, agent_id, now, id);
}

bool lm_cp_store_job_request_verify(sqlite3 *db, const char *id, int64_t now)
{
    return lm_cp_exec(db,
                      "UPDATE jobs SET verify_req = 1, verification = NULL, delivered = NULL, "
                      "agent_id = NULL, updated = ? WHERE id = ? AND kind IN ('migration', "
                      "'part') AND released IS NULL",
                      "is", now, id);
}

int lm_cp_store_verifications_lost(sqlite3 *db, const char *org, const char *host,
                                   const char *running, const char *why, int64_t now)
{
    if (!lm_cp_exec(db,
                    "UPDATE jobs SET verification = json_set(verification, '$.state', 'error', "
                    "'$.error', ?), updated = ? WHERE org_id = ? AND host = ? AND kind IN "
                    "('migration', 'part') AND verify_req = 0 AND json_valid(verification) AND "
                    "json_extract(verification, '$.state') = 'running' AND id NOT IN (SELECT "
                    "value FROM json_each(?))",
                    "sisss", why, now, org, host, running))
        return -1;
    return sqlite3_changes(db);
}

/* ---- a live migration spread over several migration hosts: its parts ---- */

bool lm_cp_store_part_insert(sqlite3 *db, const lm_cp_part_row_t *p, int64_t now)
{
    const char *kind = p->kind ? p->kind : "part";
    return lm_cp_exec(db,
                      "INSERT INTO jobs(id, kind, org_id, project_id, host, spec, status, parent, "
                      "role, shards, created, updated) SELECT ?, ?, org_id, project_id, ?, spec, "
                      "?, id, ?, ?, ?, ? FROM jobs WHERE id = ? AND kind IN ('migration', "
                      "'validation')",
                      "ssssssiis", p->id, kind, p->host, lm_job_status_name(LM_STATUS_NEW), p->role,
                      p->shards, now, now, p->parent) &&
           sqlite3_changes(db) == 1;
}

sqlite3_stmt *lm_cp_store_parts(sqlite3 *db, const char *parent)
{
    return lm_cp_q(db,
                   "SELECT " LM_CP_PART_COLUMNS " FROM jobs WHERE parent = ? AND kind = 'part' "
                   "AND released IS NULL ORDER BY created",
                   "s", parent);
}

sqlite3_stmt *lm_cp_store_part(sqlite3 *db, const char *id)
{
    return first_row(lm_cp_q(db,
                             "SELECT parent, role, released, host, kind FROM jobs WHERE id = "
                             "? AND parent IS NOT NULL",
                             "s", id));
}

bool lm_cp_store_part_set_shards(sqlite3 *db, const char *id, const char *shards, int64_t now)
{
    return lm_cp_exec(db, "UPDATE jobs SET shards = ?, updated = ? WHERE id = ?", "sis", shards,
                      now, id);
}

bool lm_cp_store_part_release(sqlite3 *db, const char *id, int64_t now)
{
    /* its commands not delivered yet never go out: the agent, if it comes back, is told
     * its part was handed on (409) */
    return lm_cp_exec(db, "UPDATE jobs SET released = ?1, status = ?2, updated = ?1 WHERE id = ?3",
                      "iss", now, lm_job_status_name(LM_STATUS_CANCELLED), id) &&
           lm_cp_exec(db, "UPDATE commands SET delivered = ? WHERE job_id = ? AND delivered = 0",
                      "is", now, id);
}

sqlite3_stmt *lm_cp_store_validation_hosts(sqlite3 *db, const char *parent)
{
    return lm_cp_q(db,
                   "SELECT id, host, status, COALESCE(error, ''), json_extract(report, "
                   "'$.checks'), report IS NOT NULL FROM jobs WHERE parent = ? AND kind = "
                   "'validation' ORDER BY created",
                   "s", parent);
}

sqlite3_stmt *lm_cp_store_spread(sqlite3 *db, const char *id)
{
    return first_row(lm_cp_q(db,
                             "SELECT status, COALESCE(assigned, 0), spec, org_id, "
                             "COALESCE(window_end, -1) FROM jobs WHERE id = ? AND kind = "
                             "'migration' AND host = ''",
                             "s", id));
}

bool lm_cp_store_spread_assigned(sqlite3 *db, const char *id, int64_t now)
{
    return lm_cp_exec(db, "UPDATE jobs SET assigned = ?1, updated = ?1 WHERE id = ?2", "is", now,
                      id);
}

bool lm_cp_store_parts_command(sqlite3 *db, const char *parent, const char *kind, int64_t deadline,
                               const char *role, int64_t now)
{
    return lm_cp_exec(db,
                      "INSERT INTO commands(job_id, kind, deadline, created) SELECT id, ?1, ?2, ?3 "
                      "FROM jobs WHERE parent = ?4 AND kind = 'part' AND released IS NULL AND "
                      "status NOT IN " LM_CP_STATUS_TERMINAL " AND (?5 IS NULL OR role = ?5) "
                      "ORDER BY created",
                      "siiss", kind, deadline, now, parent, role);
}

bool lm_cp_store_has_command(sqlite3 *db, const char *job_id, const char *kind)
{
    sqlite3_stmt *st = first_row(lm_cp_q(
        db, "SELECT 1 FROM commands WHERE job_id = ? AND kind = ? LIMIT 1", "ss", job_id, kind));
    bool has = st != NULL;
    sqlite3_finalize(st);
    return has;
}

sqlite3_stmt *lm_cp_store_lead_cutovers_due(sqlite3 *db)
{
    return lm_cp_q(
        db,
        "SELECT m.id, l.id FROM jobs m JOIN jobs l ON l.parent = m.id AND l.kind = 'part' AND "
        "l.role = 'lead' AND l.released IS NULL AND l.status NOT IN " LM_CP_STATUS_TERMINAL
        " WHERE m.kind = 'migration' AND m.status NOT IN " LM_CP_STATUS_TERMINAL
        " AND EXISTS (SELECT 1 FROM commands c WHERE c.job_id = m.id AND c.kind = 'cutover') AND "
        "NOT EXISTS (SELECT 1 FROM commands c WHERE c.job_id = l.id AND c.kind = 'cutover') AND "
        "NOT EXISTS (SELECT 1 FROM jobs f WHERE f.parent = m.id AND f.kind = 'part' AND f.role "
        "= 'follower' AND f.released IS NULL AND f.status != 'COMPLETE')",
        "");
}

sqlite3_stmt *lm_cp_store_parts_held(sqlite3 *db, const char *agent_id)
{
    return lm_cp_q(db,
                   "SELECT id, parent, host, role, shards FROM jobs WHERE holder = ? AND kind = "
                   "'part' AND released IS NULL AND status NOT IN " LM_CP_STATUS_TERMINAL
                   " ORDER BY created",
                   "s", agent_id);
}

sqlite3_stmt *lm_cp_store_host_alive(sqlite3 *db, const char *org, const char *host, int64_t since)
{
    return first_row(lm_cp_q(db,
                             "SELECT a.id FROM agents a JOIN link_tokens t ON t.id = a.token_id "
                             "AND t.deleted = 0 WHERE a.org_id = ? AND a.hostname = ? AND "
                             "a.lost_since IS NULL AND a.last_seen >= ?",
                             "ssi", org, host, since));
}

sqlite3_stmt *lm_cp_store_parts_unheld(sqlite3 *db, int64_t before)
{
    return lm_cp_q(db,
                   "SELECT id, parent, host, role FROM jobs WHERE kind = 'part' AND holder IS "
                   "NULL AND released IS NULL AND status NOT IN " LM_CP_STATUS_TERMINAL
                   " AND created < ? ORDER BY created",
                   "i", before);
}
