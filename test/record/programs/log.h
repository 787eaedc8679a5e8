/*
 * Logging for the recorder's test programs: each program writes down every allocator call it
 * makes, as the trace line it expects (without @TIME and TID), so that the test can compare the
 * recording with what the program knows it did. The log must not allocate (stdio would), so it
 * is formatted by hand into static buffers and written with write(2) at the end.
 */
#ifndef PTSIM_TEST_LOG_H
#define PTSIM_TEST_LOG_H

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define LOG_CAP (1 << 20)

struct log {
  char text[LOG_CAP];
  size_t len;
};

static void lg_raw(struct log *l, const char *s, size_t n) {
  if (l->len + n <= LOG_CAP) {
    memcpy(l->text + l->len, s, n);
    l->len += n;
  }
}

static void lg_s(struct log *l, const char *s) { lg_raw(l, s, strlen(s)); }

static void lg_u(struct log *l, uint64_t v) {
  char t[24];
  int n = 0;
  do {
    t[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  lg_raw(l, " ", 1);
  while (n) lg_raw(l, &t[--n], 1);
}

__attribute__((unused)) static void lg_i(struct log *l, int64_t v) {
  if (v >= 0) {
    lg_u(l, (uint64_t)v);
    return;
  }
  char t[24];
  int n = 0;
  uint64_t u = -(uint64_t)v;
  do {
    t[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  lg_raw(l, " -", 2);
  while (n) lg_raw(l, &t[--n], 1);
}

static void lg_p(struct log *l, const void *p) {
  uintptr_t v = (uintptr_t)p;
  if (!v) {
    lg_raw(l, " 0", 2);
    return;
  }
  char t[20];
  int n = 0;
  while (v) {
    t[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  }
  lg_raw(l, " 0x", 3);
  while (n) lg_raw(l, &t[--n], 1);
}

static void lg_end(struct log *l) { lg_raw(l, "\n", 1); }

/* Writes the log to `path`, or to standard output when path is NULL. */
static void lg_write(struct log *l, const char *path) {
  int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : 1;
  if (fd < 0) return;
  const char *p = l->text;
  size_t n = l->len;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) break;
    p += w;
    n -= (size_t)w;
  }
  if (path) close(fd);
}

#endif
