/* lm_fs: see lm_fs.h. */
#include "lm_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lm_encode.h"

#define SECRET_MAX 4096

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void dir_of(const char *path, char *dir, size_t dirsz)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, dirsz, ".");
    else if (slash == path)
        snprintf(dir, dirsz, "/");
    else
        snprintf(dir, dirsz, "%.*s", (int)(slash - path), path);
}

bool lm_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        lm_error_t *err)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int fd = -1, dfd = -1;
    bool ok = false;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return lm_error_set(err, LM_ERR_INVALID, "%s: path too long", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        lm_error_set(err, LM_ERR_IO, "%s: cannot create a temporary file: %s", path,
                     strerror(errno));
        goto out;
    }
    if (fchmod(fd, mode) != 0 || !write_all(fd, data, len) || fsync(fd) != 0) {
        lm_error_set(err, LM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        lm_error_set(err, LM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        lm_error_set(err, LM_ERR_IO, "%s: cannot replace: %s", path, strerror(errno));
        goto out;
    }
    tmp[0] = '\0';
    dir_of(path, dir, sizeof dir);
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0)
        fsync(dfd); /* best effort: some file systems refuse fsync on directories */
    ok = true;
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (tmp[0])
        unlink(tmp);
    return ok;
}

bool lm_fs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, lm_error_t *err)
{
    FILE *f = NULL;
    char *buf = NULL;
    size_t used = 0, cap = 0;
    bool ok = false;

    *out = NULL;
    if (len)
        *len = 0;
    f = fopen(path, "rb");
    if (!f) {
        lm_error_set(err, errno == ENOENT ? LM_ERR_NOT_FOUND : LM_ERR_IO, "%s: cannot open: %s",
                     path, strerror(errno));
        goto out;
    }
    for (;;) {
        if (used + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            if (ncap > max_bytes + 4096 + 1)
                ncap = max_bytes + 4096 + 1;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                lm_error_set(err, LM_ERR_INTERNAL, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + used, 1, cap - used - 1, f);
        used += n;
        if (used > max_bytes) {
            lm_error_set(err, LM_ERR_TOO_LARGE, "%s: larger than the limit of %zu bytes", path,
                         max_bytes);
            goto out;
        }
        if (n == 0) {
            if (ferror(f)) {
                lm_error_set(err, LM_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
                goto out;
            }
            break;
        }
    }
    if (!buf && !(buf = malloc(1))) {
        lm_error_set(err, LM_ERR_INTERNAL, "%s: out of memory", path);
        goto out;
    }
    buf[used] = '\0';
    *out = buf;
    buf = NULL;
    if (len)
        *len = used;
    ok = true;
out:
    if (f)
        fclose(f);
    free(buf);
    return ok;
}

bool lm_fs_read_secret(const char *path, char **out, lm_error_t *err)
{
    struct stat st;
    size_t len;

    *out = NULL;
    if (stat(path, &st) != 0)
        return lm_error_set(err, errno == ENOENT ? LM_ERR_NOT_FOUND : LM_ERR_IO,
                            "%s: cannot open: %s", path, strerror(errno));
    if (st.st_mode & (S_IRWXG | S_IRWXO))
        return lm_error_set(err, LM_ERR_INVALID,
                            "%s: readable by other users (mode %04o): run chmod 600 %s", path,
                            (unsigned)(st.st_mode & 07777), path);
    if (!lm_fs_read_file(path, SECRET_MAX, out, &len, err))
        return false;
    while (len > 0 && ((*out)[len - 1] == '\n' || (*out)[len - 1] == '\r'))
        (*out)[--len] = '\0';
    if (len == 0 || memchr(*out, '\n', len)) {
        lm_wipe(*out, len);
        free(*out);
        *out = NULL;
        return lm_error_set(err, LM_ERR_INVALID, "%s: must hold the secret on one line", path);
    }
    return true;
}

bool lm_fs_mkdir_p(const char *path, mode_t mode, lm_error_t *err)
{
    char buf[PATH_MAX];
    struct stat st;

    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return lm_error_set(err, LM_ERR_INVALID, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return lm_error_set(err, LM_ERR_IO, "%s: cannot create directory: %s", buf,
                                strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return lm_error_set(err, LM_ERR_IO, "%s: exists and is not a directory", path);
    return true;
}

bool lm_fs_free_bytes(const char *path, uint64_t *bytes, lm_error_t *err)
{
    struct statvfs vfs;
    if (statvfs(path, &vfs) != 0)
        return lm_error_set(err, LM_ERR_IO, "%s: cannot read free space: %s", path,
                            strerror(errno));
    *bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return true;
}
