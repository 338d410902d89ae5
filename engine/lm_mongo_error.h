/* lm_mongo_error: the MongoDB server error codes livemig acts on, by name, with predicates.
 *
 * A decision about a server's answer reads this table, never a bare number or the message
 * text: `lm_mongo_unauthorized(e.code)`, not `e.code == 13`. Codes are the server's own
 * (src/mongo/base/error_codes.yml in the server's source). */
#ifndef LM_MONGO_ERROR_H
#define LM_MONGO_ERROR_H

#include <stdbool.h>
#include <stdint.h>

#include "lm_error.h"

typedef enum {
    LM_MONGO_UNAUTHORIZED = 13,
    LM_MONGO_NAMESPACE_NOT_FOUND = 26,
    LM_MONGO_INDEX_NOT_FOUND = 27,
    LM_MONGO_CURSOR_NOT_FOUND = 43,
    LM_MONGO_NAMESPACE_EXISTS = 48,
    LM_MONGO_CAPPED_POSITION_LOST = 136,
    LM_MONGO_CHANGE_STREAM_FATAL = 280,
    LM_MONGO_CHANGE_STREAM_HISTORY_LOST = 286,
    LM_MONGO_DUPLICATE_KEY = 11000,
} lm_mongo_code_t;

/* The user lacks a privilege (or is not authenticated) for the operation. */
static inline bool lm_mongo_unauthorized(uint32_t code)
{
    return code == LM_MONGO_UNAUTHORIZED;
}

static inline bool lm_mongo_duplicate_key(uint32_t code)
{
    return code == LM_MONGO_DUPLICATE_KEY;
}

/* The collection (or database) is not there: a drop of it has nothing to do. */
static inline bool lm_mongo_namespace_not_found(uint32_t code)
{
    return code == LM_MONGO_NAMESPACE_NOT_FOUND;
}

static inline bool lm_mongo_namespace_exists(uint32_t code)
{
    return code == LM_MONGO_NAMESPACE_EXISTS;
}

static inline bool lm_mongo_index_not_found(uint32_t code)
{
    return code == LM_MONGO_INDEX_NOT_FOUND;
}

/* The server no longer has the cursor: it restarted (its cursors died with it, and the
 * driver reconnected before the next getMore), or the cursor was killed or timed out. A
 * reader that knows its position opens a new one from there. */
static inline bool lm_mongo_cursor_not_found(uint32_t code)
{
    return code == LM_MONGO_CURSOR_NOT_FOUND;
}

/* The change history no longer holds the position asked for: resuming would skip
 * changes ("oplog window exceeded"). */
static inline bool lm_mongo_history_lost(uint32_t code)
{
    return code == LM_MONGO_CAPPED_POSITION_LOST || code == LM_MONGO_CHANGE_STREAM_HISTORY_LOST ||
           code == LM_MONGO_CHANGE_STREAM_FATAL;
}

/* The lm_error_t class of a server error: LM_ERR_AUTH for a missing privilege. */
static inline lm_error_code_t lm_mongo_error_class(uint32_t code)
{
    return lm_mongo_unauthorized(code) ? LM_ERR_AUTH : LM_ERR_SERVER;
}

#endif
