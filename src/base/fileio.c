/* fileio.c: files, atomic writes, memory maps. */
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

it_status it_file_read(it_err *err, uint8_t **out, size_t *n_out, const char *path,
                       size_t max_bytes)
{
    *out = NULL;
    *n_out = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return it_err_set(err, IT_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return it_err_set(err, IT_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(fp);
        return it_err_set(err, IT_ERR_RANGE, "%s: file is %lld bytes, limit is %zu", path,
                          (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = it_malloc(n + 1);
    if (!buf) {
        fclose(fp);
        return it_err_set(err, IT_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad || got != n) {
        it_free(buf);
        return it_err_set(err, IT_ERR_IO, "%s: short read", path);
    }
    buf[n] = '\0';
    *out = buf;
    *n_out = n;
    return IT_OK;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

it_status it_atomic_open(it_err *err, it_atomic_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    size_t n = strlen(path) + 32;
    f->path = it_strdup(path);
    f->tmp_path = it_malloc(n);
    if (!f->path || !f->tmp_path) {
        it_atomic_abort(f);
        return it_err_set(err, IT_ERR_NOMEM, "out of memory");
    }
    snprintf(f->tmp_path, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(f->tmp_path);
    if (fd < 0) {
        it_status s = it_err_set(err, IT_ERR_IO, "%s: cannot create temporary file: %s", path,
                                 strerror(errno));
        it_free(f->tmp_path);
        f->tmp_path = NULL;
        it_atomic_abort(f);
        return s;
    }
    fchmod(fd, 0644);
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        close(fd);
        it_atomic_abort(f);
        return it_err_set(err, IT_ERR_IO, "%s: fdopen failed", path);
    }
    return IT_OK;
}

it_status it_atomic_commit(it_err *err, it_atomic_file *f)
{
    FILE *fp = f->fp;
    f->fp = NULL;
    int bad = fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0;
    bad |= fclose(fp) != 0;
    if (bad) {
        it_status s = it_err_set(err, IT_ERR_IO, "%s: write failed: %s", f->path, strerror(errno));
        it_atomic_abort(f);
        return s;
    }
    if (rename(f->tmp_path, f->path) != 0) {
        it_status s = it_err_set(err, IT_ERR_IO, "%s: rename failed: %s", f->path, strerror(errno));
        it_atomic_abort(f);
        return s;
    }
    fsync_dir_of(f->path);
    it_free(f->tmp_path);
    it_free(f->path);
    f->tmp_path = NULL;
    f->path = NULL;
    return IT_OK;
}

void it_atomic_abort(it_atomic_file *f)
{
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    it_free(f->tmp_path);
    it_free(f->path);
    memset(f, 0, sizeof *f);
}

it_status it_file_write_atomic(it_err *err, const char *path, const void *data, size_t n)
{
    it_atomic_file f;
    IT_TRY(it_atomic_open(err, &f, path));
    if (n && fwrite(data, 1, n, f.fp) != n) {
        it_atomic_abort(&f);
        return it_err_set(err, IT_ERR_IO, "%s: write failed", path);
    }
    return it_atomic_commit(err, &f);
}

it_status it_mmap_open(it_err *err, it_mmap *m, const char *path)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return it_err_set(err, IT_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return it_err_set(err, IT_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return IT_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return it_err_set(err, IT_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return IT_OK;
}

void it_mmap_close(it_mmap *m)
{
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

it_status it_mkdir_p(it_err *err, const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return it_err_set(err, IT_ERR_ARG, "bad directory path");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return it_err_set(err, IT_ERR_IO, "%s: mkdir: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!it_is_dir(path)) return it_err_set(err, IT_ERR_IO, "%s: not a directory", path);
    return IT_OK;
}

int it_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int it_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

it_status it_path_join(it_err *err, char *buf, size_t n, const char *a, const char *b)
{
    size_t la = strlen(a);
    int slash = la > 0 && a[la - 1] != '/';
    int w = snprintf(buf, n, "%s%s%s", a, slash ? "/" : "", b);
    if (w < 0 || (size_t)w >= n) return it_err_set(err, IT_ERR_RANGE, "path too long: %s/%s", a, b);
    return IT_OK;
}

const char *it_path_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

const char *it_path_ext(const char *path)
{
    const char *base = it_path_basename(path);
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? dot + 1 : "";
}
