/*
 * A few thousand allocator calls from a fixed pseudo-random sequence: sizes from 1 byte to
 * 300 KiB (so some chunks are mmapped and the dynamic mmap threshold moves), every operation,
 * blocks freed in random order, a malloc_trim at the end. Logs the trace lines it expects to
 * standard output.   Usage: many [SEED]
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include "log.h"

#define SLOTS 512
#define STEPS 4000

static struct log lg;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) { /* xorshift64* */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dull;
}

static size_t size(void) {
  uint64_t r = next() % 100;
  if (r < 60) return 1 + next() % 128;
  if (r < 90) return 129 + next() % 4000;
  if (r < 97) return 4096 + next() % 60000;
  return 64 * 1024 + next() % (240 * 1024);
}

int main(int argc, char **argv) {
  if (argc > 1) rng ^= (uint64_t)strtoull(argv[1], NULL, 10) * 0x100000001b3ull;
  void *slot[SLOTS] = {0};
  for (int step = 0; step < STEPS; step++) {
    int i = (int)(next() % SLOTS);
    void *p = slot[i];
    if (p) {
      if (next() % 4 == 0) {
        size_t n = size();
        void *q = realloc(p, n);
        lg_s(&lg, "realloc"), lg_p(&lg, p), lg_u(&lg, n), lg_p(&lg, q), lg_end(&lg);
        if (q) slot[i] = q;
      } else {
        free(p);
        lg_s(&lg, "free"), lg_p(&lg, p), lg_end(&lg);
        slot[i] = NULL;
      }
      continue;
    }
    uint64_t kind = next() % 10;
    size_t n = size();
    if (kind < 6) {
      p = malloc(n);
      lg_s(&lg, "malloc"), lg_u(&lg, n), lg_p(&lg, p), lg_end(&lg);
    } else if (kind < 8) {
      size_t k = 1 + next() % 8;
      p = calloc(k, n / k + 1);
      lg_s(&lg, "calloc"), lg_u(&lg, k), lg_u(&lg, n / k + 1), lg_p(&lg, p), lg_end(&lg);
    } else if (kind < 9) {
      size_t a = (size_t)16 << (next() % 9);
      p = memalign(a, n);
      lg_s(&lg, "memalign"), lg_u(&lg, a), lg_u(&lg, n), lg_p(&lg, p), lg_end(&lg);
    } else {
      p = valloc(n);
      lg_s(&lg, "valloc"), lg_u(&lg, n), lg_p(&lg, p), lg_end(&lg);
    }
    slot[i] = p;
  }
  for (int i = 0; i < SLOTS; i += 2)
    if (slot[i]) {
      free(slot[i]);
      lg_s(&lg, "free"), lg_p(&lg, slot[i]), lg_end(&lg);
    }
  malloc_trim(0);
  lg_s(&lg, "malloc_trim"), lg_u(&lg, 0), lg_end(&lg);
  lg_write(&lg, NULL);
  return 0;
}
