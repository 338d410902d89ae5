/* The control plane's SQLite store: schema and a small statement helper. One connection,
 * used under the server's mutex; WAL, synchronous=FULL, foreign keys on. */
#include "lm_cp_store.h"

#include <stdarg.h>
#include <string.h>

static const char schema_sql[] =
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS orgs(id TEXT PRIMARY KEY, created INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS projects(id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES "
    "orgs(id), name TEXT NOT NULL, created INTEGER NOT NULL, UNIQUE(org_id, name));"
    "CREATE TABLE IF NOT EXISTS api_keys(id TEXT PRIMARY KEY, org_id TEXT NOT NULL REFERENCES "
    "orgs(id), role TEXT NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL, descr TEXT, created "
    "INTEGER NOT NULL);"
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
    "DEFAULT 0, created INTEGER NOT NULL);";

bool lm_cp_store_open(const char *path, sqlite3 **db, lm_error_t *err)
{
    *db = NULL;
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
