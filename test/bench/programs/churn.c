/*
 * The recording benchmark's C program (test/bench/record.bench-run.ts): N rounds of allocator
 * calls of the kinds whose recording costs differ. Each round mallocs and frees a small block
 * and keeps a working set of 4096 small blocks turning over; every 8th round an 8 KiB block in
 * the main heap, written and freed (a large block, so a #:touch record at its free); every 1024th
 * a 1 MiB block (an mmapped chunk) of which 64 KiB are written. Usage: churn N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fputs("usage: churn N\n", stderr);
    return 2;
  }
  long n = atol(argv[1]);
  enum { SET = 4096 };
  static char *set[SET];
  unsigned long sum = 0;
  for (long i = 0; i < n; i++) {
    char *p = malloc(64);
    if (!p) return 1;
    p[0] = (char)i;
    sum += (unsigned char)p[0];
    free(p);
    size_t k = (size_t)i % SET;
    free(set[k]);
    set[k] = malloc(16 + (size_t)(i * 7 % 200));
    if (!set[k]) return 1;
    set[k][0] = 1;
    if (i % 8 == 0) {
      char *q = malloc(8192);
      if (!q) return 1;
      memset(q, 1, 8192);
      free(q);
    }
    if (i % 1024 == 0) {
      char *q = malloc(1 << 20);
      if (!q) return 1;
      memset(q, 1, 64 << 10);
      free(q);
    }
  }
  for (size_t k = 0; k < SET; k++) free(set[k]);
  return sum == 0 ? 3 : 0;
}
