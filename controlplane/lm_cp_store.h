/* The control plane's SQLite store (lm_cp_store.c). */
#ifndef LM_CP_STORE_H
#define LM_CP_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "lm_error.h"

/* Opens (creating) the database at path with its schema; WAL, synchronous=FULL. */
bool lm_cp_store_open(const char *path, sqlite3 **db, lm_error_t *err);
/* A prepared statement with parameters bound by `types`: s = const char * (NULL binds
 * null), i = int64_t, d = double. NULL when the SQL does not prepare. */
sqlite3_stmt *lm_cp_q(sqlite3 *db, const char *sql, const char *types, ...);
/* Runs one statement to completion; false on failure (constraint, I/O). */
bool lm_cp_exec(sqlite3 *db, const char *sql, const char *types, ...);
/* Column i as text, "" for NULL. */
const char *lm_cp_col(sqlite3_stmt *st, int i);

#endif
