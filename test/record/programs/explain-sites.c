/*
 * Allocation sites for test/record/explain-sites.test.ts, built -O2 -fomit-frame-pointer -g:
 * blocks that are allocated and freed (churn), then freed small blocks that stay in the tcache
 * (fill_cache) and in the fastbins (make_small), below one small block allocated last through a
 * wrapper (keep_config, via xmalloc) that pins the heap. Each allocating line carries a SITE
 * marker the test looks for.
 */
#include <stdlib.h>

void *volatile churn[40];
void *volatile cache[7];
void *volatile small[13];
void *volatile config;

__attribute__((noinline)) static void *xmalloc(size_t n) {
  void *p = malloc(n); /* SITE xmalloc */
  if (!p) abort();
  return p;
}

__attribute__((noinline)) static void make_churn(void) {
  for (int i = 0; i < 40; i++) churn[i] = malloc(2000); /* SITE make_churn */
}

__attribute__((noinline)) static void fill_cache(void) {
  for (int i = 0; i < 7; i++) cache[i] = malloc(40); /* SITE fill_cache */
}

__attribute__((noinline)) static void make_small(void) {
  for (int i = 0; i < 13; i++) small[i] = malloc(40); /* SITE make_small */
}

__attribute__((noinline)) static void keep_config(void) {
  config = xmalloc(24); /* SITE keep_config */
}

int main(void) {
  make_churn();
  fill_cache();
  make_small();
  keep_config(); /* SITE main */
  for (int i = 0; i < 40; i++) free(churn[i]);
  for (int i = 0; i < 7; i++) free(cache[i]);
  for (int i = 0; i < 13; i++) free(small[i]);
  return 0;
}
