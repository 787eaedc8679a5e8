/*
 * Programs whose resident memory a replay must match: each mode allocates the way a real program
 * does (most of a buffer left unused, a sparse table, a buffer grown and shrunk, many small
 * blocks, a raised mmap threshold) and calls ptsim_mark at the points where the test compares the
 * replay's RSS with the process's own: `base` first, after one allocator call (a mark needs an
 * event before it), then one mark per point. Transparent huge pages are left as the system has
 * them. Usage: ground MODE, MODE one of worst, calloc, realloc, small, threshold.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)4096)

static void (*mark_fn)(const char *);

static void mark(const char *name) {
  if (mark_fn) mark_fn(name);
}

static void *must(void *p) {
  if (!p) {
    fputs("ground: out of memory\n", stderr);
    exit(1);
  }
  return p;
}

/* A buffer sized for the worst case: 64 MiB, of which the first 3 MiB are used. */
static void worst(void) {
  char *p = must(malloc(64 * MiB));
  memset(p, 1, 3 * MiB);
  mark("used");
  free(p);
  mark("freed");
}

/* A sparse table from calloc: 32 MiB of zeros, one entry written every 10th page, every 3rd read. */
static void sparse(void) {
  size_t n = 32 * MiB / 64;
  unsigned char *t = must(calloc(n, 64));
  unsigned sum = 0;
  for (size_t i = 0; i < 32 * MiB; i += 3 * PAGE) sum += ((volatile unsigned char *)t)[i];
  for (size_t i = 0; i < 32 * MiB; i += 10 * PAGE) t[i + 100] = 7;
  if (sum != 0) abort();
  mark("written");
  free(t);
  mark("freed");
}

/* A buffer grown by realloc from 1 KiB to 48 MiB, filled as it grows, then shrunk to 2 MiB. */
static void grown(void) {
  size_t n = KiB;
  char *p = must(malloc(n));
  memset(p, 2, n);
  while (n < 48 * MiB) {
    size_t m = n + n / 2;
    p = must(realloc(p, m));
    memset(p + n, 2, m - n);
    n = m;
  }
  mark("grown");
  p = must(realloc(p, 2 * MiB));
  mark("shrunk");
  free(p);
  mark("freed");
}

/* 100,000 small blocks (16 to 256 bytes), written whole; then every other one freed. The array
   of pointers is a block too. */
static void small(void) {
  enum { N = 100000 };
  char **b = must(malloc(N * sizeof *b));
  for (int i = 0; i < N; i++) {
    size_t n = 16 + (size_t)i * 7919 % 241;
    b[i] = must(malloc(n));
    memset(b[i], 3, n);
  }
  mark("allocated");
  for (int i = 0; i < N; i += 2) free(b[i]);
  mark("half-freed");
  for (int i = 1; i < N; i += 2) free(b[i]);
  free(b);
  mark("freed");
}

/* M_MMAP_THRESHOLD raised to 64 MiB: 12 blocks of 4 MiB in the heap, each written in part. */
static void threshold(void) {
  if (mallopt(M_MMAP_THRESHOLD, 64 * MiB) != 1) abort();
  char *b[12];
  for (int i = 0; i < 12; i++) {
    b[i] = must(malloc(4 * MiB));
    memset(b[i], 4, (size_t)(i + 1) * 256 * KiB);
  }
  mark("allocated");
  for (int i = 0; i < 12; i += 2) free(b[i]);
  mark("half-freed");
  for (int i = 1; i < 11; i += 2) free(b[i]);
  mark("top-kept");
  free(b[11]);
  mark("freed");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fputs("usage: ground MODE\n", stderr);
    return 2;
  }
  mark_fn = (void (*)(const char *))dlsym(RTLD_DEFAULT, "ptsim_mark");
  free(must(malloc(1)));
  mark("base");
  const char *m = argv[1];
  if (strcmp(m, "worst") == 0) worst();
  else if (strcmp(m, "calloc") == 0) sparse();
  else if (strcmp(m, "realloc") == 0) grown();
  else if (strcmp(m, "small") == 0) small();
  else if (strcmp(m, "threshold") == 0) threshold();
  else {
    fprintf(stderr, "ground: unknown mode %s\n", m);
    return 2;
  }
  return 0;
}
