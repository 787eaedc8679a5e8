/*
 * Allocation sites for test/record/sites.test.ts, built -O2 -fomit-frame-pointer -g: blocks
 * allocated through a wrapper (xmalloc), directly, by calloc in a loop, and from a function
 * inlined into its caller. Each allocating line carries a SITE marker the test looks for; the
 * blocks stay live to the end (kept in a volatile array), but for one that is freed.
 */
#include <stdlib.h>
#include <string.h>

void *volatile keep[64];
int nkeep;

__attribute__((noinline)) static void *xmalloc(size_t n) {
  void *p = malloc(n); /* SITE xmalloc */
  if (!p) abort();
  return p;
}

__attribute__((noinline)) static char *copy_name(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = xmalloc(n + 40); /* SITE copy_name */
  memcpy(d, s, n);
  return d;
}

__attribute__((noinline)) static void build_table(int n) {
  for (int i = 0; i < n; i++) keep[nkeep++] = calloc(1, 1000 + i); /* SITE build_table */
}

static inline void *inline_alloc(size_t n) {
  return malloc(n); /* SITE inline_alloc */
}

__attribute__((noinline)) static void uses_inline(void) {
  keep[nkeep++] = inline_alloc(300); /* SITE uses_inline */
}

int main(int argc, char **argv) {
  (void)argc;
  for (int i = 0; i < 5; i++) keep[nkeep++] = copy_name(argv[0]);
  build_table(3);
  uses_inline();
  char *tmp = malloc(5000); /* SITE main_tmp */
  tmp[0] = 1;
  keep[nkeep] = tmp;
  free(keep[nkeep]);
  return 0;
}
