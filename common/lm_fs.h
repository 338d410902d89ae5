/* lm_fs: files written atomically, read with a size cap, and the checks an agent needs
 * for its state directory. */
#ifndef LM_FS_H
#define LM_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lm_error.h"

/* Writes data to path atomically: a temp file in the same directory is written with the
 * given mode (e.g. 0600), fsync'd, renamed over path, and the directory fsync'd. Readers
 * see the old content or the new, never a mix; a crash leaves no partial file at path. */
bool lm_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        lm_error_t *err);

/* Reads a whole file, refusing one larger than max_bytes. *out is malloc'd and
 * NUL-terminated (caller frees); *len may be NULL. On failure *out is NULL. */
bool lm_fs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, lm_error_t *err);

/* Reads a one-line secret (password file): trailing newline removed, the file must not be
 * readable by group or others. *out is malloc'd (caller frees, ideally after wiping). */
bool lm_fs_read_secret(const char *path, char **out, lm_error_t *err);

/* mkdir -p with the given mode for directories it creates. */
bool lm_fs_mkdir_p(const char *path, mode_t mode, lm_error_t *err);

/* Bytes available to an unprivileged user on the file system holding path. */
bool lm_fs_free_bytes(const char *path, uint64_t *bytes, lm_error_t *err);

#endif
