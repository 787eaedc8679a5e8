/*
 * Every interposed function once or more, in one thread, including the calls that fail: prints
 * the trace lines it expects (see log.h) to standard output, or to LOG.   Usage: single [LOG]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include "log.h"

static struct log lg;

#define L0(op) lg_s(&lg, op)

static void *do_malloc(size_t n) {
  void *p = malloc(n);
  L0("malloc"), lg_u(&lg, n), lg_p(&lg, p), lg_end(&lg);
  return p;
}

static void do_free(void *p) {
  free(p);
  if (p) L0("free"), lg_p(&lg, p), lg_end(&lg); /* free(NULL) is not recorded */
}

int main(int argc, char **argv) {
  void *p1 = do_malloc(24);
  void *p2 = calloc(4, 100);
  L0("calloc"), lg_u(&lg, 4), lg_u(&lg, 100), lg_p(&lg, p2), lg_end(&lg);
  void *p3 = realloc(p1, 200);
  L0("realloc"), lg_p(&lg, p1), lg_u(&lg, 200), lg_p(&lg, p3), lg_end(&lg);
  void *p4 = realloc(NULL, 50);
  L0("realloc"), lg_p(&lg, NULL), lg_u(&lg, 50), lg_p(&lg, p4), lg_end(&lg);
  void *p5 = memalign(64, 1000);
  L0("memalign"), lg_u(&lg, 64), lg_u(&lg, 1000), lg_p(&lg, p5), lg_end(&lg);
  void *p6 = aligned_alloc(256, 512);
  L0("memalign"), lg_u(&lg, 256), lg_u(&lg, 512), lg_p(&lg, p6), lg_end(&lg);
  void *p7 = NULL;
  if (posix_memalign(&p7, 128, 300) != 0) return 1;
  L0("memalign"), lg_u(&lg, 128), lg_u(&lg, 300), lg_p(&lg, p7), lg_end(&lg);
  void *x = NULL;
  if (posix_memalign(&x, 3, 10) != EINVAL) return 1; /* not an allocation: no line */
  volatile size_t max = SIZE_MAX; /* volatile: the compiler must not see the failures coming */
  size_t huge = max / 2;
  if (posix_memalign(&x, 64, huge) != ENOMEM) return 1; /* ran _mid_memalign, which failed */
  L0("memalign"), lg_u(&lg, 64), lg_u(&lg, huge), lg_p(&lg, NULL), lg_end(&lg);
  void *p8 = valloc(5000);
  L0("valloc"), lg_u(&lg, 5000), lg_p(&lg, p8), lg_end(&lg);
  void *p9 = pvalloc(5000);
  L0("pvalloc"), lg_u(&lg, 5000), lg_p(&lg, p9), lg_end(&lg);
  void *big = do_malloc(200000); /* above the mmap threshold: a chunk of its own */
  do_free(big);
  x = do_malloc(max); /* fails */
  x = calloc(max, 2);  /* overflows: fails */
  L0("calloc"), lg_u(&lg, max), lg_u(&lg, 2), lg_p(&lg, x), lg_end(&lg);
  x = realloc(p4, 0); /* frees p4, returns NULL */
  L0("realloc"), lg_p(&lg, p4), lg_u(&lg, 0), lg_p(&lg, x), lg_end(&lg);
  do_free(NULL);
  /* Fill the fastbins so that mallopt's consolidation has work to do. */
  void *small[40];
  for (int i = 0; i < 40; i++) small[i] = do_malloc(32 + 16 * (i % 3));
  for (int i = 0; i < 40; i += 2) do_free(small[i]);
  mallopt(M_MMAP_THRESHOLD, 65536);
  L0("mallopt M_MMAP_THRESHOLD"), lg_i(&lg, 65536), lg_end(&lg);
  mallopt(12345, -7); /* unknown to glibc: still consolidates */
  L0("mallopt"), lg_i(&lg, 12345), lg_i(&lg, -7), lg_end(&lg);
  mallopt(M_TOP_PAD, 4096);
  L0("mallopt M_TOP_PAD"), lg_i(&lg, 4096), lg_end(&lg);
  void *mid = do_malloc(100000); /* now mmapped, the threshold being 64 KiB */
  do_free(mid);
  for (int i = 1; i < 40; i += 2) do_free(small[i]);
  malloc_trim(0);
  L0("malloc_trim"), lg_u(&lg, 0), lg_end(&lg);
  void *seq[6] = {p2, p3, p5, p6, p7, p8};
  for (int i = 0; i < 6; i++) do_free(seq[i]);
  do_free(p9);
  malloc_trim(128);
  L0("malloc_trim"), lg_u(&lg, 128), lg_end(&lg);
  lg_write(&lg, argc > 1 ? argv[1] : NULL);
  return 0;
}
