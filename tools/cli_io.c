/* cli_io.c - raw files of the mcgq tool: gradients (float32) and integer
 * gradients (int32) as packed little-endian values, messages as bytes.
 * Values are assembled byte by byte so the files mean the same on any host. */
#define _POSIX_C_SOURCE 200809L /* open flags, fstat, S_ISSOCK */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

void *cli_alloc(const char *cmd, uint64_t count, size_t size) {
  if (count == 0) count = 1; /* malloc(0) may return NULL */
  if (count > SIZE_MAX / size) {
    cli_error(cmd, "out of memory: %llu values of %zu bytes do not fit in memory",
              (unsigned long long)count, size);
    return NULL;
  }
  void *p = malloc((size_t)count * size);
  if (!p)
    cli_error(cmd, "out of memory: cannot allocate %llu bytes",
              (unsigned long long)(count * size));
  return p;
}

/* What a path that is not a regular file is, for the error message. */
static const char *file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

static int refuse_file_type(const char *cmd, const char *path, mode_t mode) {
  cli_error(cmd, "cannot read '%s': it is %s, not a regular file", path,
            file_type_name(mode));
  return -1;
}

/* Only regular files are read: opening a FIFO for reading blocks until a
 * writer comes (forever, if none does), a device may never end, and a
 * directory has no bytes.  stat() first, so nothing else is even opened;
 * then O_NONBLOCK, so that a path swapped for a FIFO in between cannot block
 * the open either, and fstat() of what was actually opened. */
static int open_regular_file(const char *cmd, const char *path, off_t *size) {
  struct stat st;
  if (stat(path, &st) != 0) {
    cli_error(cmd, "cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(st.st_mode)) return refuse_file_type(cmd, path, st.st_mode);
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    cli_error(cmd, "cannot open '%s': %s", path, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) != 0) {
    cli_error(cmd, "cannot read '%s': %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return refuse_file_type(cmd, path, st.st_mode);
  }
  *size = st.st_size;
  return fd;
}

int cli_read_bytes(const char *cmd, const char *path, uint8_t **data,
                   size_t *size) {
  *data = NULL;
  *size = 0;
  off_t len = 0;
  int fd = open_regular_file(cmd, path, &len);
  if (fd < 0) return -1;
  uint8_t *buf = len >= 0 ? (uint8_t *)cli_alloc(cmd, (uint64_t)len, 1) : NULL;
  if (!buf) {
    close(fd);
    return -1;
  }
  /* Regular files ignore O_NONBLOCK: read() returns what is there. */
  size_t got = 0;
  int read_errno = 0;
  while (got < (size_t)len) {
    ssize_t r = read(fd, buf + got, (size_t)len - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) read_errno = errno;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != (size_t)len) {
    free(buf);
    cli_error(cmd, "cannot read '%s': %s after %zu of %lld bytes", path,
              read_errno ? strerror(read_errno) : "short read", got, (long long)len);
    return -1;
  }
  *data = buf;
  *size = (size_t)len;
  return 0;
}

/* O_NONBLOCK only for the open: opening a FIFO that no process reads would
 * otherwise wait forever; with it the open fails with ENXIO.  Once open, a
 * pipe or device with a reader gets ordinary blocking writes. */
static int open_for_writing(const char *cmd, const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
                0666);
  if (fd < 0) {
    int open_errno = errno;
    struct stat st;
    if (open_errno == ENXIO && stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
      cli_error(cmd, "cannot write '%s': it is a FIFO (named pipe) that no process "
                "is reading", path);
    else
      cli_error(cmd, "cannot create '%s': %s", path, strerror(open_errno));
    return -1;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    cli_error(cmd, "cannot write '%s': %s", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

int cli_write_bytes(const char *cmd, const char *path, const void *data,
                    size_t size) {
  int fd = open_for_writing(cmd, path);
  if (fd < 0) return -1;
  const uint8_t *p = (const uint8_t *)data;
  size_t put = 0;
  int write_errno = 0;
  while (put < size) {
    ssize_t w = write(fd, p + put, size - put);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      write_errno = w < 0 ? errno : EIO;
      break;
    }
    put += (size_t)w;
  }
  if (close(fd) != 0 && !write_errno) write_errno = errno;
  if (write_errno) {
    cli_error(cmd, "cannot write '%s': %s", path, strerror(write_errno));
    return -1;
  }
  return 0;
}

static uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static void store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Reads a file of n >= 1 32-bit values; the caller converts the bytes. */
static int read_words(const char *cmd, const char *path, uint8_t **bytes,
                      uint64_t *n) {
  size_t size = 0;
  *n = 0;
  if (cli_read_bytes(cmd, path, bytes, &size)) return -1;
  if (size == 0 || size % 4 != 0) {
    free(*bytes);
    *bytes = NULL;
    if (size == 0)
      cli_error(cmd, "'%s' is empty: n = 0 values (need at least one)", path);
    else
      cli_error(cmd, "'%s' has %zu bytes, not a multiple of 4 (32-bit values)",
                path, size);
    return -1;
  }
  *n = size / 4;
  return 0;
}

int cli_read_f32(const char *cmd, const char *path, float **values,
                 uint64_t *n) {
  uint8_t *bytes = NULL;
  *values = NULL;
  if (read_words(cmd, path, &bytes, n)) return -1;
  float *out = (float *)cli_alloc(cmd, *n, sizeof *out);
  for (uint64_t i = 0; out && i < *n; ++i) {
    uint32_t w = load_le32(bytes + 4 * i);
    memcpy(&out[i], &w, sizeof w);
  }
  free(bytes);
  *values = out;
  return out ? 0 : -1;
}

int cli_read_i32(const char *cmd, const char *path, int32_t **values,
                 uint64_t *n) {
  uint8_t *bytes = NULL;
  *values = NULL;
  if (read_words(cmd, path, &bytes, n)) return -1;
  int32_t *out = (int32_t *)cli_alloc(cmd, *n, sizeof *out);
  for (uint64_t i = 0; out && i < *n; ++i) {
    uint32_t w = load_le32(bytes + 4 * i);
    memcpy(&out[i], &w, sizeof w);
  }
  free(bytes);
  *values = out;
  return out ? 0 : -1;
}

/* values: n elements of 4 bytes (float or int32), written little-endian. */
static int write_words(const char *cmd, const char *path,
                       const uint8_t *values, uint64_t n) {
  uint8_t *bytes = (uint8_t *)cli_alloc(cmd, n, 4);
  if (!bytes) return -1;
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t w;
    memcpy(&w, values + 4 * i, sizeof w);
    store_le32(bytes + 4 * i, w);
  }
  int rc = cli_write_bytes(cmd, path, bytes, (size_t)(n * 4));
  free(bytes);
  return rc;
}

int cli_write_f32(const char *cmd, const char *path, const float *values,
                  uint64_t n) {
  return write_words(cmd, path, (const uint8_t *)values, n);
}

int cli_write_i32(const char *cmd, const char *path, const int32_t *values,
                  uint64_t n) {
  return write_words(cmd, path, (const uint8_t *)values, n);
}
