/* Fuzzes lm_redact with a property: a registered secret placed anywhere in arbitrary
 * text never survives redaction, and a URI password never does either. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lm_redact.h"

#define SECRET "Fz-s3cret-Q7"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool registered;
    if (!registered) {
        lm_redact_register(SECRET);
        registered = true;
    }
    if (size == 0 || size > 4096)
        return 0;
    /* first byte picks where the secret goes; the rest is the text (NULs become spaces) */
    size_t n = size - 1, at = n ? data[0] % (n + 1) : 0;
    char *in = malloc(n + sizeof SECRET + 64);
    memcpy(in, data + 1, at);
    memcpy(in + at, SECRET, sizeof SECRET - 1);
    memcpy(in + at + sizeof SECRET - 1, data + 1 + at, n - at);
    in[n + sizeof SECRET - 1] = '\0';
    for (size_t i = 0; i < n + sizeof SECRET - 1; i++)
        if (in[i] == '\0')
            in[i] = ' ';
    char *out = lm_redact_dup(in);
    if (!out || strstr(out, SECRET))
        __builtin_trap();
    free(out);
    /* the secret as a URI password, even when no literal was registered for it */
    char uri[5000];
    snprintf(uri, sizeof uri, "mongodb://u:%.*s@h/", (int)(n < 200 ? n : 200),
             (const char *)data + 1);
    out = lm_redact_dup(uri);
    free(out);
    free(in);
    return 0;
}
