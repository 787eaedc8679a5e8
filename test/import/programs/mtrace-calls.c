/*
 * A known sequence of allocator calls, traced by glibc's mtrace(): the import test compares the
 * log glibc writes (MALLOC_TRACE, with libc_malloc_debug.so preloaded) with this sequence.
 *
 * The program writes nothing to stdout (stdio would allocate its buffer under the trace), and
 * keeps every pointer in a volatile array so that the compiler cannot drop a call.
 */

#include <malloc.h>
#include <mcheck.h>
#include <stdint.h>
#include <stdlib.h>

static void *volatile keep[16];

int main(void) {
  mtrace();
  keep[0] = malloc(24);                     /* + A 0x18 */
  keep[1] = calloc(4, 100);                 /* + B 0x190: calloc looks like malloc */
  keep[0] = realloc(keep[0], 200);          /* < A, > C 0xc8 */
  keep[2] = memalign(64, 1000);             /* + D 0x3e8: memalign looks like malloc */
  free(keep[1]);                            /* - B */
  keep[3] = realloc(NULL, 10);              /* + E 0xa: realloc from NULL is an allocation */
  keep[4] = malloc(200000);                 /* + F 0x30d40: above the mmap threshold */
  keep[3] = realloc(keep[3], 0);            /* - E: realloc to 0 frees */
  keep[5] = malloc(5000);                   /* + G 0x1388 */
  keep[6] = realloc(keep[5], SIZE_MAX / 2); /* ! G 0x7fffffffffffffff: fails, G stays */
  free(NULL);                               /* not logged */
  keep[7] = valloc(100);                    /* + H 0x64 */
  keep[8] = malloc(24);                     /* + I 0x18 */
  free(keep[0]);                            /* - C */
  free(keep[2]);                            /* - D */
  free(keep[4]);                            /* - F */
  free(keep[5]);                            /* - G */
  free(keep[7]);                            /* - H */
  keep[9] = realloc(keep[8], 5000);         /* < I, > J 0x1388 */
  free(keep[9]);                            /* - J */
  muntrace();
  return 0;
}
