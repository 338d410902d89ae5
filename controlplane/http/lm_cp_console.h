/* The web console (lm_cp_console.c): its assets, compiled into the binary from
 * controlplane/console/ by controlplane/console/embed.cmake, and its session API
 * (/console/api/session). See controlplane/README.md, "The web console". */
#ifndef LM_CP_CONSOLE_H
#define LM_CP_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "lm_cp_http.h"

/* One file of controlplane/console/, as compiled in (lm_cp_console_assets.c, generated). */
typedef struct {
    const char *name;          /* file name, e.g. "app.js" */
    const unsigned char *data; /* its bytes */
    size_t len;
    const char *etag; /* "\"<SHA-256 of the bytes>\"" */
} lm_cp_asset_t;

/* Every asset, ending with a NULL name. */
extern const lm_cp_asset_t lm_cp_console_assets[];

/* The Content-Type for a file name by its extension (text/html, text/css,
 * text/javascript, image/svg+xml, image/png, each text one with charset=utf-8), or
 * application/octet-stream. */
const char *lm_cp_console_content_type(const char *name);

/* Whether url (a request path) is the console's: "/console" or under "/console/". */
bool lm_cp_console_path(const char *url);

/* Answers one console request into r: an asset (GET/HEAD; 304 when If-None-Match names
 * its ETag), or the session API: POST signs in ({publicKey, privateKey}, Content-Type
 * application/json) and sets the session cookie; GET tells who is signed in (and the CSRF
 * token); DELETE signs out (needs the CSRF token). Takes cp->mu itself. key[80] gets the
 * API key's public part once known (for the audit log), else "". */
void lm_cp_console_answer(lm_cp_t *cp, struct MHD_Connection *c, const char *method,
                          const char *url, const req_t *q, resp_t *r, char key[80]);

#endif
