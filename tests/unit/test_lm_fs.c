/* lm_fs: atomic writes, modes, size caps, secret files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "lm_fs.h"
#include "lm_test_util.h"

static char dir[512];

static void setup(void)
{
    lm_test_mkdtemp(dir, sizeof dir);
}

static void teardown(void)
{
    lm_test_rmtree(dir);
}

TestSuite(fs, .init = setup, .fini = teardown);

Test(fs, read_missing_file_is_not_found)
{
    char *out = (char *)1;
    lm_error_t err;
    char path[600];
    snprintf(path, sizeof path, "%s/nope", dir);
    cr_assert_not(lm_fs_read_file(path, 100, &out, NULL, &err));
    cr_assert_null(out);
    cr_assert_eq(err.code, LM_ERR_NOT_FOUND);
    cr_assert(strstr(err.message, path));
}

Test(fs, read_refuses_oversized)
{
    char path[600], *out;
    size_t len;
    lm_error_t err;
    lm_test_write(dir, "big", "0123456789abcdef", path, sizeof path);
    cr_assert_not(lm_fs_read_file(path, 10, &out, &len, &err));
    cr_assert_eq(err.code, LM_ERR_TOO_LARGE);
    cr_assert(lm_fs_read_file(path, 16, &out, &len, &err));
    cr_assert_eq(len, 16);
    cr_assert_str_eq(out, "0123456789abcdef");
    free(out);
}

Test(fs, atomic_write_mode_and_content)
{
    char path[600], *out;
    struct stat st;
    lm_error_t err;
    snprintf(path, sizeof path, "%s/state.json", dir);
    cr_assert(lm_fs_write_atomic(path, "{\"a\":1}", 7, 0600, &err), "%s", err.message);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert(lm_fs_write_atomic(path, "{\"a\":2}", 7, 0600, &err));
    cr_assert(lm_fs_read_file(path, 100, &out, NULL, &err));
    cr_assert_str_eq(out, "{\"a\":2}");
    free(out);
    /* no temporary files left behind */
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(n, 1);
}

Test(fs, atomic_write_to_missing_dir_fails_cleanly)
{
    char path[600];
    lm_error_t err;
    snprintf(path, sizeof path, "%s/no/such/file", dir);
    cr_assert_not(lm_fs_write_atomic(path, "x", 1, 0600, &err));
    cr_assert_eq(err.code, LM_ERR_IO);
    cr_assert(strstr(err.message, "temporary"), "%s", err.message);
}

Test(fs, secret_file_rules)
{
    char path[600], *pw;
    lm_error_t err;
    lm_test_write(dir, "pw", "hunter22\n", path, sizeof path);
    chmod(path, 0644);
    cr_assert_not(lm_fs_read_secret(path, &pw, &err));
    cr_assert(strstr(err.message, "chmod 600"), "%s", err.message);
    chmod(path, 0600);
    cr_assert(lm_fs_read_secret(path, &pw, &err), "%s", err.message);
    cr_assert_str_eq(pw, "hunter22");
    free(pw);
    lm_test_write(dir, "pw2", "a\nb\n", path, sizeof path);
    chmod(path, 0600);
    cr_assert_not(lm_fs_read_secret(path, &pw, &err));
    cr_assert(strstr(err.message, "one line"));
    lm_test_write(dir, "pw3", "\n", path, sizeof path);
    chmod(path, 0600);
    cr_assert_not(lm_fs_read_secret(path, &pw, &err));
}

Test(fs, mkdir_p_and_free_space)
{
    char path[600], file[700];
    uint64_t free_bytes = 0;
    lm_error_t err;
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    cr_assert(lm_fs_mkdir_p(path, 0700, &err), "%s", err.message);
    cr_assert(lm_fs_mkdir_p(path, 0700, &err), "second mkdir_p must succeed");
    snprintf(file, sizeof file, "%s/f", path);
    cr_assert(lm_fs_write_atomic(file, "x", 1, 0600, &err));
    cr_assert_not(lm_fs_mkdir_p(file, 0700, &err));
    cr_assert(strstr(err.message, "not a directory"), "%s", err.message);
    cr_assert(lm_fs_free_bytes(dir, &free_bytes, &err));
    cr_assert_gt(free_bytes, 0);
    snprintf(file, sizeof file, "%s/missing", dir);
    cr_assert_not(lm_fs_free_bytes(file, &free_bytes, &err));
}
